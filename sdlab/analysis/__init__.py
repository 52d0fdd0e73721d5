"""Analysis: epistemic-word counts, evaluation statistics (pass@k, avg@k, bootstrap CIs)."""

from .epistemic import EPISTEMIC_WORDS, count_epistemic, total
from .stats import (
    avg_at_k,
    bootstrap_ci,
    cluster_bootstrap_diff,
    mean_ci_t,
    mean_pass_at_k,
    paired_bootstrap_diff,
    pass_at_k,
)

__all__ = [
    "EPISTEMIC_WORDS", "avg_at_k", "bootstrap_ci", "cluster_bootstrap_diff", "count_epistemic", "mean_ci_t",
    "mean_pass_at_k", "paired_bootstrap_diff", "pass_at_k", "total",
]
