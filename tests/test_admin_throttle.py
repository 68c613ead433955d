"""The login throttle: check-and-record is one SQLite write transaction (parallel guesses cannot slip past
the limit), and guesses lock the guessing address, not the administrator: user-wide they only add a
growing, capped delay."""
from __future__ import annotations

import http.client
import re
import threading

from admin_client import PASSWORD, Clock, client_from, login, set_up_admin

from facegate.edge_runtime.admin.services import EXTENSION
from facegate.edge_runtime.store import Store


def _wrong_login_over_http(port: int, barrier: threading.Barrier, codes: list) -> None:
    """GET /login for a session cookie and CSRF token, wait for the others, then POST a wrong password."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login")
    r = conn.getresponse()
    html, cookie = r.read().decode(), r.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    body = f"csrf_token={token}&username=admin&password=wrong+password"
    barrier.wait()
    try:
        conn.request("POST", "/login", body=body, headers={"Cookie": cookie,
                                                            "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        codes.append(r.status if r.status in (401, 429) else f"{r.status} {r.read()[:300]!r}")
    except OSError as e:
        codes.append(repr(e))
    finally:
        conn.close()


def test_parallel_wrong_logins_over_waitress_check_at_most_the_limit(make_app):
    """30 wrong logins at once from one address: exactly LOGIN_MAX_FAILURES passwords are checked."""
    import waitress

    app = make_app()
    set_up_admin(app, app.test_client())
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=32, ident="facegate-test")
    server = threading.Thread(target=srv.run, daemon=True)
    server.start()
    n, codes = 30, []
    barrier = threading.Barrier(n)
    try:
        clients = [threading.Thread(target=_wrong_login_over_http, args=(srv.effective_port, barrier, codes))
                   for _ in range(n)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=120)
    finally:
        srv.close()
        server.join(timeout=5)
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert sorted(codes, key=str) == [401] * (limit - 1) + [429] * (n - limit + 1), codes
    with Store(app.extensions[EXTENSION].store_path) as s:
        assert len(s.audit(event="admin_login_failed")) == limit           # passwords actually checked


def test_wrong_logins_from_one_address_do_not_lock_the_admin_out_elsewhere(make_app):
    clock = Clock()
    app = make_app(CLOCK=clock, LOGIN_SLOWDOWN_S=1.0, LOGIN_SLOWDOWN_MAX_S=60.0)
    set_up_admin(app, app.test_client())
    attacker = client_from(app, "10.0.0.66")
    codes = [login(attacker, "admin", f"wrong {i}").status_code for i in range(5)]
    assert codes == [401] * 4 + [429]
    clock.t += 1                           # the user-wide slow-down after 5 failures: 1 s, not a lock
    assert login(client_from(app, "10.0.0.7")).headers["Location"] == "/people"
    r = login(attacker, "admin", PASSWORD)                 # the guessing address stays locked
    assert r.status_code == 429 and r.headers["Retry-After"] == "29"
    assert login(attacker, "someone", "x" * 12).status_code == 429                      # for any user


def test_many_guessing_addresses_only_slow_the_admin_down(make_app):
    """Guesses spread over many addresses grow the user-wide delay up to LOGIN_SLOWDOWN_MAX_S, never more."""
    clock = Clock()
    app = make_app(CLOCK=clock, LOGIN_SLOWDOWN_S=1.0, LOGIN_SLOWDOWN_MAX_S=8.0)
    set_up_admin(app, app.test_client())
    waits = []
    for i in range(12):
        bot = client_from(app, f"10.0.1.{i}")
        r = login(bot, "admin", "wrong password")
        if r.status_code == 429:                   # slowed down: wait as told, then guess
            waits.append(int(r.headers["Retry-After"]))
            clock.t += waits[-1]
            r = login(bot, "admin", "wrong password")
        assert r.status_code == 401, (i, r.status_code, r.headers.get("Retry-After"))
    assert waits == [1, 2, 4, 8, 8, 8, 8]                      # grows, then stays at the cap
    r = login(client_from(app, "10.0.0.7"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 8
    clock.t += int(r.headers["Retry-After"])
    assert login(client_from(app, "10.0.0.7")).headers["Location"] == "/people"


def test_counters_never_overflow_and_old_ones_are_forgotten(tmp_path):
    """A counter with thousands of failures still answers (2 ** n capped before it overflows a float);
    counters idle longer than forget_s are deleted when the next attempt is checked."""
    from facegate.edge_runtime.admin.db import AdminDB, Backoff

    lock = Backoff(5, 30.0, 900.0)
    assert [lock.closed_for(n) for n in (1, 4, 5, 6, 7, 10_000)] == [0, 0, 30, 60, 120, 900]
    clock = Clock()
    with AdminDB(tmp_path / "admin.db", clock=clock) as db:
        db.conn.execute("INSERT INTO login_attempts VALUES ('ip:10.0.0.1', 5000, ?, 0)", (clock.t,))
        db.conn.execute("INSERT INTO login_attempts VALUES ('ip:10.0.0.2', 3, ?, 0)", (clock.t - 90_000,))
        assert db.begin_login_attempt([("ip:10.0.0.1", lock)], forget_s=86_400) == (0.0, {"ip:10.0.0.1": 900})
        assert db.begin_login_attempt([("ip:10.0.0.1", lock)], forget_s=86_400) == (900, {})
        keys = {k for k, in db.conn.execute("SELECT key FROM login_attempts")}
        assert keys == {"ip:10.0.0.1"}
