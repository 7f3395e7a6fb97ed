"""Helpers for task authors: padding and split data modules (``data``), checksummed caches
(``cache``), tokenizers and position codes (``text``), the loader and split options every
task shares (``options``), reading a user's files with one-line errors (``files``),
Hugging Face loading (``hf``), warnings for length caps that cut much of the examples
(``truncation``) and the training lengths of a length curriculum (``lengths``). Public,
like :mod:`xbench.api`."""
