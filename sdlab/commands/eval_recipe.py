"""`sdlab eval-recipe RECIPE.yaml [key=value ...] --model M --out DIR [--print-only]`: run `sdlab eval`
from a YAML file of its options (the evaluation recipes in `recipes/eval/`).

  sdlab eval-recipe recipes/eval/qwen3-8b-think.yaml \\
      --model runs/qwen3-8b-think/sdpo_demo/final --out evals/qwen3-think-sdpo

(also `python -m sdlab.experiments.eval_recipe ...`, the path the recipes cite). The YAML keys are
the long options of `sdlab eval` with `_` for `-` (`benchmarks`, `n`, `temperature`, `top_p`,
`top_k`, `max_new_tokens`, `grader`, `prompt_template`, `enable_thinking`, `backend`,
`batch_size`, ...); `benchmarks` may be a list. `--model` / `--out` (or `model:` / `out:` in the
file) say what to evaluate and where; `key=value` arguments override the file. The equivalent
`sdlab eval ...` command line is printed before running, so every number can be reproduced
without this helper.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..config import ConfigError, parse_override

__all__ = ["add_arguments", "build_argv", "eval_parser", "load_eval_recipe", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="YAML file of `sdlab eval` options (recipes/eval/*.yaml)")
    p.add_argument("--model", default=None, help="hub id, local path or a run's final/ folder")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--print-only", action="store_true", help="print the sdlab eval command line and exit")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, e.g. n=4 benchmarks=aime24")


def run(args) -> int:
    options = load_eval_recipe(args.recipe)
    for item in args.overrides:
        key, value = parse_override(item)
        options[key] = value
    if args.model:
        options["model"] = args.model
    if args.out:
        options["out"] = args.out
    parser = eval_parser()
    eval_argv = build_argv(options, parser)
    print("sdlab eval " + " ".join(shlex.quote(a) for a in eval_argv), flush=True)
    if args.print_only:
        return 0
    missing = [k for k in ("model", "out") if not options.get(k)]
    if missing:
        raise ConfigError(f"missing {' and '.join('--' + m for m in missing)}")
    from . import eval as eval_cli

    return int(eval_cli.run(parser.parse_args(eval_argv)) or 0)


def eval_parser() -> argparse.ArgumentParser:
    """The option parser of `sdlab eval`."""
    from . import eval as eval_cli

    p = argparse.ArgumentParser(prog="sdlab eval", add_help=False, exit_on_error=False)
    eval_cli.add_arguments(p)
    return p


def load_eval_recipe(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"eval recipe not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an eval recipe must be a mapping of `sdlab eval` options")
    return data


def build_argv(options: dict[str, Any], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """`sdlab eval` arguments for a mapping of options; unknown keys raise ConfigError."""
    parser = parser or eval_parser()
    known = _options(parser)
    argv: list[str] = []
    for key, value in options.items():
        if key not in known:
            raise ConfigError(f"eval recipe: unknown option {key!r}; valid: {', '.join(sorted(known))}")
        if value is None:
            continue
        if key == "enable_thinking":
            argv.append("--enable-thinking" if value else "--no-thinking")
            continue
        if isinstance(value, bool):
            raise ConfigError(f"eval recipe: {key} expects a value, not {value!r}")
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        flag = next(o for o in known[key].option_strings if o.startswith("--"))
        argv += [flag, str(value)]
    return argv


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """YAML key -> argparse action (long options only; `--no-thinking` is `enable_thinking: false`)."""
    out = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in out and action.dest != "help":
            out[action.dest] = action
    return out
