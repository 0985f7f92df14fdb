"""edabus benchmarks, each figure next to raw zenoh-python doing the same work.

Run ``python -m benchmarks`` (``--quick`` for a short run, ``--help`` for the
options). Every edabus figure is printed as a ratio to the raw one (or the
reference the row names) measured in the same run, because absolute numbers
depend on the machine, next to its target; docs/benchmarks.md holds the latest
full run.

Modules:
    _model       the messages, the counting actors and the raw counterparts
    _loops       the work of each side: sinks, the queryable, publish and request loops
    _stats       percentiles, medians and the run records
    _inproc      the one-process scenarios (raw and edabus)
    _pykka       the same in-process work done by Pykka actors (optional: the bench extra)
    _activation  messages to new keys against messages to live ones
    _procs       free ports and worker subprocesses, always ended
    _worker      the entry points those subprocesses run
    _cross       the scenarios across processes through a router
    _memory      memory per idle actor, in fresh worker processes
    _cluster     three nodes behind a router: what each receives for what it handles
    _suite       every scenario of one run, repeated and summarized
    _rows        the rows of issue 7: references, targets, met or not
    _report      the table and the JSON file
    compute      ``python -m benchmarks.compute``: batching on/off and array payloads
    durability   ``python -m benchmarks.durability``: reliable delivery and durable state
"""
