"""`sdlab train CONFIG.yaml [key.sub=value ...] [--resume]`: GRPO or SDPO (`sdlab.engine.trainer`)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (omit to use the defaults)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. algorithm=sdpo teacher_context=demo")
    p.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint in output_dir")
    p.add_argument("--overwrite", action="store_true",
                   help="output_dir holds an earlier run: move it aside (to <output_dir>.replaced-<time>) "
                        "and start afresh")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def split_config_arg(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """`sdlab train k=v ...` without a YAML file: the first positional is then an override."""
    overrides = list(overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        return None, [config] + overrides
    return config, overrides


def run(args) -> int:
    from ..config import load_config

    cfg = load_config(*split_config_arg(args.config, args.overrides))
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    from ..engine.trainer import train

    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
