"""`sdlab demo [--seeds N] [--coverage 8,32,200] [--world-seed W] [--jobs J] [key.sub=value ...]`:
the model organism, GRPO vs SDPO from the same base, evaluated in-domain and OOD (what it runs and writes:
`sdlab/experiments/demo.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import int_list


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default: the config's)")
    p.add_argument("--coverage", type=int_list, default=None,
                   help="task coverage |D|, or a comma list for a sweep (e.g. 8,32,200)")
    p.add_argument("--world-seed", type=int_list, default=None,
                   help="the organism's world seed(s) (organism.seed; default: the config's, 0): another world "
                        "reruns the demo on a world nobody tuned on (bases of worlds 0 and 1 are shipped, any other "
                        "is pretrained once, ~2.5 min on one core); a comma list (0,1) runs every seed on every "
                        "world and pools the (world, seed) pairs")
    p.add_argument("--teacher-context", default="answer", help="SDPO teacher context level")
    p.add_argument("--algorithms", default="grpo,sdpo")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--config", default=None, help="base config (default: configs/organism.yaml)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at a time (default: one per CPU core on cpu, 1 on a GPU)")
    p.add_argument("overrides", nargs="*", help="extra key.sub=value overrides for every run")


def run(args) -> int:
    from ..experiments.demo import DemoRunsFailed, format_summary, run_demo
    from ..experiments.sweep import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # `kill` stops the runs like Ctrl-C does (they stay resumable)
            summary = run_demo(args.out, config=args.config, seeds=args.seeds, steps=args.steps,
                               coverages=args.coverage,
                               algorithms=[a for a in args.algorithms.split(",") if a], eval_every=args.eval_every,
                               teacher_context=args.teacher_context, device=args.device, jobs=args.jobs,
                               overrides=list(args.overrides), world_seeds=args.world_seed)
    except DemoRunsFailed as e:
        print(f"sdlab demo: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    out = Path(args.out)
    print(f"\nwrote {out / 'summary.json'} and {out / 'report.html'}")
    return 0
