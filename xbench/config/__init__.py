"""Hydra configuration: plugin option nodes, override checks, structured defaults."""
