"""Peak memory of one update at the study's vocabulary: does it grow with the response length?

A tiny-hidden Qwen3 (hidden 64, 2 layers) with the real 151,936-token vocabulary, 2 rows, one GRPO
and one SDPO top-k update on synthetic responses (no generation) at 256 and 2,048 response tokens,
each in a fresh process (peak RSS on CPU, max_memory_allocated on CUDA). With a chunked head the
logits never span the response, so the growth from 256 to 2,048 tokens must stay below a quarter
of one fp32 T x V tensor at T = 2,048 (2,048 x 151,936 x 4 B = 1,187 MiB, a quarter = 297 MiB).
What the head does keep is a few [chunk, V] temporaries (logits, their softmax, their gradient):
with a chunk larger than the shortest run's token count, the growth measured is that of a partly
filled chunk becoming full (bounded by chunk x V, not T x V), so the default chunk here is 256.
Before the chunked head (reference/scale.md, this machine): GRPO 2.07 -> 12.48 GB, SDPO 2.14 -> 12.59 GB.

    python benchmarks/memory_long_vocab.py [--device cpu|cuda] [--lengths 256,2048]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOCAB = 151_936
MODES = {
    "grpo": ["algorithm=grpo"],
    "sdpo_topk": ["algorithm=sdpo", "sdpo.distillation_mode=topk", "sdpo.distillation_topk=100",
                  "teacher_context=answer"],
}


def child(mode: str, length: int, device: str, chunk: int) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    from synthetic_step import build_trainer, model_from_config, synthetic_inputs, timed_update

    torch.set_num_threads(2)
    model = model_from_config(HERE.parent / "configs" / "models" / "qwen3-8b.json", device=device, vocab_size=VOCAB,
                              hidden=64, layers=2)
    trainer = build_trainer(model, *MODES[mode], "rollout.n=2", "data.train_batch_size=1", "actor.micro_batch_size=2",
                            f"rollout.max_new_tokens={length}", f"actor.logits_chunk_size={chunk}", device=device)
    inputs = synthetic_inputs(trainer, rows=2, prompt_tokens=64, response_tokens=length, context_tokens=64)
    return {"mode": mode, "response_tokens": length, **timed_update(trainer, inputs, device=device)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lengths", default="256,2048")
    p.add_argument("--chunk", type=int, default=256,
                   help="actor.logits_chunk_size (default 256: a full chunk already at the shortest length)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "LENGTH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.device, args.chunk)))
        return 0
    lengths = [int(x) for x in args.lengths.split(",")]
    results: dict[str, dict[int, dict]] = {}
    for mode in MODES:
        for length in lengths:
            r = subprocess.run([sys.executable, __file__, "--child", mode, str(length), "--device", args.device,
                                "--chunk", str(args.chunk)],
                               capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if r.returncode != 0:
                print(r.stderr[-4000:], file=sys.stderr)
                return 1
            results.setdefault(mode, {})[length] = json.loads(r.stdout.strip().splitlines()[-1])
    t_by_v_mib = max(lengths) * VOCAB * 4 / 2**20
    summary = {"vocab": VOCAB, "device": args.device, "lengths": lengths, "logits_chunk_size": args.chunk,
               "tv_fp32_mib_at_max": round(t_by_v_mib, 1), "limit_mib": round(t_by_v_mib / 4, 1), "modes": {}}
    for mode, by_len in results.items():
        peaks = [by_len[n]["peak_mb"] for n in lengths]
        growth = peaks[-1] - peaks[0]
        summary["modes"][mode] = {"peak_mib": dict(zip(map(str, lengths), [round(x, 1) for x in peaks])),
                                  "growth_mib": round(growth, 1), "within_limit": growth < t_by_v_mib / 4,
                                  "seconds": {str(n): round(by_len[n]["seconds"], 2) for n in lengths}}
    print(json.dumps(summary, indent=2))
    return 0 if all(m["within_limit"] for m in summary["modes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
