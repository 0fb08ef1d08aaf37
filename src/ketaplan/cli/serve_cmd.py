"""``ketaplan serve``: the clinic's web dashboard."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from ketaplan.cli.common import console, guarded
from ketaplan.errors import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@guarded
def serve_command(
    db: str = typer.Option(None, "--db", help="Database URL or SQLite file (default $KETAPLAN_DB or "
                                              "ketaplan-clinic.db); create it with `ketaplan clinic init`."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    allow_http: bool = typer.Option(False, help="Serve plain HTTP on a non-loopback address (cookies are then not "
                                                "marked Secure). Put the dashboard behind TLS instead."),
    workers: int = typer.Option(1, help="Worker processes."),
    config: str = typer.Option(None, "--config", help="The clinic's settings (TOML): name, contact, language, "
                                                      "trusted proxies, mail; default $KETAPLAN_CONFIG."),
) -> None:
    """Serve the dashboard: login, patients with alerts, courses and forecast, appointment requests."""
    import uvicorn

    from ketaplan.course.db import database_url, make_engine, require_schema
    from ketaplan.web.config import load_settings

    url = database_url(db)
    require_schema(make_engine(url))
    config = config or os.environ.get("KETAPLAN_CONFIG")
    load_settings(config)  # a bad file is refused here, in one sentence
    if not 1 <= port <= 65535:
        raise InputError("--port", port, "1-65535")
    loopback = host in LOOPBACK
    if not loopback and not allow_http:
        console.print("note: cookies are marked Secure; serve this address through HTTPS (a TLS proxy), or pass "
                      "--allow-http for a trusted network.")
    secure = not (loopback or allow_http)
    os.environ["KETAPLAN_DB"] = url
    if config:
        os.environ["KETAPLAN_CONFIG"] = str(Path(config).resolve())
    os.environ["KETAPLAN_SECURE_COOKIES"] = "1" if secure else "0"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console.print(f"ketaplan clinic on http://{host}:{port} (database {url.split('@')[-1]})", highlight=False)
    # proxy_headers off: the dashboard believes X-Forwarded-For only from the proxies the settings name
    uvicorn.run("ketaplan.web.server:app", host=host, port=port, workers=workers, access_log=False,
                log_level="warning", proxy_headers=False)
