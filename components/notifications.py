"""Anomaly notifications: the SNS topic the scheduled fleet analysis publishes its profile
anomalies to, and its email subscriptions.

Contract:

* one standard topic, encrypted with the stack's customer managed key (SNS encrypts each
  message at rest and decrypts it on delivery with the data key it obtained through the
  publisher's own ``kms:GenerateDataKey``/``kms:Decrypt``; subscribers need no key access);
* one ``email`` subscription per configured address (AWS mails a confirmation link; nothing
  is delivered to an address until it confirms). A subscription's logical name derives from
  its address, so reordering the list replaces nothing;
* who may publish is decided by the publishers' IAM policies (the Ray node roles, on this
  topic only: :func:`components.ray_cluster.node_policy`); the topic has no resource policy
  granting anyone else.

The message format is :func:`workers.anomalies.notify_anomalies`'s (JSON with the tenant,
the window and the heaviest anomalies).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.tags import tags


@dataclass
class AnomalyNotificationsArgs:
    """Inputs of :class:`AnomalyNotifications`."""

    tags: dict[str, str]
    kms_key_arn: pulumi.Input[str]
    emails: tuple[str, ...] = ()


def subscription_suffix(email: str) -> str:
    """Stable logical-name suffix of one address's subscription (case-insensitive)."""
    return hashlib.blake2b(email.strip().lower().encode(), digest_size=4).hexdigest()


class AnomalyNotifications(pulumi.ComponentResource):
    """The anomaly topic and its email subscriptions."""

    def __init__(self, name: str, args: AnomalyNotificationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:notifications:AnomalyNotifications", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic_name = f"{name}-anomalies"
        self.topic = aws.sns.Topic(
            topic_name,
            display_name="fleetprof profile anomalies",
            kms_master_key_id=args.kms_key_arn,
            tags=tags(args.tags, topic_name),
            opts=child,
        )
        self.subscriptions = [
            aws.sns.TopicSubscription(
                f"{topic_name}-email-{subscription_suffix(email)}",
                topic=self.topic.arn,
                protocol="email",
                endpoint=email.strip(),
                opts=child,
            )
            for email in args.emails
        ]
        self.register_outputs({"topicArn": self.topic.arn})
