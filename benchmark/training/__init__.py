"""Training: checkpoints (content-addressed), resumable snapshots, the shared training loop."""
