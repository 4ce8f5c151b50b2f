"""``driftline api``: the HTTP API and the operator's web page (``driftline.api``)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer


def openapi_document() -> str:
    """The API's OpenAPI document as committed in ``docs/openapi.json`` (sorted, indented)."""
    from driftline.api import create_app
    from driftline.settings import Settings

    return json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"


def register(app: typer.Typer) -> None:
    """Add the ``api`` command to the ``driftline`` command line."""

    @app.command()
    def api(
        host: Annotated[str | None, typer.Option(
            help="Listen address (default DRIFTLINE_API__HOST, 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(
            help="Port (default DRIFTLINE_API__PORT, 8080; 0 = a free port).")] = None,
        write_openapi: Annotated[Path | None, typer.Option(
            help="Write the OpenAPI document to this file and exit.")] = None,
    ) -> None:
        """Serve the HTTP API and the web page (fleet, charts, alerts, controls) until Ctrl-C."""
        if write_openapi is not None:
            write_openapi.write_text(openapi_document())
            typer.echo(f"wrote {write_openapi}", err=True)
            return
        from driftline.settings import load_settings

        settings = load_settings()  # a ConfigError is one line and exit 2 (cli.main)
        overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        if overrides:
            settings = settings.model_copy(
                update={"api": settings.api.model_copy(update=overrides)})
        from driftline.api import ApiServer

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        with ApiServer(settings) as server:  # started: the port is bound
            typer.echo(f"driftline api ready: {server.url} (OpenAPI: {server.url}openapi.json)",
                       err=True)
            while not stop.wait(0.5) and server.alive():
                continue
