"""``aws`` (AWS CLI v2) on a sandboxed node: the subcommands the boot scripts use, over boto3.

``s3 cp s3://B/K DEST``, ``ssm get-parameter`` (``--with-decryption``, ``--query``,
``--output text|json``) and ``ssm put-parameter``. Credentials and the endpoint come from the
environment (what IMDS provides on EC2); the region only from ``--region`` or ``AWS_REGION``.
Errors print the CLI's message shape and exit 254 (a service error) or 252 (bad usage).
"""

from __future__ import annotations

import argparse
import json
import sys

import boto3
import jmespath
from botocore.exceptions import ClientError


def _client(service: str, region: str | None):
    if not region:
        print("You must specify a region. You can also configure your region by running \"aws configure\".",
              file=sys.stderr)
        raise SystemExit(253)
    return boto3.client(service, region_name=region)


def _print(result, query: str | None, output: str) -> None:
    if query:
        result = jmespath.search(query, result)
    if output == "text" and not isinstance(result, (dict, list)):
        print(result)
    else:
        print(json.dumps(result, indent=4, default=str))


def s3_cp(a: argparse.Namespace) -> None:
    if not a.source.startswith("s3://") or a.dest.startswith("s3://"):
        raise SystemExit(252)
    bucket, _, key = a.source[5:].partition("/")
    _client("s3", a.region).download_file(bucket, key, a.dest)
    if not a.only_show_errors:
        print(f"download: {a.source} to {a.dest}")


def ssm_get(a: argparse.Namespace) -> None:
    result = _client("ssm", a.region).get_parameter(Name=a.name, WithDecryption=a.with_decryption)
    result.pop("ResponseMetadata", None)
    _print(result, a.query, a.output)


def ssm_put(a: argparse.Namespace) -> None:
    kwargs = {"Name": a.name, "Type": a.type, "Value": a.value}
    if a.key_id:
        kwargs["KeyId"] = a.key_id
    result = _client("ssm", a.region).put_parameter(**kwargs)
    result.pop("ResponseMetadata", None)
    _print(result, a.query, a.output)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aws")
    services = p.add_subparsers(dest="service", required=True)
    s3 = services.add_parser("s3").add_subparsers(dest="op", required=True)
    cp = s3.add_parser("cp")
    cp.add_argument("source"), cp.add_argument("dest")
    cp.add_argument("--only-show-errors", action="store_true")
    cp.set_defaults(fn=s3_cp)
    ssm = services.add_parser("ssm").add_subparsers(dest="op", required=True)
    get = ssm.add_parser("get-parameter")
    get.add_argument("--name", required=True)
    get.add_argument("--with-decryption", action="store_true")
    get.set_defaults(fn=ssm_get)
    put = ssm.add_parser("put-parameter")
    put.add_argument("--name", required=True)
    put.add_argument("--type", default="String")
    put.add_argument("--key-id")
    put.add_argument("--value", required=True)
    put.set_defaults(fn=ssm_put)
    for sub in (cp, get, put):
        sub.add_argument("--region")
        sub.add_argument("--query")
        sub.add_argument("--output", default="json", choices=("json", "text"))
    return p


def main(argv: list[str]) -> int:
    import os

    try:
        a = parser().parse_args(argv)
    except SystemExit:
        return 252
    a.region = a.region or os.environ.get("AWS_REGION")
    try:
        a.fn(a)
    except ClientError as e:
        err = e.response.get("Error", {})
        print(f"\nAn error occurred ({err.get('Code')}) when calling the {e.operation_name} operation: "
              f"{err.get('Message')}", file=sys.stderr)
        return 254
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
