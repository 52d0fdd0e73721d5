"""`sdlab sft CONFIG.yaml [key.sub=value ...] [--guidance LEVEL] [--traces-only] [--from-traces FILE]`

Off-policy self-distillation (the study's §4, Table 2): SFT on correct traces generated with or
without a guidance context; the pipeline is `sdlab.engine.sft`. SFT-only keys live under `sft.`
(a `sft:` section in the YAML or `sft.key=value` overrides):
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..config import CONTEXT_LEVELS, SFTConfig, load_config

__doc__ += "\n".join(f"  sft.{f.name} (default {f.default!r})" for f in dataclasses.fields(SFTConfig)) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (omit to use the defaults); may contain an sft: section")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, incl. sft.* keys (sft.epochs=2)")
    p.add_argument("--guidance", default=None, help=f"{' | '.join(CONTEXT_LEVELS)} (= sft.guidance)")
    p.add_argument("--traces-only", action="store_true", help="generate and write traces.jsonl, do not train")
    p.add_argument("--from-traces", default=None, metavar="FILE",
                   help="train on the traces in this JSONL instead of generating")
    p.add_argument("--overwrite", action="store_true",
                   help="output_dir holds an earlier run: move it aside (to <output_dir>.replaced-<time>) "
                        "and start afresh")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (with the sft section) and exit")


def load_sft_config(path: str | None, overrides: list[str] = (), *, guidance: str | None = None):
    """(Config, SFTConfig): the typed config, validated as for `sdlab train`, and its `sft` section."""
    cfg = load_config(path, list(overrides) + ([f"sft.guidance={guidance}"] if guidance is not None else []))
    return cfg, cfg.sft


def run(args) -> int:
    from .train import split_config_arg

    config, overrides = split_config_arg(args.config, args.overrides)
    cfg, _ = load_sft_config(config, overrides, guidance=args.guidance)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    from ..engine.sft import run_sft

    record = run_sft(cfg, traces_only=args.traces_only, from_traces=args.from_traces, overwrite=args.overwrite)
    out = Path(cfg.output_dir)
    keys = [k for k in record if k.startswith(("gen/", "traces/", "eval/"))] + \
        [k for k in ("sft/loss", "sft/epoch_nll_per_token") if k in record]
    for k in keys:
        v = record[k]
        print(f"{k:<36}{v:.4f}" if isinstance(v, float) else f"{k:<36}{v}")
    trained = not args.traces_only
    print(f"wrote {out / 'traces.jsonl'}" + (f", {out / 'final'}, {out / 'metrics.jsonl'}" if trained else ""))
    return 0
