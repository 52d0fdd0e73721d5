"""`sdlab sweep SWEEP.yaml [--dry-run] [--parallel N] [--only PATTERN]`: a grid of training runs
(the sweep file format and the run states: `sdlab/experiments/sweep.py`)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="sweep file (YAML: base, overrides, axes, name, output_dir, parallel)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the grid without running anything")
    p.add_argument("--parallel", type=int, default=None,
                   help="runs at a time (default: the sweep file's parallel, else 1)")
    p.add_argument("--only", default=None, help="run only names matching these comma-separated glob patterns")
    p.add_argument("--output-dir", default=None, help="override the sweep file's output_dir")
    p.add_argument("--in-process", action="store_true",
                   help="train in this process instead of one subprocess per run (sequential; for debugging)")


def run(args) -> int:
    from ..experiments import sweep as sw

    sweep = sw.load_sweep(args.sweep, output_dir=args.output_dir, parallel=args.parallel)
    runs = sw.expand(sweep)
    chosen = sw.select(runs, args.only)
    plans = sw.plan(chosen)
    print(f"sweep {args.sweep}: {len(chosen)} of {len(runs)} runs -> {sweep.output_dir} "
          f"(parallel {1 if args.in_process else sweep.parallel}, base {sweep.base_source})")
    print(sw.format_grid(chosen, plans))
    if args.dry_run:
        return 0
    from ..engine.runs import RunLock

    runner = sw.inprocess_runner if args.in_process else None
    # one sweep per folder (each run also locks its own); `kill` / a job scheduler stops it like Ctrl-C
    with RunLock(sweep.output_dir), sw.sigterm_as_interrupt():
        sw.prepare(runs, sweep)
        results = sw.run_sweep(chosen, parallel=1 if args.in_process else sweep.parallel, runner=runner)
    failed = [n for n, s in results.items() if s == "failed"]
    done = sum(s == "done" for s in results.values())
    print(f"[sweep] {done}/{len(results)} done" + (f", {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    for n in failed:
        st = sw.read_status(sweep.output_dir / n) or {}
        print(f"  {n}: {(st.get('error') or '').splitlines()[0] if st.get('error') else 'see status.json'}")
    return 1 if failed or any(s != "done" for s in results.values()) else 0
