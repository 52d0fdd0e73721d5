"""`sdlab probe [--path DIR]`: what the organism's base model does, set by set (`sdlab.organism.probe`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", help="organism folder (default: pretrain/load the default world)")
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")


def run(args) -> int:
    import torch

    from ..organism.pretrain import load_organism, pretrain
    from ..organism.probe import format_report, probe

    torch.set_num_threads(2)
    path = Path(args.path) if args.path else pretrain()
    model, tok, world = load_organism(path)
    results = probe(model, tok, world, samples=args.samples, seed=args.seed)
    results["path"] = str(path)
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
