"""Evaluation: sample n responses per problem, grade them, and report avg@k, pass@k, CIs,
length and epistemic statistics (`sdlab eval`, and in-training evaluation)."""
