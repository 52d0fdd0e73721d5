"""P0 (the manipulation check of world v2) on one base model: writes JSON and a markdown table.

    python benchmarks/organism_p0.py --world-seed 0 [--path DIR] [--n 8] [--out runs/p0-w0]

Without --path it resolves the base of `organism: {version: 2, seed: W}` (shipped, cached or
pretrained). One torch thread (the machine is shared). See sdlab/organism/manipulation.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--path", default=None)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overrides", default="{}", help="JSON mapping of extra organism overrides")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from sdlab.organism.manipulation import fact_recall, format_p0, p0_table
    from sdlab.organism.pretrain import load_organism
    from sdlab.organism.registry import organism_base_path

    overrides = {"version": 2, "seed": args.world_seed, **json.loads(args.overrides)}
    path = Path(args.path) if args.path else organism_base_path(overrides)
    model, tok, world = load_organism(path)
    t0 = time.perf_counter()
    result = p0_table(model, tok, world, n=args.n, seed=args.seed, keep_samples=True)
    result["settings"].update({"path": str(path), "world_seed": world.cfg.seed,
                               "seconds": round(time.perf_counter() - t0, 1),
                               "fact_recall": fact_recall(model, tok, world)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    samples = result.pop("samples")
    (out / "p0.json").write_text(json.dumps(result, indent=2))
    (out / "samples.json").write_text(json.dumps(samples))
    text = format_p0(result)
    (out / "p0.md").write_text(text + "\n")
    print(json.dumps(result["settings"]))
    print(text)


if __name__ == "__main__":
    main()
