"""Object storage for immutable segments: ``file://`` and ``s3://`` (see ``objectstore.py``)."""

from fleetprof.storage.objectstore import FileStore, ObjectStore, S3Store, StoreError, open_store

__all__ = ["FileStore", "ObjectStore", "S3Store", "StoreError", "open_store"]
