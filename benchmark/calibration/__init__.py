"""Calibration of hyperparameters on each task's calibration split, and its cache."""
