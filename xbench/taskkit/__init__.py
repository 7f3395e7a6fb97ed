"""Helpers for task authors: padding and split data modules (``data``), checksummed caches
(``cache``), tokenizers and position codes (``text``), the loader and split options every
task shares (``options``), reading a user's files with one-line errors (``files``),
Hugging Face loading (``hf``) and warnings for length caps that cut much of the examples
(``truncation``). Public, like :mod:`xbench.api`."""
