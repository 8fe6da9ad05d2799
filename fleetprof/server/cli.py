"""``fleetprof serve``, ``fleetprof push`` and ``fleetprof token new`` (registered by :func:`register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``push`` and ``token new`` to the ``fleetprof`` CLI."""
    app.command("serve")(serve)
    app.command("push")(push)
    token_app = typer.Typer(help="Token table entries for the server's auth (FLEETPROF_AUTH_FILE / FLEETPROF_AUTH_TOKENS).")
    token_app.command("new")(token_new)
    app.add_typer(token_app, name="token")


def token_new(
    tenant: Annotated[str, typer.Option(help="Tenant the token acts for.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes among read, write, metrics.")] = "read,write",
) -> None:
    """Print a new random token and its grant as one JSON entry of a token table."""
    import json

    from fleetprof.cli import cli_errors, fail
    from fleetprof.server.auth import new_token_entry

    with cli_errors():
        try:
            entry = new_token_entry(tenant, [s.strip() for s in scopes.split(",") if s.strip()])
        except ValueError as e:
            fail(str(e))
        print(json.dumps(entry, sort_keys=True))


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env FLEETPROF_HOST; default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env FLEETPROF_PORT; default 4040).")] = None,
    storage: Annotated[str | None, typer.Option(help="Object store URL: file:///abs/path or s3://bucket/prefix (env FLEETPROF_STORAGE).")] = None,
    index: Annotated[str | None, typer.Option(help="Index URL: sqlite:///abs/path.db or dynamodb://table (env FLEETPROF_INDEX).")] = None,
    analysis: Annotated[str | None, typer.Option(help="Store of the workers' analyses, e.g. s3://bucket/ (env FLEETPROF_ANALYSIS; default: the profile store).")] = None,
    auth_file: Annotated[str | None, typer.Option(help="JSON token file: token -> tenant + scopes (env FLEETPROF_AUTH_FILE).")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body accepted (413 above).")] = None,
    max_decompressed_bytes: Annotated[int | None, typer.Option(help="Largest decompressed payload (413 above).")] = None,
    max_series_per_request: Annotated[int | None, typer.Option(help="Most profiles per request (400 above).")] = None,
    max_labels_per_series: Annotated[int | None, typer.Option(help="Most labels per series (400 above).")] = None,
    ingest_rate: Annotated[float | None, typer.Option(help="Per-tenant ingest rate, profiles/s (0 = unlimited; 429 above).")] = None,
    ingest_burst: Annotated[float | None, typer.Option(help="Per-tenant burst (token bucket size).")] = None,
    flush_max_age_s: Annotated[float | None, typer.Option(help="Flush a tenant's batch when its oldest item is this old.")] = None,
    max_queue: Annotated[int | None, typer.Option(help="Pending items before 429 backpressure.")] = None,
    retention: Annotated[str | None, typer.Option(help="Default retention, e.g. 30d (0 = forever).")] = None,
    retention_tenants: Annotated[str | None, typer.Option(help="Per-tenant retention, e.g. acme=7d,beta=24h.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Serve on a non-loopback address without a token file (env FLEETPROF_INSECURE=1).")] = False,
) -> None:
    """Run the ingest + query server (Pyroscope-compatible; agents push to it unchanged).

    Examples:

      fleetprof serve                                   # 127.0.0.1:4040, ./.fleetprof storage

      fleetprof serve --host 0.0.0.0 --auth-file tokens.json --storage s3://bucket/prefix --index dynamodb://table

    A non-loopback --host needs --auth-file, or --insecure to serve without auth.

    SIGINT/SIGTERM stop gracefully: in-flight requests finish and pending data is flushed.
    """
    from fleetprof.cli import cli_errors, err_console, fail

    with cli_errors():
        import uvicorn

        from fleetprof.server.app import create_app
        from fleetprof.server.logging import configure_logging
        from fleetprof.server.settings import Settings

        settings = Settings.load(
            host=host, port=port, storage=storage, index=index, analysis=analysis, auth_file=auth_file,
            max_body_bytes=max_body_bytes, max_decompressed_bytes=max_decompressed_bytes,
            max_series_per_request=max_series_per_request, max_labels_per_series=max_labels_per_series,
            ingest_rate=ingest_rate, ingest_burst=ingest_burst, flush_max_age_s=flush_max_age_s,
            max_queue=max_queue, retention_s=retention, retention_tenants=retention_tenants, log_level=log_level,
            insecure=insecure or None,
        )
        refusal = bind_refusal(settings.host, settings.auth_file or settings.auth_tokens, settings.insecure)
        if refusal:
            fail(refusal)
        _prepare_local_dirs(settings)
        configure_logging(settings.log_level)
        app = create_app(settings)
        err_console.print(f"fleetprof serving on http://{settings.host}:{settings.port}  (storage {settings.storage}, index {settings.index})")
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False,
            timeout_graceful_shutdown=30, lifespan="on", server_header=False, **_fast_io(),
        )
        _DrainingServer(config, app.state.fleetprof).run()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: may resolve to anything


def bind_refusal(host: str, auth_file: str | None, insecure: bool) -> str | None:
    """Why serving on ``host`` is refused: a non-loopback bind without a token table
    (``auth_file``: the file or the ``FLEETPROF_AUTH_TOKENS`` text), unless
    ``insecure``; ``None`` when allowed."""
    if auth_file or insecure or is_loopback(host):
        return None
    return (f"refusing to serve on {host} without auth: anyone who can reach it could read and write "
            "every tenant's profiles; give --auth-file (FLEETPROF_AUTH_FILE) or FLEETPROF_AUTH_TOKENS, bind 127.0.0.1, "
            "or pass --insecure (FLEETPROF_INSECURE=1)")


def _fast_io() -> dict[str, str]:
    """uvloop + httptools when installed (several times cheaper per request than asyncio +
    h11); uvicorn's defaults otherwise."""
    import importlib.util

    have = {m: importlib.util.find_spec(m) is not None for m in ("uvloop", "httptools")}
    return {"loop": "uvloop" if have["uvloop"] else "auto", "http": "httptools" if have["httptools"] else "auto"}


def _draining_server_class() -> type:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn server that tells the app to flush its segment writer as soon as a
        shutdown signal arrives (uvicorn then waits for in-flight requests)."""

        def __init__(self, config: uvicorn.Config, state: object) -> None:
            super().__init__(config)
            self.fleetprof_state = state

        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self.fleetprof_state.drain()  # type: ignore[attr-defined]

    return DrainingServer


def _DrainingServer(config: object, state: object) -> object:  # noqa: N802 - acts as a class
    return _draining_server_class()(config, state)


def _prepare_local_dirs(settings: object) -> None:
    """Create the parent folders of embedded ``file://`` storage and ``sqlite://`` index."""
    storage = str(settings.storage)  # type: ignore[attr-defined]
    index = str(settings.index)  # type: ignore[attr-defined]
    if storage.startswith("file://"):
        Path(storage[len("file://"):]).mkdir(parents=True, exist_ok=True)
    if index.startswith("sqlite://"):
        Path(index[len("sqlite://"):]).parent.mkdir(parents=True, exist_ok=True)


def push(
    file: Annotated[str, typer.Argument(help="Profile file (pprof, folded, speedscope, …; - for stdin).")],
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:4040",
    service: Annotated[str, typer.Option(help="service_name label.")] = "cli",
    labels: Annotated[str, typer.Option(help="Extra labels: k=v,k2=v2.")] = "",
    name: Annotated[str | None, typer.Option(help="Profile name (e.g. process_cpu, memory).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Input format (default: detected).")] = None,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", min=1, max=1_000_000_000, help="Sampling rate in Hz of a folded, lines or count-based speedscope profile: counts become CPU time (count × 1e9 / rate ns; the server's default is 100).")] = None,
    tenant: Annotated[str | None, typer.Option(help="X-Scope-OrgID tenant.")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token (or env FLEETPROF_TOKEN).", envvar="FLEETPROF_TOKEN")] = None,
) -> None:
    """Push one profile file to a fleetprof server (``POST /api/v1/ingest``).

    Examples: fleetprof push cpu.pb.gz --service api --labels env=prod,region=eu;
    fleetprof push pyspy.txt --service worker --sample-rate 250 (py-spy raw at --rate 250)
    """
    from fleetprof.cli import cli_errors, fail, out_console, read_input

    with cli_errors():
        import httpx

        params: dict[str, str] = {"service_name": service}
        for part in filter(None, (p.strip() for p in labels.split(","))):
            k, sep, v = part.partition("=")
            if not sep or not k:
                fail(f"bad label {part!r}: use key=value")
            params[k.strip()] = v.strip()
        if name:
            params["name"] = name
        if fmt:
            params["format"] = fmt
        if sample_rate is not None:
            params["sampleRate"] = str(sample_rate)
        headers = {"Content-Type": "application/octet-stream"}
        if tenant:
            headers["X-Scope-OrgID"] = tenant
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = read_input(file)
        try:
            r = httpx.post(url.rstrip("/") + "/api/v1/ingest", params=params, content=data, headers=headers, timeout=60)
        except httpx.HTTPError as e:
            fail(f"cannot reach {url}: {e}")
        if r.status_code != 200:
            try:
                msg = r.json().get("message", r.text)
            except ValueError:
                msg = r.text
            fail(f"server answered {r.status_code}: {msg}")
        out_console.print(f"pushed {len(data)} bytes to {url} (service_name={service})")
