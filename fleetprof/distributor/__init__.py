"""Ingest request parsing: Connect ``Push``, legacy ``/ingest``, native ``/api/v1/ingest``.

Parsers turn a request (already authenticated, body read and size-limited) into a list of
:class:`fleetprof.segment.writer.IngestItem` (one per series × sample type) or raise
:class:`fleetprof.server.errors.ApiError`.
"""
