"""Shared helpers for the tests: small linear structures and a one-call simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from ketaplan.engine.exact import solve
from ketaplan.engine.ode import solve_ode
from ketaplan.engine.schedule import DoseModifiers, DoseRecords, compile_schedule
from ketaplan.engine.system import LinearStructure, Transfer

# Property tests check values, not speed: no per-example deadline, whatever the machine's load.
settings.register_profile("ketaplan", deadline=None)
settings.load_profile("ketaplan")


def one_compartment(depot: bool = False) -> LinearStructure:
    """depot (optional) -> central -> out, rates 'ka' and 'k'."""
    if depot:
        return LinearStructure(("depot", "central"),
                               (Transfer("depot", "central", "ka"), Transfer("central", None, "k")))
    return LinearStructure(("central",), (Transfer("central", None, "k"),))


def two_compartment() -> LinearStructure:
    return LinearStructure(("central", "peripheral"), (
        Transfer("central", None, "k10"), Transfer("central", "peripheral", "k12"),
        Transfer("peripheral", "central", "k21")))


def run(structure, params, records: DoseRecords, times, observe: str = "central", volume: float = 1.0,
        f=None, lag=None, rate=None, duration=None, ode: bool = False, orders=None):
    """Concentration (amount/volume) in ``observe`` for one subject."""
    n_rec = len(records)
    mods = DoseModifiers.neutral(1, n_rec)
    mods = DoseModifiers(
        np.full((1, n_rec), 1.0 if f is None else f), np.full((1, n_rec), 0.0 if lag is None else lag),
        np.full((1, n_rec), np.nan if rate is None else rate),
        np.full((1, n_rec), np.nan if duration is None else duration))
    sched = compile_schedule(records, mods, structure.n_states)
    k = structure.rate_matrix({key: np.atleast_1d(v) for key, v in params.items()})
    readout = np.zeros((1, structure.n_states))
    readout[0, structure.index(observe)] = 1.0 / volume
    solver = solve_ode if ode else solve
    return solver(k, sched, np.asarray(times, dtype=float), readout, orders)[0, :, 0]


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture
def wide_console():
    """Tables are checked by their numbers, so render them without wrapping."""
    from ketaplan.cli.common import console

    console.width = 250
    yield
    console.width = None


def invoke_cli(*args):
    """Run the ``ketaplan`` command line in-process; returns typer's Result."""
    from typer.testing import CliRunner

    from ketaplan.cli import app

    return CliRunner().invoke(app, list(args))


POSTGRES_ENV = "KETAPLAN_TEST_POSTGRES"


def postgres_url_or_skip() -> str:
    """The test PostgreSQL URL; a loud skip when it is missing (a failure when CI requires it)."""
    import os
    import warnings

    url = os.environ.get(POSTGRES_ENV)
    if url:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        return _worker_database(url, worker) if worker else url
    reason = f"no PostgreSQL server for the store tests (set {POSTGRES_ENV}; .ci/run starts one)"
    if os.environ.get("KETAPLAN_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    warnings.warn(f"SKIPPING PostgreSQL tests: {reason}", stacklevel=2)
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


def _worker_database(url: str, worker: str) -> str:
    """A database of its own for each pytest-xdist worker (``<name>_gw0``, ...), created on first use, so that
    workers migrating and emptying their clinic databases never meet."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database or 'ketaplan_test'}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def fresh_engine(kind: str, tmp_path):
    """An engine on an empty, migrated clinic database of the given kind ('sqlite' or 'postgresql')."""
    from sqlalchemy import inspect

    from ketaplan.course.db import downgrade, make_engine, upgrade

    if kind == "sqlite":
        tmp_path.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    else:
        engine = make_engine(postgres_url_or_skip())
        if "alembic_version" in inspect(engine).get_table_names():
            downgrade(engine, "base")
    upgrade(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def clinic_engine(request, tmp_path):
    engine = fresh_engine(request.param, tmp_path)
    yield engine
    engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real local SMTP server (aiosmtpd) for 'Mail ons': yields its port and the list of messages it took."""
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox.messages
    controller.stop()


class Server:
    """``ketaplan serve`` in a subprocess on a free loopback port."""

    def __init__(self, db_url: str, log_path, *extra_args: str) -> None:
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "ketaplan.cli", "serve", "--db", db_url, "--port",
                                      str(self.port), *extra_args], stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        import time

        import httpx

        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {Path(self.log_path).read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.kill()
        self._log.close()


def seed_clinic(engine, admin_password: str = "admin-password-1", clinician_password: str = "clinic-password-1"):
    """An admin 'admin', a clinician 'dr.a' and a clinician 'dr.b'."""
    from ketaplan.course.db import transaction
    from ketaplan.course.users import add_user

    with transaction(engine) as s:
        admin = add_user(s, None, "admin", admin_password, "admin")
        add_user(s, admin, "dr.a", clinician_password, "clinician")
        add_user(s, admin, "dr.b", clinician_password, "clinician")


def login(client, base: str, username: str, password: str):
    """Log an httpx client in through the real form (with its CSRF token); returns the response."""
    import re

    page = client.get(base + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(base + "/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=False)


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
