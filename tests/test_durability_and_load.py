"""Data safety and load, against a real ``ketaplan serve`` on loopback.

* The server is killed (SIGKILL) during a burst of writes: every write it acknowledged is in the database
  afterwards and the database is consistent.
* A short load test (bounded in count and time) finishes with zero errors.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text

from conftest import Server, csrf_of, fresh_engine, login, seed_clinic
from ketaplan.course import store
from ketaplan.course.db import transaction
from ketaplan.course.schema import PainEntry

VERSION = store.privacy_statement()[0]
T0 = datetime(2026, 1, 1, 0, 0)


def clinic(kind: str, tmp_path):
    engine = fresh_engine(kind, tmp_path)
    seed_clinic(engine)
    with transaction(engine) as s:
        p = store.add_patient(s, "dr.a", "KP-0001", 1966, "male", "polyneuropathy", 80.0, VERSION, 7.0)
        c, _ = store.plan_course(s, "dr.a", p, "20 mg/h IV for 5 d", T0)
        store.record_infusion(s, "dr.a", p, c, T0, T0 + timedelta(days=5), 20)
    return engine


def session_for(server: Server) -> tuple[httpx.Client, str]:
    client = httpx.Client(timeout=30.0)
    assert login(client, server.url, "dr.a", "clinic-password-1").status_code == 303
    return client, csrf_of(client.get(server.url + "/account").text)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_killing_the_server_during_writes_loses_no_acknowledged_write(tmp_path, kind):
    engine = clinic(kind, tmp_path)
    server = Server(engine.url.render_as_string(hide_password=False), tmp_path / "server.log")
    acknowledged: list[datetime] = []
    lock = threading.Lock()
    stop = threading.Event()

    sessions = [session_for(server) for _ in range(4)]  # logged in before the burst, so every writer writes

    def writer(k: int) -> None:
        client, token = sessions[k]
        n = 0
        while not stop.is_set():
            when = T0 + timedelta(days=10, minutes=1000 * k + n)
            n += 1
            try:
                r = client.post(f"{server.url}/patients/KP-0001/diary", data={
                    "csrf_token": token, "recorded_at": when.strftime("%Y-%m-%dT%H:%M"), "nrs": str(n % 11)})
            except httpx.HTTPError:
                return  # the server is gone: this write was not acknowledged
            if r.status_code == 303:
                with lock:
                    acknowledged.append(when)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            if len(acknowledged) >= 60:
                break
        time.sleep(0.02)
    server.kill()  # in the middle of the burst
    stop.set()
    for t in threads:
        t.join()
    for client, _ in sessions:
        client.close()
    server.stop()
    assert len(acknowledged) >= 60
    engine.dispose()
    with transaction(engine) as s:
        stored = set(s.scalars(select(PainEntry.recorded_at)).all())
        if kind == "sqlite":
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert s.execute(text("PRAGMA foreign_key_check")).all() == []
        version = s.scalar(text("SELECT data_version FROM patients WHERE code = 'KP-0001'"))
    missing = [w for w in acknowledged if w not in stored]
    assert missing == []
    assert version >= len(stored)  # every stored entry also bumped the record's version (same transaction)


def test_a_short_load_on_loopback_has_no_errors(tmp_path):
    engine = clinic("sqlite", tmp_path)
    server = Server(str(engine.url), tmp_path / "server.log")
    try:
        client, _ = session_for(server)
        assert client.get(server.url + "/patients/KP-0001").status_code == 200  # computes the forecast once
        errors: list[str] = []
        done = []

        def user(k: int) -> None:
            c, token = session_for(server)
            for n in range(25):
                url = ("/patients", "/patients/KP-0001", "/inbox")[n % 3]
                r = c.get(server.url + url)
                if r.status_code != 200:
                    errors.append(f"GET {url} {r.status_code}")
                if n % 5 == 0:
                    when = (T0 + timedelta(days=40, minutes=100 * k + n)).strftime("%Y-%m-%dT%H:%M")
                    r = c.post(server.url + "/patients/KP-0001/diary", data={"csrf_token": token, "nrs": "3",
                                                                            "recorded_at": when})
                    if r.status_code != 303:
                        errors.append(f"POST diary {r.status_code}")
                done.append(1)

        t0 = time.monotonic()
        threads = [threading.Thread(target=user, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        elapsed = time.monotonic() - t0
        assert errors == []
        assert len(done) == 150 and elapsed < 120
    finally:
        server.stop()


def test_parallel_password_guesses_cannot_outrun_the_lock_out(tmp_path):
    engine = clinic("sqlite", tmp_path)
    server = Server(str(engine.url), tmp_path / "server.log")
    results: list[int] = []
    try:
        def guess(password: str) -> None:
            with httpx.Client(timeout=60.0) as c:
                results.append(login(c, server.url, "dr.a", password).status_code)

        threads = [threading.Thread(target=guess, args=("wrong-password",)) for _ in range(12)]
        threads.append(threading.Thread(target=guess, args=("clinic-password-1",)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with httpx.Client(timeout=60.0) as c:
            after = login(c, server.url, "dr.a", "clinic-password-1").status_code
    finally:
        server.stop()
    assert results.count(303) <= 1 and after == 401  # the account is locked once five guesses have failed
    with transaction(engine) as s:
        failed = s.scalar(text("SELECT COUNT(*) FROM audit WHERE action = 'login_failed'"))
    assert failed >= 5
