"""Build a report from a sweep folder and save a screenshot of it (for the README / docs).

  python benchmarks/report_screenshot.py runs/organism-coverage --png docs/report-screenshot.png
  python benchmarks/report_screenshot.py /tmp/synthetic --synthetic     # made-up runs, for a layout preview

Needs chromium + chromedriver and selenium (see sdlab/testing/browser.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdlab.experiments.report import build_report  # noqa: E402
from sdlab.testing.browser import screenshot  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_dir", help="a sweep's output folder (any folder of runs)")
    ap.add_argument("--out", default=None, help="report folder (default: a temporary folder)")
    ap.add_argument("--png", default="docs/report-screenshot.png")
    ap.add_argument("--title", default=None)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2000, help="pixels from the top of the page")
    ap.add_argument("--synthetic", action="store_true",
                    help="first write synthetic runs (made-up numbers) into runs_dir")
    args = ap.parse_args(argv)
    if args.synthetic:
        from sdlab.testing.synthetic_runs import write_synthetic_runs

        write_synthetic_runs(args.runs_dir)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="sdlab-report-"))
    report = build_report(args.runs_dir, out, title=args.title)
    png = screenshot(report, args.png, width=args.width, max_height=args.height)
    print(f"report: {report}\nscreenshot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
