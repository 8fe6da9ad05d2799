"""Log deliveries of AWS services into the stack's buckets, as S3 would authorize them.

Contract: :func:`analyze` finds every CloudTrail trail and AWS Config delivery channel and
evaluates the calls the service makes on its target bucket against that bucket's policy with
:mod:`.policy_eval` (service principals get no IAM permissions, so only the bucket policy
can allow them), in the request context AWS sends:

- CloudTrail: ``s3:GetBucketAcl`` on the bucket and ``s3:PutObject`` on
  ``<prefix/>AWSLogs/<account>/CloudTrail/...`` with ``aws:SourceArn`` (the trail),
  ``aws:SourceAccount`` and ``s3:x-amz-acl=bucket-owner-full-control``;
- AWS Config: ``s3:GetBucketAcl`` and ``s3:ListBucket`` on the bucket and ``s3:PutObject``
  on ``<prefix/>AWSLogs/<account>/Config/...`` with ``aws:SourceAccount`` and the same ACL.

All calls use TLS (``aws:SecureTransport=true``). A bucket without a policy refuses all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from components.aws_model.graph import Graph
from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.mockrun import MockResource

T_BUCKET = "aws:s3/bucket:Bucket"
T_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OWNER_ACL = "bucket-owner-full-control"


@dataclass(frozen=True)
class Delivery:
    """One call a service makes on a delivery bucket."""

    source: str  # "trail audit-trail"
    principal: Principal
    action: str
    resource: str
    context: tuple[tuple[str, str], ...]


def _prefix(value: object) -> str:
    return f"{value}/" if value else ""


def _account(r: MockResource) -> str:
    return str(r.outputs["arn"]).split(":")[4]


def _calls(g: Graph) -> Iterator[tuple[MockResource | None, Delivery]]:
    """(target bucket, call) for every trail and Config delivery channel."""
    for trail in g.of_type("aws:cloudtrail/trail:Trail"):
        account = _account(trail)
        bucket = g.ref_of_type(trail.inputs.get("s3BucketName"), T_BUCKET)
        arn = bucket.outputs["arn"] if bucket else f"arn:aws:s3:::{trail.inputs.get('s3BucketName')}"
        who = Principal("Service", "cloudtrail.amazonaws.com")
        ctx = {"aws:SourceArn": trail.outputs["arn"], "aws:SourceAccount": account, "aws:SecureTransport": "true"}
        key = f"{arn}/{_prefix(trail.inputs.get('s3KeyPrefix'))}AWSLogs/{account}/CloudTrail/log.json.gz"
        label = f"trail {trail.name}"
        yield bucket, Delivery(label, who, "s3:GetBucketAcl", arn, tuple(sorted(ctx.items())))
        put = {**ctx, "s3:x-amz-acl": OWNER_ACL}
        yield bucket, Delivery(label, who, "s3:PutObject", key, tuple(sorted(put.items())))
    for channel in g.of_type("aws:cfg/deliveryChannel:DeliveryChannel"):
        account = _account(channel)
        bucket = g.ref_of_type(channel.inputs.get("s3BucketName"), T_BUCKET)
        arn = bucket.outputs["arn"] if bucket else f"arn:aws:s3:::{channel.inputs.get('s3BucketName')}"
        who = Principal("Service", "config.amazonaws.com")
        ctx = {"aws:SourceAccount": account, "aws:SecureTransport": "true"}
        key = f"{arn}/{_prefix(channel.inputs.get('s3KeyPrefix'))}AWSLogs/{account}/Config/snapshot.json.gz"
        label = f"Config delivery {channel.name}"
        for action in ("s3:GetBucketAcl", "s3:ListBucket"):
            yield bucket, Delivery(label, who, action, arn, tuple(sorted(ctx.items())))
        put = {**ctx, "s3:x-amz-acl": OWNER_ACL}
        yield bucket, Delivery(label, who, "s3:PutObject", key, tuple(sorted(put.items())))


def _bucket_statements(g: Graph, bucket: MockResource | None) -> list:
    if bucket is None:
        return []
    return [
        s
        for p in g.of_type(T_POLICY)
        if g.ref_of_type(p.inputs.get("bucket"), T_BUCKET) is bucket
        for s in statements(p.inputs.get("policy"))
    ]


def analyze(graph: Graph) -> list[str]:
    """One line per delivery call the bucket policy would refuse (empty: all allowed)."""
    out = []
    for bucket, call in _calls(graph):
        verdict = decide(
            _bucket_statements(graph, bucket),
            Request(call.principal, call.action, call.resource, dict(call.context)),
            resource_policy=True,
        )
        if verdict != "allow":
            where = bucket.name if bucket else "a bucket this stack does not create"
            why = "denied by the bucket policy" if verdict == "deny" else "not allowed by the bucket policy"
            out.append(f"{call.source}: {call.principal.id} {call.action} on {where}: {why}")
    return out


def facts(graph: Graph) -> list[str]:
    """One line per delivering service and target bucket, then every refused call."""
    seen = sorted({f"{c.source} -> {b.name if b else '?'}" for b, c in _calls(graph)})
    return seen + analyze(graph)
