"""Peak memory of one training step, SDPO (top-k + tail, and sampled-token) vs GRPO, 32k vocabulary.

Each mode runs in a fresh process: build the trainer (model, and for SDPO the frozen teacher),
record the peak resident memory, run one full step (rollout, reward, teacher forward, update),
and report the step's *extra* peak memory over that baseline. On CUDA the same is measured with
torch.cuda.max_memory_allocated. The claim under test: SDPO's teacher never materialises a full
batch x length x vocab tensor (its logits are reduced to top-k chunk by chunk), so an SDPO step
stays within 1.5x of a GRPO step.

    python benchmarks/sdpo_memory.py [--device cpu|cuda] [--vocab 32000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = {
    "grpo": ["algorithm=grpo"],
    "sdpo_topk": ["algorithm=sdpo", "sdpo.distillation_mode=topk", "sdpo.distillation_topk=100"],
    "sdpo_sampled_token": ["algorithm=sdpo", "sdpo.distillation_mode=sampled_token", "sdpo.alpha=1.0"],
    "sdpo_full_vocab": ["algorithm=sdpo", "sdpo.distillation_mode=full"],
}


def _peak_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args) -> None:
    import torch

    from sdlab.config import load_config
    from sdlab.engine import trainer as trainer_mod
    from sdlab.rewards import GradeResult

    torch.set_num_threads(2)

    def grade_many(responses, golds, grader="strict", *, truncated=None, reveal_answer=False, timeout=5.0):
        return [GradeResult(correct=i % 3 == 0, pred=None, reason="bench", feedback="") for i, _ in enumerate(responses)]

    trainer_mod.grade_many = grade_many
    cfg = load_config(None, [
        f"model.name_or_path={args.model}", f"data.train={args.data}", f"output_dir={args.out}", f"model.device={args.device}",
        "data.train_batch_size=4", "rollout.n=8", f"rollout.max_new_tokens={args.new_tokens}", "actor.micro_batch_size=32",
        "steps=1", "logging.progress=false", "checkpoint.save_final_model=false", "data.prompt_template=plain",
        "teacher_context=answer", "rollout.temperature=1.0", *MODES[args.child],
    ])
    tr = trainer_mod.Trainer(cfg)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = _peak_bytes(args.device)
    tr.step()
    after = _peak_bytes(args.device)
    print(json.dumps({"mode": args.child, "baseline_peak_mb": before / 2**20, "step_peak_mb": after / 2**20,
                      "step_extra_mb": (after - before) / 2**20}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    from sdlab.testing import char_tokenizer, tiny_model_dir

    root = Path(tempfile.mkdtemp(prefix="sdlab-mem-"))
    extra = max(0, args.vocab - len(char_tokenizer()))
    model = tiny_model_dir(root / "model", arch="qwen3", hidden=64, layers=2, extra_vocab=extra)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(8)))
    results = {}
    for mode in MODES:
        r = subprocess.run([sys.executable, __file__, "--child", mode, "--model", str(model), "--data", str(data),
                            "--out", str(root / mode), "--device", args.device, "--new-tokens", str(args.new_tokens)],
                           capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    base = results["grpo"]["step_extra_mb"]
    for mode, res in results.items():
        res["ratio_vs_grpo"] = round(res["step_extra_mb"] / base, 2) if base > 0 else None
    print(json.dumps({"vocab": args.vocab, "device": args.device, "new_tokens": args.new_tokens, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
