"""Entry point of the policy pack: ``pulumi preview --policy-pack policies``.

Serves every rule of :mod:`policies.rules` as a mandatory CrossGuard policy. The stack's
requirements come from its environment class in ``policies/environment_classes.yaml`` (the
stack name is read from the resources' URNs); ``--policy-pack-config`` cannot relax them.
"""

import sys
from pathlib import Path

# The CLI runs this file from policies/; make the repo root importable for `policies.*`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=build_policies())
