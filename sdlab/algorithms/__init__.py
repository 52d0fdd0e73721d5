"""Objectives as pure tensor functions: advantages, GRPO policy loss, SDPO divergences, aggregation,
teacher context and teacher weights. Import the submodules directly (``from sdlab.algorithms import grpo``)."""
