"""Per-app server state: settings, storage handles, writer, auth, limits, metrics."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from fleetprof import telemetry
from fleetprof.distributor.common import IngestConfig
from fleetprof.server.auth import Authenticator
from fleetprof.server.errors import ApiError
from fleetprof.server.gate import DecodeGate
from fleetprof.server.limits import RateLimiter
from fleetprof.server.logging import log
from fleetprof.server.metrics import Metrics
from fleetprof.server.settings import Settings

PROBE_KEY = "health/write-probe"
"""Object that readiness writes to test the store after a failed flush."""


@dataclass
class ServerState:
    settings: Settings
    auth: Authenticator
    limiter: RateLimiter
    metrics: Metrics
    ingest_cfg: IngestConfig
    gate: DecodeGate = field(default_factory=lambda: DecodeGate(2, 256 * 1024))
    """Bounds the large ingest decodes running at once (see :mod:`fleetprof.server.gate`)."""
    store: Any = None
    analysis_store: Any = None
    """Where ``/api/v1/analysis`` reads (``settings.analysis``, else ``store``)."""
    index: Any = None
    writer: Any = None
    span_writer: Any = None
    """The span segment writer (:class:`fleetprof.traces.writer.SpanWriter`)."""
    ready: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    flush_error: str | None = None
    """Why the latest segment flush failed; ``None`` once one succeeds (see
    :meth:`writer_problem`)."""
    _tenant_counters: dict[str, tuple[Any, Any]] = field(default_factory=dict, repr=False)
    _named_tenants: set[str] = field(default_factory=set, repr=False)

    def tenant(self, request: Request, scope: str) -> str:
        """Authenticated tenant of ``request`` for ``scope`` (``read``/``write``)."""
        h = request.headers
        return self.auth.tenant(h.get("authorization"), h.get("x-scope-orgid"), scope)

    def tenant_of(self, authorization: str | None, org_id: str | None, scope: str) -> str:
        """Authenticated tenant from raw header values (for handlers without a Request)."""
        return self.auth.tenant(authorization, org_id, scope)

    async def accept(self, tenant: str, items: list[Any], route: str) -> None:
        """Charge the tenant's rate limit (admitted before the body was read), hand
        ``items`` to the segment writer and wait for the durable ack.

        429 on a full queue (with ``Retry-After``), 400 for an item the writer refuses
        (nothing of it joined a batch), 503 when the write failed."""
        telemetry.annotate({"fleetprof.route": route, "fleetprof.tenant": tenant, "fleetprof.items": len(items)})
        if not items:
            return
        self.limiter.charge(tenant, len(items))
        from fleetprof.segment.writer import Backpressure, InvalidItem, item_rows

        t0 = time.perf_counter()
        try:
            await self.writer.submit(tenant, items)
        except Backpressure as e:
            retry = str(max(1, round(e.retry_after_s)))
            raise ApiError(429, "ingest queue is full; retry later", headers={"Retry-After": retry}) from None
        except InvalidItem as e:
            raise ApiError(400, str(e)) from None
        except ApiError:
            raise
        except Exception as e:  # the write failed: nothing acknowledged
            log.error("segment write failed", extra={"tenant": tenant, "route": route, "error": repr(e)})
            raise ApiError(503, f"could not persist the profiles: {type(e).__name__}", code="unavailable") from None
        self.metrics.ack_latency.observe(time.perf_counter() - t0)
        label = self.metrics_tenant(tenant)
        per_tenant = self._tenant_counters.get(label)
        if per_tenant is None:  # labelled children looked up once per label value
            per_tenant = self._tenant_counters[label] = (self.metrics.ingest_profiles.labels(label), self.metrics.ingest_samples.labels(label))
        per_tenant[0].inc(len(items))
        per_tenant[1].inc(sum(item_rows(it) for it in items))


    def drain(self) -> None:
        """Shutdown began (SIGTERM/SIGINT): flush pending batches now, and every later
        batch at once, so in-flight requests get their ack before uvicorn's grace period
        ends. Safe to call from a signal handler (schedules onto the server loop)."""
        loop = self.extra.get("loop")
        if self.writer is None or loop is None or loop.is_closed():
            return

        def start_flush() -> None:
            for w in (self.writer, self.span_writer):
                if w is not None:
                    w.max_age_s = 0.0
                    loop.create_task(w.flush())

        loop.call_soon_threadsafe(start_flush)

    def metrics_tenant(self, tenant: str) -> str:
        """``tenant``'s label value in ``/metrics``: its name for the first
        ``settings.metrics_tenants`` tenants seen, else ``"other"`` (bounded cardinality)."""
        if tenant in self._named_tenants:
            return tenant
        if len(self._named_tenants) < self.settings.metrics_tenants:
            self._named_tenants.add(tenant)
            return tenant
        return "other"

    def on_flush(self, stats: Any) -> None:
        """``SegmentWriter`` flush callback: flush latency, segment size, outcome (and
        :attr:`flush_error`)."""
        self.metrics.flushes.labels("ok" if stats.ok else "error").inc()
        if stats.ok:
            self.flush_error = None
            self.metrics.flush_latency.observe(stats.seconds)
            self.metrics.segment_bytes.observe(stats.bytes)
        else:
            self.flush_error = str(stats.error)[:300] or "unknown error"
            log.error("segment flush failed", extra={"tenant": stats.tenant, "error": stats.error})

    def writer_problem(self) -> str | None:
        """Why the server cannot persist data, or ``None`` (blocking; run in a thread).

        After a failed flush with none succeeding since, a probe object is written to the
        store: if that succeeds the store takes writes again (the failure is cleared), else
        the answer names both failures."""
        if self.flush_error is None:
            return None
        try:
            self.store.put(PROBE_KEY, b"ok")
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            return f"the last segment flush failed ({self.flush_error}) and a probe write failed: {type(e).__name__}: {e}"
        self.flush_error = None
        return None


def get_state(request: Request) -> ServerState:
    return request.app.state.fleetprof


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
