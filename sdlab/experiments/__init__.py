"""Experiments: grids of training runs, HTML reports over run folders, and the organism demo (the
libraries behind `sdlab sweep`, `sdlab report` and `sdlab demo`; their command lines are in
`sdlab/commands/`).

- `sweep`: sweep files -> validated grid of run configs -> run folders with `status.json`,
  executed one after another or N at a time, resumable (`run_sweep`, also the demo's runner).
- `report/`: run folders -> groups of seeds -> curves with confidence bands, the study's figures
  (per-word epistemic change, task-coverage sweep, context-richness sweep), final tables and
  before/after samples, as a self-contained `report.html` plus `summary.csv`/`summary.json`;
  one `Figure` (compute + section) per figure in `report/figures/`.
- `demo`: GRPO vs SDPO on the model organism through `run_sweep`, summarized and reported.
- `eval_recipe`: the old `python -m` path of `sdlab eval-recipe` (a shim).

Heavy imports (torch, matplotlib) happen inside functions so that `sdlab --help` stays fast.
"""
