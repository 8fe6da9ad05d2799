"""Key grants: for every resource encrypted with a customer managed key, the principal that
uses the key at run time and whether AWS would let it.

Contract: :func:`analyze` finds each use of each ``aws:kms/key:Key`` (by ARN, id or alias)
and evaluates it against the key policy with :mod:`.policy_eval`, in the request context
AWS sends:

- log groups (``kmsKeyId``): ``logs.<region>.amazonaws.com`` with the encryption context
  ``aws:logs:arn`` of the log group;
- SNS topics (``kmsMasterKeyId``): each publisher — ``cloudwatch.amazonaws.com`` for
  alarms, ``events.amazonaws.com`` for EventBridge targets (neither sends ``aws:Source*``
  keys to KMS), and roles allowed ``sns:Publish`` (``kms:GenerateDataKey`` and
  ``kms:Decrypt``, through SNS, in the topic's encryption context). Email and HTTPS
  subscriptions are no key use: SNS delivers with the data key its publishers' requests
  obtained (the SNS key-management guide counts two KMS requests per publishing principal
  per data-key reuse period, none per delivery), so no ``sns.amazonaws.com`` grant is needed;
- EBS of a launch template an Auto Scaling group launches: the group's service-linked role
  (it holds no KMS permissions of its own, so the key policy must name it), including
  ``kms:CreateGrant`` with ``kms:GrantIsForAWSResource``; EBS of an instance: the
  deploying identity through EC2;
- S3 objects of SSE-KMS buckets: the roles allowed to put/get them; SSM SecureString
  parameters (resources, or written by the nodes' user data): the roles allowed to put/get
  them; Secrets Manager secrets: the roles allowed to read them;
- DynamoDB tables and ECR repositories: the deploying identity (the services then use
  their own grants).

An IAM role is allowed when the key policy allows it directly, or delegates to its account
and the role's own policies allow the action on the key. The deploying identity is assumed
to hold IAM administrator rights. A key policy that names a principal ARN which the stack
does not create before the key is rejected by AWS (MalformedPolicyDocument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from components.aws_model.graph import Graph, as_list
from components.aws_model.kms_uses import FINDERS, KeyContext, KeyUse
from components.aws_model.policy_eval import Request, decide

T_KEY = "aws:kms/key:Key"


@dataclass(frozen=True)
class Denial:
    """One action of one key use that AWS would refuse, and why."""

    use: KeyUse
    action: str
    reason: str

    def __str__(self) -> str:
        return f"key {self.use.key}: {self.use.resource}: {self.use.principal.id} cannot {self.action}: {self.reason}"


@dataclass
class Report:
    """Every key use found, the refused actions and the policies AWS would reject."""

    uses: list[KeyUse] = field(default_factory=list)
    denied: list[Denial] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [str(d) for d in self.denied] + self.malformed


def check(k: KeyContext, use: KeyUse) -> list[Denial]:
    """Each action of ``use`` that AWS would refuse, with the reason."""
    out = []
    for action in use.actions:
        context = dict(use.context)
        if action == "kms:CreateGrant":
            context["kms:GrantIsForAWSResource"] = "true"
        request = Request(use.principal, action, k.arn, context)
        verdict = decide(k.statements, request, resource_policy=True)
        if verdict == "account" and use.identity is not None:
            verdict = (
                "allow"
                if decide(use.identity, request, resource_policy=False) == "allow"
                else "iam"
            )
        reason = {
            "deny": "the key policy denies it",
            "account": "the key policy only delegates to the account and this principal has no IAM permissions of its own",
            "iam": "the key policy delegates to the account but the principal's IAM policies do not allow it on the key",
            None: "the key policy does not allow it",
        }.get(verdict)
        if reason:
            out.append(Denial(use, action, reason))
    return out


def malformed(k: KeyContext) -> list[str]:
    """Principal ARNs in the key policy that may not exist when AWS validates the policy."""
    out = []
    deps = set(k.key.property_dependencies.get("policy", []))
    for s in k.statements:
        principal = s.get("Principal")
        for arn in as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []:
            if arn in ("*", k.account, f"arn:aws:iam::{k.account}:root"):
                continue
            created = k.graph.ref(arn)
            if created is None or created.urn not in deps:
                out.append(
                    f"key {k.key.name}: policy names {arn}, which this stack does not create before the key; "
                    "AWS rejects the policy (MalformedPolicyDocument) in an account where it does not exist yet"
                )
    for asg in k.graph.of_type("aws:autoscaling/group:Group"):
        slr = asg.inputs.get("serviceLinkedRoleArn")
        if slr and k.graph.ref(slr) is None:
            out.append(
                f"group {asg.name} uses service-linked role {slr}, which this stack does not create"
            )
    return out


def analyze(graph: Graph) -> Report:
    """Key-use findings of one rendered stack (see the module contract)."""
    report = Report()
    for key in graph.of_type(T_KEY):
        k = KeyContext(graph, key)
        for finder in FINDERS:
            for use in finder(k):
                report.uses.append(use)
                report.denied += check(k, use)
        report.malformed += malformed(k)
    return report


def facts(graph: Graph) -> list[str]:
    """One line per key user (resource, principal, actions, verdict), then malformed policies."""
    report = analyze(graph)
    lines = []
    for use in report.uses:
        refused = [d for d in report.denied if d.use is use]
        verdict = "allowed"
        if refused:
            verdict = f"REFUSED {', '.join(d.action for d in refused)} ({refused[0].reason})"
        lines.append(f"key {use.key}: {use}: {verdict}")
    return lines + report.malformed
