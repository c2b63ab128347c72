"""Results: the row store, leaderboards, merges, the HTML report, loggers and W&B."""
