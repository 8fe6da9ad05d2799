"""Demo service: builds, serialises and parses JSON documents, and hashes them."""

from __future__ import annotations

import hashlib
import json
import random

from fleetprof.demo_services.agent import run

_rng = random.Random(7)


def build_order(i: int) -> dict[str, object]:
    return {
        "id": i,
        "customer": f"c{_rng.randrange(10_000)}",
        "items": [{"sku": f"s{_rng.randrange(500)}", "qty": _rng.randrange(1, 5), "price": _rng.random() * 100} for _ in range(20)],
        "tags": ["priority" if i % 7 == 0 else "normal"],
    }


def encode_orders(orders: list[dict[str, object]]) -> str:
    return json.dumps(orders, sort_keys=True)


def decode_orders(text: str) -> list[dict[str, object]]:
    return json.loads(text)


def checksum_orders(text: str) -> str:
    digest = b""
    for _ in range(20):
        digest = hashlib.sha256(digest + text.encode()).digest()
    return digest.hex()


def handle_request() -> None:
    orders = [build_order(i) for i in range(50)]
    text = encode_orders(orders)
    decode_orders(text)
    checksum_orders(text)


if __name__ == "__main__":
    run("json-api", handle_request, {"tier": "api"})
