"""Helpers for task authors: padding and split data modules (``data``), checksummed caches
(``cache``), tokenizers and position codes (``text``), the loader and split options every
task shares (``options``), reading a user's files with one-line errors (``files``) and
Hugging Face loading (``hf``). Public, like :mod:`xbench.api`."""
