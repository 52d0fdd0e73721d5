"""`sdlab report RUNS_DIR --out OUT [--title T]`: one self-contained HTML report over a folder of
runs, plus summary.csv / summary.json (what it shows: `sdlab/experiments/report/__init__.py`)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs_dir", help="folder searched recursively for runs (config.yaml + metrics.jsonl)")
    p.add_argument("--out", required=True, help="output folder for report.html, summary.csv, summary.json")
    p.add_argument("--title", default=None)


def run(args) -> int:
    from ..experiments.report import build_report

    path = build_report(args.runs_dir, args.out, title=args.title)
    data = json.loads((path.parent / "summary.json").read_text())
    print(f"report: {path} ({len(data['runs'])} runs, {len(data['groups'])} groups); "
          f"numbers in {path.parent / 'summary.csv'} and {path.parent / 'summary.json'}")
    if not data["runs"]:
        print(f"warning: no runs (folders with config.yaml and metrics.jsonl) under {args.runs_dir}")
    return 0
