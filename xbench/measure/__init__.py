"""Measuring cross-attention alone: clocks, memory, FLOPs, inputs, kernel races."""
