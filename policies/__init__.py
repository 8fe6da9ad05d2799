"""fleetprof CrossGuard policy pack.

Rules are plain functions over (resource type, props[, config]) in :mod:`policies.rules`,
shared by the real ``PolicyPack`` (:mod:`policies.pack`, served by ``policies/__main__.py``
under ``pulumi preview --policy-pack policies``) and the offline evaluator
(:mod:`policies.offline`, ``make policy STACK=…``).
"""
