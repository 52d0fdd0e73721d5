"""Command-line options that several commands share, defined once (not a command)."""

from __future__ import annotations

import argparse

from ..config import GRADERS


def add_sampling_options(p: argparse.ArgumentParser, *, n: int, n_help: str) -> None:
    """How responses are sampled and graded (`sdlab eval`, `sdlab info`)."""
    p.add_argument("--n", type=int, default=n, help=n_help)
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--grader", default="math_verify", choices=GRADERS)
    p.add_argument("--timeout", type=float, default=5.0, help="grader deadline per answer (seconds)")


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """How a problem becomes a prompt (the trainer's data.prompt_template / system_prompt / enable_thinking)."""
    p.add_argument("--prompt-template", default="boxed", help="boxed | plain | a string with {problem}")
    p.add_argument("--system-prompt", default=None)
    thinking = p.add_mutually_exclusive_group()
    thinking.add_argument("--enable-thinking", dest="enable_thinking", action="store_true", default=None)
    thinking.add_argument("--no-thinking", dest="enable_thinking", action="store_false")


def int_list(text: str) -> list[int]:
    """argparse type of a comma list of integers ("8,32,200"): a bad item is a usage error naming it."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
