"""Evaluation: the runner that orchestrates one combination, metrics, examples, traces."""
