"""Data sources and task definitions (data, operator, noise, splits)."""
