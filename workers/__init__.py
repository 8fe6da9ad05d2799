"""Ray workers of fleetprof: compaction, retention, backfill and fleet-wide analysis.

Every job reads its own inputs from the object store and index (``file://``/``s3://``,
``sqlite://``/``dynamodb://``); see ``workers/README.md`` for the jobs, the partitioning and
the schemas of the analysis tables.
"""
