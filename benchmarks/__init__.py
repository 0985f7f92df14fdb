"""edabus benchmarks, each figure next to raw zenoh-python doing the same work.

Run ``python -m benchmarks`` (``--quick`` for a short run, ``--help`` for the
options). Every edabus figure is printed as a ratio to the raw one measured in
the same run, because absolute numbers depend on the machine; docs/benchmarks.md
holds the latest full run.

Modules:
    _model    the messages, the counting actor and the raw counterparts
    _loops    the work of each side: sinks, the queryable, publish and request loops
    _stats    percentiles, medians and the run records
    _inproc   the one-process scenarios (raw and edabus)
    _procs    free ports and worker subprocesses, always ended
    _worker   the entry points those subprocesses run
    _cross    the scenarios across processes through a router
    _report   the table and the JSON file
    compute   ``python -m benchmarks.compute``: batching on/off and array payloads
"""
