"""sdlab: one engine for GRPO and on-policy self-distillation (SDPO) on Hugging Face causal LMs,
with evaluation, epistemic analysis and a CPU-sized model organism of the study arXiv 2603.24472."""

__version__ = "0.1.0"
