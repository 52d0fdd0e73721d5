"""Experiments: grids of training runs (`sdlab sweep`) and HTML reports over run folders
(`sdlab report`).

- `sweep`: sweep files -> validated grid of run configs -> run folders with `status.json`,
  executed one after another or N at a time, resumable.
- `report`: run folders -> groups of seeds -> curves with confidence bands, the study's figures
  (per-word epistemic change, task-coverage sweep, context-richness sweep), final tables and
  before/after samples, as a self-contained `report.html` plus `summary.csv`/`summary.json`.
- `plots`: the matplotlib figures (Agg, PNG bytes).
- `eval_recipe`: run `sdlab eval` from a YAML file of its options (`recipes/eval/*.yaml`).

Heavy imports (torch, matplotlib) happen inside functions so that `sdlab --help` stays fast.
"""
