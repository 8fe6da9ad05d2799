"""Distributed traces: OTLP/HTTP ingest, columnar span segments, lookup, search and RED.

Stages (one module each): :mod:`.otlp` decodes OTLP protobuf and OTLP JSON into columnar
:class:`~fleetprof.traces.table.SpanTable` s (with the compiled request scan of
:mod:`.scan`) and renders stored spans back (OTLP JSON, Tempo JSON); :mod:`.table` is the
in-memory span table; :mod:`.format` is the span segment object (a head with a trace-id
filter, ids, tags, Parquet columns); :mod:`.writer` batches tables into durable segments
(the profile writer's contract); :mod:`.cache` keeps decoded segments and heads;
:mod:`.query` answers lookups by trace or span id, searches, tag autocomplete and RED
figures; :mod:`.compact` merges span segments.
"""
