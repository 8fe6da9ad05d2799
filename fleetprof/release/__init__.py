"""The delivery pipeline: ``fleetprof release …``.

A release (an image pinned by digest, the wheel's digest, and per-stack config) moves
through the waves of ``pipeline.yaml``: blockers → preview + offline policy → ``up`` →
approval workflows → bake (alarms, profiles) → promote, or roll back to the wave's last
known-good release and stop. Modules, one concern each:

* :mod:`.pipeline` — the pipeline file model and its validation; :class:`.pipeline.Release`.
* :mod:`.clock` — an injectable clock (tests never sleep for a bake).
* :mod:`.state` — shared state in S3 + DynamoDB and the per-stack lock (lease + expiry).
* :mod:`.deployer` — the deploy interface; Pulumi Automation API and a local recorder.
* :mod:`.alarms` — CloudWatch alarms of a stack (by name prefix and ``Environment`` tag).
* :mod:`.blockers` — time windows, blackout dates, alarms already in ALARM.
* :mod:`.approvals` — smoke and load workflows; :mod:`.bake` — alarm and profile bake.
* :mod:`.events` — the JSON event log and the summary table.
* :mod:`.orchestrator` — the per-wave state machine (resumable); :mod:`.cli` — commands.
"""
