"""FastAPI application factory.

``create_app(settings)`` opens the object store and index named by the settings (or uses
``store``/``index`` passed in), starts a :class:`fleetprof.segment.writer.SegmentWriter`
on startup and flushes it on shutdown (uvicorn's graceful shutdown: stop accepting, finish
in-flight requests, then the lifespan exit). Every error is JSON ``{code, message}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetprof import telemetry
from fleetprof.distributor.common import IngestConfig
from fleetprof.querier.routes import router as querier_router
from fleetprof.server import (
    auth_surfaces,
    index_page,
    routes_analysis,
    routes_explorer,
    routes_ingest,
    routes_native,
    routes_query,
    routes_spans,
    routes_traces,
)
from fleetprof.server.auth import Authenticator, configured_tokens
from fleetprof.server.docs import install as install_docs
from fleetprof.server.errors import STATUS_CONNECT, ApiError
from fleetprof.server.gate import DecodeGate
from fleetprof.server.headers import secure_send
from fleetprof.server.limits import RateLimiter
from fleetprof.server.logging import log
from fleetprof.server.metrics import create_metrics
from fleetprof.server.openapi import install as install_openapi
from fleetprof.server.settings import Settings
from fleetprof.server.state import ServerState, get_state, maybe_await


def _error(request: Request, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    try:
        get_state(request).metrics.errors.labels(str(status)).inc()
    except AttributeError:
        pass
    body = {"code": code or STATUS_CONNECT.get(status, "unknown"), "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return _error(request, 400, f"invalid request: {where}: {first.get('msg', 'bad value')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return _error(request, 500, f"internal error ({type(exc).__name__})")


async def _retention_loop(st: ServerState) -> None:
    """Delete segments older than each tenant's retention (embedded mode)."""
    while True:
        await asyncio.sleep(st.settings.retention_interval_s)
        try:
            removed = await to_thread.run_sync(lambda: sweep_retention(st))
            if removed:
                log.info("retention removed segments", extra={"segments": removed})
        except Exception as e:
            log.error("retention sweep failed", extra={"error": repr(e)})


def sweep_retention(st: ServerState, now_ms: int | None = None) -> int:
    """One retention pass over every tenant with a retention
    (:func:`fleetprof.metastore.cleanup.apply_retention`; the horizon past which data is aged
    by when it was written is the ingest's future allowance, ``ingest_max_future_s``)."""
    from fleetprof.metastore.cleanup import apply_retention

    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    removed = 0
    for tenant in list(st.index.tenants()):
        keep_s = st.settings.retention_for(tenant)
        if keep_s > 0:
            removed += apply_retention(st.store, st.index, tenant, now - int(keep_s * 1000), now_ms=now,
                                       horizon_ms=int(st.settings.ingest_max_future_s * 1000))
    return removed


class FleetprofApp(FastAPI):
    """FastAPI, plus raw ASGI handlers for hot ``POST`` paths (``fast_posts``: path →
    handler) that skip the framework's routing/middleware layers; everything else
    (lifespan, other routes and methods) goes through FastAPI."""

    fast_posts: dict[str, Any]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if telemetry.http_traced(scope):
            await telemetry.serve_http(scope, receive, send, self._serve, self.fast_posts)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            send = secure_send(send)
            if not await auth_surfaces.admit(self.state.fleetprof.auth, scope, send):
                return
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_posts.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def build_state(settings: Settings) -> ServerState:
    tokens = configured_tokens(settings.auth_file, settings.auth_tokens)
    return ServerState(
        settings=settings,
        auth=Authenticator(tokens),
        limiter=RateLimiter(settings.ingest_rate, settings.ingest_burst, max_tenants=settings.max_tracked_tenants),
        metrics=create_metrics(),
        ingest_cfg=IngestConfig.from_settings(settings),
        gate=DecodeGate(settings.large_decode_slots, settings.large_decode_bytes),
    )


def _analysis_store(settings: Settings, profile_store: Any, given: Any) -> Any:
    """``given``, else the store at ``settings.analysis``, else ``profile_store``."""
    from fleetprof.storage.objectstore import open_store

    if given is not None:
        return given
    return open_store(settings.analysis) if settings.analysis else profile_store


def create_app(settings: Settings | None = None, *, store: Any = None, index: Any = None,
               analysis_store: Any = None) -> FastAPI:
    """The fleetprof HTTP application (see the module docstring); the analysis routes read
    ``analysis_store``, else the store of ``settings.analysis``, else the profile store."""
    settings = settings or Settings.load()
    st = build_state(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from fleetprof.metastore.index import open_index
        from fleetprof.segment.format import write_version
        from fleetprof.segment.writer import SegmentWriter
        from fleetprof.storage.objectstore import open_store
        from fleetprof.warmup import warm_up

        write_version()  # a bad FLEETPROF_SEGMENT_FORMAT stops the start, not every flush
        traces_owned = telemetry.setup_from_env("fleetprof-server")
        await to_thread.run_sync(warm_up)  # compiled kernels loaded before the first request
        st.store = store if store is not None else await to_thread.run_sync(lambda: open_store(settings.storage))
        st.index = index if index is not None else await to_thread.run_sync(lambda: open_index(settings.index))
        st.analysis_store = await to_thread.run_sync(lambda: _analysis_store(settings, st.store, analysis_store))
        st.writer = SegmentWriter(st.store, st.index, max_age_s=settings.flush_max_age_s, max_bytes=settings.flush_max_bytes, max_queue=settings.max_queue, on_flush=st.on_flush)
        await maybe_await(st.writer.start())
        from fleetprof.traces.writer import SpanWriter

        st.span_writer = SpanWriter(st.store, st.index, max_age_s=min(settings.flush_max_age_s, settings.span_flush_max_age_s),
                                    max_bytes=settings.flush_max_bytes, max_spans=settings.span_flush_max_spans, on_flush=st.on_flush)
        st.span_writer.start()
        st.extra["loop"] = asyncio.get_running_loop()
        st.ready = True
        retention = asyncio.create_task(_retention_loop(st)) if settings.retention_runs_here() else None
        log.info("fleetprof server ready", extra={"storage": settings.storage, "index": settings.index})
        try:
            yield
        finally:
            st.ready = False
            if retention is not None:
                retention.cancel()
            await maybe_await(st.writer.stop())
            await st.span_writer.stop()
            log.info("segment writer flushed; server stopped")
            if traces_owned:
                await to_thread.run_sync(telemetry.shutdown)

    app = FleetprofApp(title="fleetprof", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.fleetprof = st
    app.fast_posts = {routes_ingest.PUSH_PATH: routes_ingest.raw_push_handler(st)}
    _install_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if not st.ready:
            return JSONResponse({"code": "unavailable", "message": "starting or stopping"}, status_code=503)
        try:
            await to_thread.run_sync(st.store.ping)
            await to_thread.run_sync(st.index.ping)
        except Exception as e:
            return JSONResponse({"code": "unavailable", "message": f"storage not reachable: {type(e).__name__}: {e}"}, status_code=503)
        problem = await to_thread.run_sync(st.writer_problem)
        if problem is not None:
            return JSONResponse({"code": "unavailable", "message": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        data, ctype = st.metrics.exposition()
        return Response(data, media_type=ctype)

    app.include_router(routes_ingest.router)
    app.include_router(routes_query.router)
    app.include_router(routes_native.router)
    app.include_router(routes_spans.router)
    app.include_router(routes_analysis.router)
    app.include_router(querier_router)
    app.include_router(routes_explorer.router)
    app.include_router(routes_traces.router)
    index_page.install(app)
    install_docs(app)
    install_openapi(app)
    return app
