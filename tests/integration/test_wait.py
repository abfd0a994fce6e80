"""Waiting for PostgreSQL (DESIGN.md, "Waiting, precisely"; "Exit codes").

An attempt is a real login. Refused connections and 57P03 are retried every
~100 ms, timeouts and 53300 with backoff; authentication failures, unknown
databases, TLS trust failures fail at once (77) and bad connection options
with 64; the wait gives up with 69 after ``--wait-timeout``; a stop signal
ends it (128+N). Each distinct reason is logged once, and no password is
ever logged.

bandage runs with no command after ``--`` (the phases, then exit) unless a
test needs to see when the app would have started. Every PostgreSQL here is
real: the session cluster ``pg`` (ssl=on, scram-sha-256 over TCP) or a
``pg_factory`` cluster started, configured or held by the test itself.
"""
import os
import pwd
import re
import select
import socket
import tempfile
import threading
import time
import uuid
from urllib.parse import quote

import psycopg
import pytest

from helpers import IS_ROOT, scaled, wait_until
from helpers.pg import PortReservation

NOT_READY = re.compile(r"^bandage: database not ready \((?P<cls>[^)]*)\): (?P<reason>.*)$", re.M)
READY = re.compile(r"database ready after (\d+) attempts? in (\d+) ms")
GAVE_UP = re.compile(r"did not accept a login within (\d+) ms \((\d+) attempts?\)")
SUMMARY_ATTEMPTS = re.compile(r"waited \d+ ms \((\d+) attempts?\)")


# --- helpers --------------------------------------------------------------------

def assert_secret_hidden(run, *secrets):
    """No secret appears in anything bandage wrote (raw or URL-encoded)."""
    out = run.stderr + run.stdout
    for s in secrets:
        assert s, "a test secret must not be empty"
        for form in {s, quote(s, safe="")}:
            assert form not in out, f"secret {form!r} leaked into bandage's output:\n{out}"


def not_ready_lines(run):
    return [(m["cls"], m["reason"]) for m in NOT_READY.finditer(run.stderr)]


def attempts_made(run):
    """The attempt count bandage reported in its deploy summary."""
    m = SUMMARY_ATTEMPTS.search(run.stderr)
    assert m, f"no attempt count in bandage's summary:\n{run.stderr}"
    return int(m.group(1))


def chown_to_cluster_owner(path):
    if IS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def add_server_settings(cluster, **settings):
    """Append settings to the (not yet started) cluster's postgresql.auto.conf,
    read after postgresql.conf, so they win over the harness's defaults."""
    path = os.path.join(cluster.data_dir, "postgresql.auto.conf")
    with open(path, "a") as f:
        for k, v in settings.items():
            f.write(f"{k} = '{v}'\n")
    chown_to_cluster_owner(path)


def server_major(cluster):
    with open(os.path.join(cluster.data_dir, "PG_VERSION")) as f:
        return int(f.read().strip().split(".")[0])


def login_error(dsn):
    """None if a login succeeds, else libpq's message."""
    try:
        psycopg.connect(dsn, connect_timeout=int(scaled(5))).close()
        return None
    except psycopg.OperationalError as e:
        return str(e)


class AcceptProbe(threading.Thread):
    """Logs in to ``dsn`` in a tight loop until the first login succeeds, and
    records (wall clock) when that successful attempt started and ended, and
    when the last failed one started: the server began accepting after that."""

    def __init__(self, dsn, timeout):
        super().__init__(daemon=True, name="accept-probe")
        self.dsn = dsn
        self.deadline = time.monotonic() + timeout
        self.halt = threading.Event()
        self.success_start = self.success_end = None
        self.last_failure_start = None
        self.failures = 0
        self.last_error = None

    def run(self):
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            t0 = time.time()
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
            except psycopg.OperationalError as e:
                self.last_failure_start = t0
                self.failures += 1
                self.last_error = str(e)
                self.halt.wait(0.002)  # a tight loop, leaving the CPU to the server
                continue
            self.success_start, self.success_end = t0, time.time()
            return

    def stop(self):
        self.halt.set()
        self.join(scaled(10))


@pytest.fixture
def refused_port():
    """A loopback port held bound but not listening: every connection is refused."""
    r = PortReservation()
    yield r.port
    r.release()


@pytest.fixture
def silent_listener():
    """A loopback socket that listens but never accepts or answers: the kernel
    completes the TCP handshake, then nothing (a hung server, a black hole).
    ``.port``; ``.connections()`` counts what arrived."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)

    class Listener:
        port = sock.getsockname()[1]

        @staticmethod
        def connections():
            n = 0
            sock.setblocking(False)
            while select.select([sock], [], [], 0)[0]:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                n += 1
            return n

    yield Listener
    sock.close()


@pytest.fixture
def nologin_role(pg):
    name = f"nologin_{uuid.uuid4().hex[:8]}"
    role = pg.create_role(name, login=False)
    yield role
    pg.execute(f'DROP ROLE IF EXISTS "{name}"')


# --- the server comes up while bandage waits ------------------------------------------

def test_proceeds_within_200ms_of_server_accepting(run_bandage, pg_factory, app_dir):
    cluster = pg_factory()
    # No TLS: the handshake's cost is the same for the probe and for bandage,
    # and is not what this measures.
    dsn = cluster.dsn(sslmode="disable")
    stamp = os.path.join(app_dir, "app-started")
    run = run_bandage(["--database-url", dsn, "--wait-timeout", scaled(30), "--",
                       "/bin/sh", "-c", f"date +%s.%N > {stamp}"], timeout=scaled(40))
    run.wait_for_stderr(r"database not ready \(retry\): .*Connection refused")
    # The scenario's timing (the server comes up ~2 s after bandage, while
    # bandage keeps retrying), not synchronisation.
    time.sleep(max(0.0, run.started_at + 2.0 - time.monotonic()))
    probe = AcceptProbe(dsn, scaled(30))
    probe.start()  # before the server: nothing can accept a login until start()
    try:
        cluster.start(wait=False)
        wait_until(lambda: probe.success_start or not probe.is_alive(), scaled(30),
                   lambda: f"a probe login to succeed; last error: {probe.last_error}")
    finally:
        probe.stop()
    assert probe.success_start, f"the probe never logged in: {probe.last_error}"
    run.wait_exit_code(0, scaled(20))
    assert_secret_hidden(run, cluster.superuser_password)
    with open(stamp) as f:
        app_started = float(f.read())
    # "Accepting" is when the probe's first login succeeded: like bandage's
    # own, that first login pays for the server's first-connection work
    # (relcache init file), which is not bandage's lag.
    lag = app_started - probe.success_end
    assert probe.last_failure_start is not None and app_started > probe.last_failure_start, (
        f"the app started at {app_started:.3f}, before the server stopped refusing "
        f"(a probe failed at {probe.last_failure_start})\n{run.stderr}")
    assert lag < scaled(0.2), (
        f"app started {lag * 1000:.0f} ms after the server first accepted a login "
        f"(probe attempt {probe.success_start:.3f}..{probe.success_end:.3f}, "
        f"app {app_started:.3f})\n{run.stderr}")
    m = READY.search(run.stderr)
    assert m, run.stderr
    assert int(m.group(1)) >= 8, f"expected a retry about every 100 ms for ~2 s:\n{run.stderr}"
    lines = not_ready_lines(run)
    refused = [r for _, r in lines if "Connection refused" in r]
    assert len(refused) == 1, f"the refused reason must be logged once:\n{run.stderr}"
    assert len(lines) == len(set(lines)), f"a reason was logged twice:\n{run.stderr}"
    assert len(lines) < int(m.group(1)), f"one line per attempt:\n{run.stderr}"


# --- never up, hung, not accepting, full ------------------------------------------

def test_server_never_up_exits_69_after_wait_timeout(run_bandage, refused_port, pg):
    dsn = pg.dsn(port=refused_port)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "1"])
    code = run.wait(scaled(10))
    elapsed = run.exited_at - run.started_at
    assert code == 69, run.stderr
    assert 1.0 <= elapsed < 1.0 + scaled(0.5), f"exited after {elapsed:.3f}s\n{run.stderr}"
    m = GAVE_UP.search(run.stderr)
    assert m and m.group(1) == "1000", run.stderr
    assert int(m.group(2)) >= 5, f"expected a retry about every 100 ms:\n{run.stderr}"
    assert "Connection refused" in run.stderr.split("did not accept a login")[1], run.stderr
    lines = not_ready_lines(run)
    assert len(lines) == 1 and lines[0][0] == "retry", run.stderr
    assert_secret_hidden(run, pg.superuser_password)


@pytest.mark.parametrize("connect_timeout", ["200ms", "10"])
def test_hung_server_attempts_are_bounded(run_bandage, silent_listener, pg, connect_timeout):
    """A server that accepts TCP but never answers: each attempt ends after
    --connect-timeout, and never later than the wait deadline (a 10 s
    connect timeout does not stretch a 1 s wait)."""
    dsn = pg.dsn(port=silent_listener.port)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "1",
                       "--connect-timeout", connect_timeout])
    code = run.wait(scaled(15))
    elapsed = run.exited_at - run.started_at
    assert code == 69, run.stderr
    assert 1.0 <= elapsed < 1.0 + scaled(0.5), f"exited after {elapsed:.3f}s\n{run.stderr}"
    assert "timeout expired" in run.stderr, run.stderr
    arrived = silent_listener.connections()
    if connect_timeout == "200ms":
        assert 2 <= attempts_made(run) <= 6, run.stderr
        assert 1 <= arrived <= attempts_made(run), (arrived, run.stderr)
    else:
        assert attempts_made(run) == 1 and arrived == 1, (arrived, run.stderr)
    assert_secret_hidden(run, pg.superuser_password)


def test_not_accepting_57p03_is_not_ready(run_bandage, pg_factory):
    """A standby with hot_standby=off answers every login with 57P03 forever:
    that is "not ready" (retried every ~100 ms), never "ready"."""
    cluster = pg_factory()
    add_server_settings(cluster, hot_standby="off")
    signal_file = os.path.join(cluster.data_dir, "standby.signal")
    open(signal_file, "w").close()
    chown_to_cluster_owner(signal_file)
    cluster.start(wait=False)
    dsn = cluster.dsn()

    def answering():
        err = login_error(dsn)
        assert err is not None, "the standby accepted a login"
        return None if "Connection refused" in err else err
    err = wait_until(answering, scaled(30), lambda: f"the standby to answer; log:\n{cluster.log()}")
    assert "not accepting connections" in err or "starting up" in err, err

    run = run_bandage(["--database-url", dsn, "--wait-timeout", "1"])
    code = run.wait(scaled(10))
    elapsed = run.exited_at - run.started_at
    assert code == 69, run.stderr
    assert elapsed < 1.0 + scaled(0.5), f"exited after {elapsed:.3f}s\n{run.stderr}"
    assert "57P03" in run.stderr, run.stderr
    assert re.search(r"not accepting connections|starting up", run.stderr), run.stderr
    lines = not_ready_lines(run)
    assert [c for c, r in lines if "57P03" in r] == ["retry"], (
        f"57P03 must be logged once, as a fast retry:\n{run.stderr}")
    assert attempts_made(run) >= 5, f"expected a retry about every 100 ms:\n{run.stderr}"
    assert_secret_hidden(run, cluster.superuser_password)


def test_too_many_connections_53300_is_retried(run_bandage, pg_factory):
    cluster = pg_factory()
    settings = {"max_connections": 3, "superuser_reserved_connections": 0}
    if server_major(cluster) >= 16:
        settings["reserved_connections"] = 0
    add_server_settings(cluster, **settings)
    cluster.start()
    dsn = cluster.dsn(sslmode="disable")
    held = []
    try:
        for _ in range(10):
            err = login_error(dsn)
            if err is not None:
                break
            held.append(psycopg.connect(dsn, connect_timeout=int(scaled(5))))
        assert held and err and "too many clients" in err, (len(held), err)

        run = run_bandage(["--database-url", dsn, "--wait-timeout", scaled(5)])
        run.wait_for_stderr(r"database not ready \(retry with backoff\): .*53300")
        assert run.running, run.stderr
        held.pop().close()
        run.wait_exit_code(0, scaled(10))
    finally:
        for conn in held:
            conn.close()
    assert READY.search(run.stderr), run.stderr
    assert attempts_made(run) >= 2, run.stderr
    assert len([r for _, r in not_ready_lines(run) if "53300" in r]) == 1, run.stderr
    assert_secret_hidden(run, cluster.superuser_password)


# --- refused at once ------------------------------------------------------------------

def assert_refused_at_once(run, code=77, attempts=1):
    got = run.wait(scaled(10))
    elapsed = run.exited_at - run.started_at
    assert got == code, f"exited {got}, expected {code}\n{run.stderr}"
    assert elapsed < scaled(1), f"took {elapsed:.3f}s\n{run.stderr}"
    if attempts:
        assert attempts_made(run) == attempts, run.stderr
    else:  # refused when the settings were read: no summary, nothing tried
        assert "waiting for the database" not in run.stderr, run.stderr
    assert not not_ready_lines(run), f"must not retry:\n{run.stderr}"


def test_wrong_password_exits_77_at_once(run_bandage, pg, db):
    wrong = "wrong-" + uuid.uuid4().hex
    run = run_bandage(["--database-url", db.dsn(password=wrong), "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "password authentication failed" in run.stderr, run.stderr
    assert "28P01" in run.stderr, run.stderr
    assert_secret_hidden(run, wrong, pg.superuser_password)


def test_password_given_as_key_value_is_hidden(run_bandage, pg, db):
    wrong = "kv-wrong-" + uuid.uuid4().hex
    conninfo = (f"host={pg.host} port={pg.port} dbname={db.name} user=postgres "
                f"password='{wrong}'")
    run = run_bandage(["--database-url", conninfo, "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "password authentication failed" in run.stderr, run.stderr
    assert_secret_hidden(run, wrong)


def test_unknown_database_exits_77(run_bandage, pg):
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    run = run_bandage(["--database-url", pg.dsn(name), "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "3D000" in run.stderr and name in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)


def test_unknown_user_exits_77(run_bandage, pg):
    secret = "pw-" + uuid.uuid4().hex
    user = f"nobody_{uuid.uuid4().hex[:8]}"
    run = run_bandage(["--database-url", pg.dsn(user=user, password=secret),
                       "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "authentication failed" in run.stderr and user in run.stderr, run.stderr
    assert_secret_hidden(run, secret)


def test_role_without_login_right_exits_77(run_bandage, pg, nologin_role):
    run = run_bandage(["--database-url", pg.dsn(user=nologin_role.name,
                                                 password=nologin_role.password),
                       "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "28000" in run.stderr and "not permitted to log in" in run.stderr, run.stderr
    assert_secret_hidden(run, nologin_role.password)


@pytest.mark.parametrize("params, message, attempts", [
    # bandage reads sslmode itself (node-postgres's no-verify is one more
    # value): refused when the URL is read, naming the parameter.
    ({"sslmode": "bogus"}, "sslmode must be disable, allow, prefer, require", 0),
    # libpq checks connect_timeout only on its blocking path; bandage checks
    # it when reading --database-url / DATABASE_URL.
    ({"connect_timeout": "soon"}, "connect_timeout must be a whole number", 0),
    ({"target_session_attrs": "whatever"}, "invalid target_session_attrs value", 1),
], ids=["sslmode", "connect_timeout", "target_session_attrs"])
def test_bad_connection_options_exit_64_at_once(run_bandage, pg, params, message, attempts):
    """Options libpq itself rejects (one attempt, no retry), and one it checks
    only on its blocking path, which bandage checks when reading the URL."""
    run = run_bandage(["--database-url", pg.dsn(**params), "--wait-timeout", "30"])
    assert_refused_at_once(run, code=64, attempts=attempts)
    assert message in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)


# --- signals ------------------------------------------------------------------------------

def test_sigterm_during_wait_exits_143(run_bandage, pid1, refused_port, pg, app_dir):
    marker = os.path.join(app_dir, "app-ran")
    run = run_bandage(["--database-url", pg.dsn(port=refused_port), "--wait-timeout", "30",
                       "--", "/bin/sh", "-c", f"touch {marker}"], pid1=pid1)
    run.wait_for_stderr(r"database not ready \(retry\)")
    sent = time.monotonic()
    run.send_signal(15)
    code = run.wait(scaled(10))
    assert code == 143, f"exited {code} ({run.mode})\n{run.stderr}"
    assert run.exited_at - sent < scaled(1), (
        f"exited {run.exited_at - sent:.3f}s after SIGTERM ({run.mode})\n{run.stderr}")
    assert not os.path.exists(marker), "the app ran after bandage was told to stop"
    assert_secret_hidden(run, pg.superuser_password)


# --- --wait-timeout 0: exactly one attempt ---------------------------------------------
#
# A configured database is always connected to, so that an interrupted reset
# is settled before the app starts (issue 8 item 8); 0 means one attempt,
# no retry, and its failure ends the start.

@pytest.mark.parametrize("with_command", [False, True], ids=["no-command", "command"])
def test_wait_timeout_0_makes_one_attempt(run_bandage, refused_port, pg, app_dir, with_command):
    marker = os.path.join(app_dir, "app-ran")
    args = ["--database-url", pg.dsn(port=refused_port), "--wait-timeout", "0"]
    if with_command:
        args += ["--", "/bin/sh", "-c", f"touch {marker}"]
    run = run_bandage(args)
    code = run.wait(scaled(10))
    assert code == 69, run.stderr
    assert run.exited_at - run.started_at < scaled(1), run.stderr
    assert attempts_made(run) == 1, run.stderr
    assert "one attempt --wait-timeout 0 allows" in run.stderr, run.stderr
    assert "Connection refused" in run.stderr, run.stderr
    assert not os.path.exists(marker), "the app ran although the database was not reached"
    assert_secret_hidden(run, pg.superuser_password)


def test_wait_timeout_0_one_attempt_is_bounded(run_bandage, silent_listener, pg):
    run = run_bandage(["--database-url", pg.dsn(port=silent_listener.port), "--wait-timeout", "0",
                       "--connect-timeout", "300ms"])
    code = run.wait(scaled(10))
    assert code == 69, run.stderr
    assert 0.3 <= run.exited_at - run.started_at < 0.3 + scaled(0.7), run.stderr
    assert "timeout expired after 300 ms" in run.stderr, run.stderr
    assert attempts_made(run) == 1 and silent_listener.connections() == 1, run.stderr


def test_wait_timeout_0_connects_and_looks_for_an_interrupted_reset(run_bandage, pg, db,
                                                                    app_dir):
    """A live database with --wait-timeout 0: bandage logs in (once) and
    looks for bandage.resets_in_progress before the app starts: the server's
    statement log shows the look-up."""
    from psycopg import sql
    pg.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'")
               .format(sql.Identifier(db.name)))
    db.execute("CREATE SCHEMA bandage; CREATE TABLE bandage.resets_in_progress (aside text)",
               user="postgres")
    log_before = len(pg.log())
    marker = os.path.join(app_dir, "app-ran")
    run = run_bandage(["--database-url", db.dsn(), "--wait-timeout", "0", "--",
                       "/bin/sh", "-c", f"touch {marker}"])
    run.wait(scaled(15))
    assert READY.search(run.stderr) and attempts_made(run) == 1, run.stderr
    logged = wait_until(lambda: "resets_in_progress" in pg.log()[log_before:] and
                        pg.log()[log_before:], scaled(5),
                        lambda: f"the look-up in the server log:\n{pg.log()[log_before:]}"
                                f"\nbandage:\n{run.stderr}")
    assert "statement:" in logged, logged
    assert_secret_hidden(run, pg.superuser_password)


# --- PGCONNECT_TIMEOUT (libpq's variable, which libpq checks only when blocking) ----------

@pytest.mark.parametrize("value", ["soon", "1.5", "86401", "99999999999999999999"])
def test_bad_pgconnect_timeout_exits_64_at_once(run_bandage, pg, db, value):
    run = run_bandage(["--database-url", db.dsn(), "--wait-timeout", "30"],
                      env={"PGCONNECT_TIMEOUT": value})
    assert_refused_at_once(run, code=64, attempts=0)
    assert "PGCONNECT_TIMEOUT" in run.stderr and "whole number of seconds" in run.stderr, \
        run.stderr
    assert_secret_hidden(run, pg.superuser_password)


def test_pgconnect_timeout_limits_each_attempt(run_bandage, silent_listener, pg):
    """Shorter than --connect-timeout, so it decides: the first attempt ends
    after 2 s, the second at the 3 s deadline."""
    run = run_bandage(["--database-url", pg.dsn(port=silent_listener.port), "--wait-timeout",
                       "3", "--connect-timeout", "10"], env={"PGCONNECT_TIMEOUT": "2"})
    code = run.wait(scaled(10))
    assert code == 69, run.stderr
    assert 3.0 <= run.exited_at - run.started_at < 3.0 + scaled(0.5), run.stderr
    assert "timeout expired after 2000 ms" in run.stderr, run.stderr
    assert attempts_made(run) == 2 and silent_listener.connections() == 2, run.stderr


# --- TLS --------------------------------------------------------------------------------------

def test_tls_sslmode_require(run_bandage, pg):
    run = run_bandage(["--database-url", pg.dsn(sslmode="require"), "--wait-timeout", "10"])
    run.wait_exit_code(0, scaled(10))
    assert "sslmode=require" in run.stderr and READY.search(run.stderr), run.stderr
    assert_secret_hidden(run, pg.superuser_password)


def test_tls_verify_full_with_the_servers_ca(run_bandage, pg):
    dsn = pg.dsn(host="localhost", sslmode="verify-full", sslrootcert=pg.ca_file)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "10"])
    run.wait_exit_code(0, scaled(10))
    assert READY.search(run.stderr), run.stderr
    assert_secret_hidden(run, pg.superuser_password)


def test_tls_verify_full_with_a_wrong_ca_exits_77(run_bandage, pg):
    dsn = pg.dsn(host="localhost", sslmode="verify-full", sslrootcert=pg.wrong_ca_file)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "certificate verify failed" in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)


@pytest.mark.parametrize("trusted, expected", [("right", 0), ("wrong", 77)])
def test_tls_verify_full_uses_ssl_cert_file(run_bandage, pg, trusted, expected):
    """No sslrootcert and no ~/.postgresql/root.crt (as in a scratch image):
    bandage points libpq at the CA bundle, here SSL_CERT_FILE. Trusting the
    wrong CA there must then fail, which shows the variable is what is used."""
    ca = pg.ca_file if trusted == "right" else pg.wrong_ca_file
    with tempfile.TemporaryDirectory(prefix="bandage-home-") as home:
        run = run_bandage(["--database-url", pg.dsn(host="localhost", sslmode="verify-full"),
                           "--wait-timeout", "10"],
                          env={"SSL_CERT_FILE": ca, "HOME": home})
        if expected == 0:
            run.wait_exit_code(0, scaled(10))
            assert READY.search(run.stderr), run.stderr
        else:
            assert_refused_at_once(run)
            assert "certificate verify failed" in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)


# --- libpq's PG* variables -------------------------------------------------------------------

def test_pg_environment_variables(run_bandage, pg, db):
    env = {"PGHOST": pg.host, "PGPORT": pg.port, "PGUSER": "postgres",
           "PGPASSWORD": pg.superuser_password, "PGDATABASE": db.name}
    run = run_bandage(["--wait-timeout", "10"], env=env)
    run.wait_exit_code(0, scaled(10))
    m = re.search(r"waiting for the database \(([^)]*)\)", run.stderr)
    assert m, run.stderr
    shown = m.group(1)
    for part in (f"host={pg.host}", f"port={pg.port}", f"dbname={db.name}", "user=postgres"):
        assert part in shown, f"{part} missing from {shown!r}"
    assert READY.search(run.stderr), run.stderr
    assert_secret_hidden(run, pg.superuser_password)
