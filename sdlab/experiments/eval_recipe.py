"""Run `sdlab eval` from a YAML file of its options (the evaluation recipes in `recipes/eval/`).

  python -m sdlab.experiments.eval_recipe recipes/eval/qwen3-8b-think.yaml \\
      --model runs/qwen3-8b-think/sdpo_demo/final --out evals/qwen3-think-sdpo [key=value ...]

The YAML keys are the long options of `sdlab eval` with `_` for `-` (`benchmarks`, `n`,
`temperature`, `top_p`, `top_k`, `max_new_tokens`, `grader`, `prompt_template`, `enable_thinking`,
`backend`, `batch_size`, ...); `benchmarks` may be a list. `--model` / `--out` (or `model:` / `out:`
in the file) say what to evaluate and where; `key=value` arguments override the file. The
equivalent `sdlab eval ...` command line is printed before running, so every number can be
reproduced without this helper.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, parse_override

__all__ = ["build_argv", "eval_parser", "load_eval_recipe", "main"]


def eval_parser() -> argparse.ArgumentParser:
    from ..commands import eval as eval_cli

    p = argparse.ArgumentParser(prog="sdlab eval", add_help=False, exit_on_error=False)
    eval_cli.add_arguments(p)
    return p


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """YAML key -> argparse action (long options only; `--no-thinking` is `enable_thinking: false`)."""
    out = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in out and action.dest != "help":
            out[action.dest] = action
    return out


def load_eval_recipe(path: str | Path) -> dict[str, Any]:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sdlab.experiments.eval_recipe", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", help="YAML file of `sdlab eval` options (recipes/eval/*.yaml)")
    ap.add_argument("--model", default=None, help="hub id, local path or a run's final/ folder")
    ap.add_argument("--out", default=None, help="output folder")
    ap.add_argument("--print-only", action="store_true", help="print the sdlab eval command line and exit")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, e.g. n=4 benchmarks=aime24")
    args = ap.parse_intermixed_args(argv)
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
        ap.error(f"missing {' and '.join('--' + m for m in missing)}")
    from ..commands import eval as eval_cli

    return int(eval_cli.run(parser.parse_args(eval_argv)) or 0)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
