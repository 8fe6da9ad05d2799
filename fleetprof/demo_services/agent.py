"""Start the pyroscope-io agent (the real agent, unchanged) and OpenTelemetry tracing
(:mod:`fleetprof.demo_services.tracing`) for a demo service."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def run(name: str, step: Callable[[], None], tags: dict[str, str] | None = None) -> None:
    """Parse ``--server``/``--seconds``/``--tenant``/``--upload-interval``, configure
    pyroscope and tracing, loop ``step`` (which opens its own spans); at exit the last
    spans and profiles are sent."""
    ap = argparse.ArgumentParser(description=f"fleetprof demo service {name}")
    ap.add_argument("--server", default="http://127.0.0.1:4040")
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = forever)")
    ap.add_argument("--tenant", default="")
    ap.add_argument("--app-name", default=name)
    ap.add_argument("--upload-interval", type=int, default=10, help="seconds between profile uploads (pyroscope's default: 10)")
    args = ap.parse_args()
    import pyroscope

    kw: dict[str, object] = {}
    if args.tenant:
        kw["tenant_id"] = args.tenant
    pyroscope.configure(
        application_name=args.app_name,
        server_address=args.server,
        sample_rate=100,
        upload_interval=args.upload_interval,
        tags={"env": "demo", **(tags or {})},
        **kw,
    )
    from fleetprof.demo_services.tracing import setup_tracing

    provider = setup_tracing(args.app_name, args.server, args.tenant, {f"demo.{k}": v for k, v in (tags or {}).items()})
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            step()
    except KeyboardInterrupt:
        pass
    finally:
        provider.shutdown()
        pyroscope.shutdown()
