"""Small CPU-bound demo workloads profiled by the real pyroscope-io agent (``make run``).

Each service runs as ``python -m fleetprof.demo_services.<name> --server URL`` and loops
until killed (or for ``--seconds``)."""
