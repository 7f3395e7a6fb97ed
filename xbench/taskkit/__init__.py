"""Helpers for task authors: padding and split data modules, checksummed caches,
tokenizers and position codes, Hugging Face loading. Public, like :mod:`xbench.api`."""
