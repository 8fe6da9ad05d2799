"""Distributed traces: OTLP/HTTP ingest, columnar span segments, lookup, search and RED.

Stages (one module each): :mod:`.otlp` decodes OTLP protobuf and OTLP JSON into columnar
:class:`~fleetprof.traces.otlp.SpanChunk` s and renders stored spans back (OTLP JSON,
Tempo JSON); :mod:`.format` is the span segment object; :mod:`.writer` batches chunks into
durable segments (the profile writer's contract); :mod:`.query` answers lookups by trace
or span id, searches, tag autocomplete and RED figures; :mod:`.compact` merges span
segments.
"""
