"""Leaderboards: records aggregated per task, and their console, file and wandb views."""
