"""fleetprof: continuous profiling for AWS fleets.

Stages of the data path are packages: ``formats`` (decode/encode), ``model`` (the canonical
columnar profile and its operations), ``render`` (flame graphs), ``compare`` (diff and
regression gate), and the server/worker stages built on them.
"""

from fleetprof.numba_cache import ensure_writable_cache

__version__ = "0.1.0"

ensure_writable_cache()
