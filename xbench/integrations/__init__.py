"""Bridges to outside services (wandb)."""
