"""The one-GPU check (run through benchmarks/gpu_check.sh): real shapes, random-init weights, no network.

Measures, each part on its own (a failure is recorded and the next part runs):
  update     one GRPO and one SDPO update on synthetic responses (random token ids, no generation) at
             4,096 and 16,384 response tokens (2 rows, 512-token prompts, SDPO teacher context 512):
             the ~1.7B Qwen3 shape as a full step with the optimizer (and once more under FSDP2 on the
             one GPU: parallel.strategy=fsdp); the 8B shape as forward + backward only (fp32 masters and
             Adam states of 8B do not fit one GPU: that is what sharding is for)
  generate   throughput of the default rollout backend at the 1.7B shape (64 rows x 1,024 new tokens)
  demo       `sdlab demo` on the GPU (goal: <= 1 minute)
Prints one JSON object (time, tokens/s, peak GPU memory, model FLOPs utilisation) and writes it to
--out. Model FLOPs: 6 N per trained token + 2 N per teacher-scored token (N = parameters), against
the GPU's dense bf16 peak (--peak-tflops, 989 for H100/H200 SXM). Without a CUDA GPU it prints
{"skipped": ...} and exits 0; `--tiny` runs every part at toy shapes on any device (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def update_case(shape: str, algorithm: str, tokens: int, *, device: str, tiny: bool, peak_tflops: float,
                optimizer_step: bool, extra: tuple[str, ...] = ()) -> dict:
    import torch
    from synthetic_step import build_trainer, model_from_config, synthetic_inputs, timed_update

    shrink = dict(hidden=64, layers=2, vocab_size=4096) if tiny else {}
    model = model_from_config(ROOT / "configs" / "models" / f"qwen3-{shape}.json", device=device, **shrink)
    overrides = [f"algorithm={algorithm}", "model.dtype=bfloat16", "model.gradient_checkpointing=true",
                 "rollout.n=2", "data.train_batch_size=1", f"rollout.max_new_tokens={tokens}",
                 f"actor.max_tokens_per_micro_batch={tokens + 1024 + 512}", "actor.logits_chunk_size=1024",
                 "sdpo.distillation_mode=topk", "teacher_context=answer", "actor.lr=1e-6", *extra]
    trainer = build_trainer(model, *overrides, device=device)
    prompt, context = (64, 32) if tiny else (512, 512)
    inputs = synthetic_inputs(trainer, rows=2, prompt_tokens=prompt, response_tokens=tokens, context_tokens=context)
    timed_update(trainer, inputs, device=device, optimizer_step=optimizer_step)  # warm-up (kernels, allocator)
    out = timed_update(trainer, inputs, device=device, optimizer_step=optimizer_step)
    n = _params(model)
    flops = 6 * n * out["tokens"]
    if algorithm == "sdpo":
        flops += 2 * n * sum(len(t) + tokens for t in inputs[2].prompt_ids)
    out.update(shape=shape, algorithm=algorithm, response_tokens=tokens, parameters=n, optimizer_step=optimizer_step,
               overrides=list(extra),
               model_tflops=flops / 1e12, mfu=flops / out["seconds"] / (peak_tflops * 1e12))
    del trainer, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def generate_case(*, device: str, tiny: bool) -> dict:
    import torch
    from synthetic_step import model_from_config

    from sdlab.rollout import SamplingParams, make_backend
    from sdlab.testing import char_tokenizer

    rows, new = (8, 32) if tiny else (64, 1024)
    shrink = dict(hidden=64, layers=2, vocab_size=4096) if tiny else {}
    model = model_from_config(ROOT / "configs" / "models" / "qwen3-1.7b.json", device=device, dtype=torch.bfloat16,
                              **shrink).eval()
    model.generation_config.eos_token_id = None  # random weights: every row runs the full budget
    tok = char_tokenizer()
    backend = make_backend("hf", model, tok, batch_size=rows)
    prompts = [list(range(10 + i, 10 + i + 128)) for i in range(rows)]
    params = SamplingParams(temperature=1.0, max_new_tokens=new)
    backend.generate(prompts[:2], [0, 1], SamplingParams(temperature=1.0, max_new_tokens=8))  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = backend.generate(prompts, list(range(rows)), params)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = sum(len(r.response_ids) for r in out)
    return {"rows": rows, "new_tokens": new, "generated_tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds,
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None}


def demo_case(*, device: str, tiny: bool, out_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "sdlab.cli", "demo", "--device", device, "--out", str(out_dir / "demo")]
    if tiny:
        cmd += ["--seeds", "1", "--steps", "2"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    res = {"seconds": seconds, "returncode": r.returncode, "command": " ".join(cmd[1:])}
    summary = out_dir / "demo" / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        res["checks_passed"] = [c["passed"] for c in data.get("checks", [])]
        res["timing"] = data.get("timing")
    if r.returncode != 0:
        res["stderr_tail"] = r.stderr[-2000:]
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--tiny", action="store_true", help="toy shapes on any device (smoke test of this script)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--parts", default="update,generate,demo")
    p.add_argument("--peak-tflops", type=float, default=989.0)
    args = p.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA GPU on this machine"}))
        return 0
    out_path = Path(args.out)
    report: dict = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device,
                    "torch": torch.__version__, "tiny": args.tiny, "parts": {}}

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2))

    def run(name, fn, **kw):
        t0 = time.perf_counter()
        try:
            report["parts"][name] = fn(**kw)
        except Exception as e:  # noqa: BLE001 - record and go on to the next part
            report["parts"][name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-1500:]}
        report["parts"][name]["wall_s"] = time.perf_counter() - t0
        print(f"[gpu_check] {name}: {json.dumps(report['parts'][name])[:400]}", file=sys.stderr, flush=True)
        save()

    parts = args.parts.split(",")
    common = dict(device=args.device, tiny=args.tiny)
    if "update" in parts:
        lengths = (256, 512) if args.tiny else (4096, 16384)
        for algorithm in ("grpo", "sdpo"):
            for tokens in lengths:
                run(f"update/1.7b/{algorithm}/{tokens}", update_case, shape="1.7b", algorithm=algorithm, tokens=tokens,
                    peak_tflops=args.peak_tflops, optimizer_step=True, **common)
        run(f"update/1.7b/sdpo/{lengths[0]}/fsdp2", update_case, shape="1.7b", algorithm="sdpo", tokens=lengths[0],
            peak_tflops=args.peak_tflops, optimizer_step=True, extra=("parallel.strategy=fsdp",), **common)
        for algorithm in ("grpo", "sdpo"):
            for tokens in lengths:
                run(f"update/8b/{algorithm}/{tokens}", update_case, shape="8b", algorithm=algorithm, tokens=tokens,
                    peak_tflops=args.peak_tflops, optimizer_step=False, **common)
    if "generate" in parts:
        run("generate/1.7b", generate_case, **common)
    if "demo" in parts:
        run("demo", demo_case, out_dir=out_path.parent, **common)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
