"""The `sdlab` command line.

  sdlab demo                         the model organism: GRPO vs SDPO on a laptop CPU (default job)
  sdlab train CONFIG.yaml [k=v ...]  train with GRPO or SDPO (`--resume` continues a run)
  sdlab eval --model M --benchmarks aime24,amc23 ...
  sdlab epistemic FILE [FILE2]       epistemic-word statistics of saved responses
  sdlab info --model M --benchmark B --contexts none,demo,answer
  sdlab sft CONFIG.yaml              off-policy self-distillation (SFT on guided / unguided traces)
  sdlab sweep SWEEP.yaml             a grid of runs
  sdlab report RUNS_DIR --out OUT    HTML report of a sweep
  sdlab eval-recipe RECIPE.yaml --model M --out DIR   `sdlab eval` from a recipe (recipes/eval/*.yaml)
  sdlab probe                        what the organism's base model does
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands import COMMANDS


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Only the selected command's module is imported (start-up stays fast, and one command's
    optional dependencies never break another)."""
    parser = argparse.ArgumentParser(prog="sdlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == command:
            _lazy(module).add_arguments(p)
    return parser


def _lazy(module: str):
    return importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((a for a in argv if a in COMMANDS), None))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_lazy(args._module).run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # user-facing errors: one clear line, not a traceback
        from .errors import UserError

        if isinstance(e, (UserError, FileNotFoundError)) and not os.environ.get("SDLAB_TRACEBACK"):
            print(f"sdlab {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
