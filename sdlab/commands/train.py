"""`sdlab train CONFIG.yaml [key.sub=value ...] [--resume]`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (omit to use the defaults)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. algorithm=sdpo teacher_context=demo")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in output_dir")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args) -> int:
    import yaml

    from ..config import load_config

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)
        config = None
    cfg = load_config(config, overrides)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    from ..engine.trainer import train

    train(cfg, resume=args.resume)
    return 0
