"""Compute workers on GPUs (cupy) or the CPU (numpy)."""
