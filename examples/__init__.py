"""Runnable examples; shipped in the wheel as ``edabus.examples`` for ``edabus demo``."""
