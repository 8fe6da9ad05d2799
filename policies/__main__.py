"""Entry point of the policy pack: ``pulumi preview --policy-pack policies``.

Serves every rule of :mod:`policies.rules` as a mandatory CrossGuard policy. Pass the
stack's requirements with ``--policy-pack-config`` (``python -m policies.offline --stack
<stack> --emit-config``); without config the strict, prod-like defaults apply.
"""

import sys
from pathlib import Path

# The CLI runs this file from policies/; make the repo root importable for `policies.*`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, build_policies  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=build_policies())
