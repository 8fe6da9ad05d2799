"""Demo service: an HTTP-style order API. Each request (a ``SERVER`` span ``GET
/api/orders``) loads rows from an in-memory SQLite database, builds, serialises, parses and
hashes JSON documents (one child span each); some requests fail validation (status 500,
the exception recorded on the span)."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from typing import Any

from fleetprof.demo_services.agent import run

_rng = random.Random(7)
_db: sqlite3.Connection | None = None
_count = {"n": 0}
FAIL_EVERY = 13
"""Every n-th request fails validation."""


def database() -> sqlite3.Connection:
    """The service's database (in memory, created on first use)."""
    global _db
    if _db is None:
        _db = sqlite3.connect(":memory:", check_same_thread=False)
        _db.execute("CREATE TABLE sku (id TEXT PRIMARY KEY, price REAL, stock INTEGER)")
        _db.executemany("INSERT INTO sku VALUES (?, ?, ?)", [(f"s{i}", _rng.random() * 100, _rng.randrange(100)) for i in range(500)])
    return _db


def load_prices(skus: list[str]) -> dict[str, float]:
    marks = ",".join("?" * len(skus))
    rows = database().execute(f"SELECT id, price FROM sku WHERE id IN ({marks}) ORDER BY id", skus).fetchall()  # noqa: S608 - placeholders only
    return dict(rows)


def build_order(i: int, prices: dict[str, float]) -> dict[str, object]:
    skus = list(prices)
    items = [{"sku": s, "qty": _rng.randrange(1, 5), "price": prices[s]} for s in (_rng.choice(skus) for _ in range(20))]
    return {"id": i, "customer": f"c{_rng.randrange(10_000)}", "items": items, "tags": ["priority" if i % 7 == 0 else "normal"]}


def encode_orders(orders: list[dict[str, object]]) -> str:
    return json.dumps(orders, sort_keys=True)


def decode_orders(text: str) -> list[dict[str, object]]:
    return json.loads(text)


def checksum_orders(text: str) -> str:
    digest = b""
    for _ in range(20):
        digest = hashlib.sha256(digest + text.encode()).digest()
    return digest.hex()


def validate(orders: list[dict[str, Any]], request_no: int) -> None:
    """``ValueError`` for the requests that fail (every :data:`FAIL_EVERY`-th)."""
    if request_no % FAIL_EVERY == 0:
        raise ValueError(f"order {orders[0]['id']}: total exceeds the customer's credit limit")


def handle_request() -> None:
    """One traced request (see the module docstring)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = trace.get_tracer("fleetprof.demo.json_api")
    _count["n"] += 1
    n = _count["n"]
    with tracer.start_as_current_span("GET /api/orders", kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False, attributes={
        "http.request.method": "GET", "http.route": "/api/orders", "url.path": "/api/orders", "url.query": f"page={n % 10}",
        "server.address": "json-api", "user_agent.original": "demo-client/1.0",
    }) as req:
        try:
            skus = [f"s{_rng.randrange(500)}" for _ in range(40)]
            with tracer.start_as_current_span("SELECT sku", kind=SpanKind.CLIENT, attributes={
                "db.system.name": "sqlite", "db.operation.name": "SELECT", "db.collection.name": "sku",
                "db.query.text": "SELECT id, price FROM sku WHERE id IN (?)",
            }) as db:
                prices = load_prices(skus)
                db.set_attribute("db.response.returned_rows", len(prices))
            with tracer.start_as_current_span("build_orders") as sp:
                orders = [build_order(i, prices) for i in range(50)]
                sp.add_event("orders.built", {"orders": len(orders)})
            with tracer.start_as_current_span("json.serialize") as sp:
                text = encode_orders(orders)
                sp.set_attribute("payload.bytes", len(text))
            with tracer.start_as_current_span("json.parse"):
                decode_orders(text)
            with tracer.start_as_current_span("validate"):
                validate(orders, n)
            with tracer.start_as_current_span("checksum"):
                checksum_orders(text)
            req.set_attribute("http.response.status_code", 200)
        except ValueError as e:
            req.record_exception(e)
            req.set_attribute("http.response.status_code", 500)
            req.set_attribute("error.type", type(e).__name__)
            req.set_status(Status(StatusCode.ERROR, str(e)))


if __name__ == "__main__":
    run("json-api", handle_request, {"tier": "api"})
