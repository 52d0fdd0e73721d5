"""The training engine: rollouts -> rewards -> objective -> update, on accelerate."""
