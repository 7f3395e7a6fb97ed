"""xbench's Hydra configs, shipped in the wheel and found as ``pkg://xbench_configs``."""
