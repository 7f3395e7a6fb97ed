"""Measuring cross-attention alone, one job per module: ``types`` (the typed results),
``clock`` (latency), ``memory`` (peak bytes and the method table), ``flops`` (the FLOP
convention), ``inputs`` (q, k, v, masks and input rotation for a shape), ``candidates``
(keep the fastest of several implementations) and ``cross_attention`` (the measurement
primitive the runner, ``xbench bench`` and ``benchmarks/`` share)."""
