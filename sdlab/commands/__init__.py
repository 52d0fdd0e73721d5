"""Command implementations that are not owned by a single subsystem (train, sft)."""
