"""The deploy report and the webhook (README "What a start does", 3): one summary
line per start, the JSON payloads of the "deploy" and "exit" events, delivery
from a forked sender (retries, TLS, a receiver that hangs or is not there),
secrets kept out of logs and payloads, and that none of it delays the app or
changes bandage's exit status.

The receiver is the harness's real HTTP(S) server (``webhook``); the database
is the harness's real PostgreSQL (``db``). Apps that must keep running until
the test has seen the deploy event block on a FIFO (:class:`Gate`) that the
test opens: an event, not a sleep.
"""
import base64
import datetime
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest

from helpers import REPO_ROOT, scaled, wait_until
from helpers.pg import PortReservation

SCHEMA_SQL = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")
#: Statements in examples/prisma/schema.sql (each ends with ";" at the end of a line).
SCHEMA_STATEMENTS = 17

SUMMARY_RX = re.compile(r"deploy (ok|skipped|failed) in (\d+) ms: ")
TEXT_SUMMARY_RX = re.compile(r"^bandage: (deploy (?:ok|skipped|failed) in \d+ ms: .*)$", re.M)
RFC3339_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
LEVELS = {"error", "warn", "info", "debug"}

RAILWAY_ENV = {
    "RAILWAY_DEPLOYMENT_ID": "dep-7f3a9c",
    "RAILWAY_SERVICE_NAME": "api",
    "RAILWAY_ENVIRONMENT_NAME": "staging",
    "RAILWAY_GIT_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
}

#: The deploy event's fields and their JSON types (None: null allowed).
DEPLOY_TYPES = {
    "event": (str,), "timestamp": (str,), "bandage_version": (str,),
    "deployment_id": (str, None), "host": (str,), "outcome": (str,), "exit_code": (int,),
    "reset_mode": (str,), "reset_ran": (bool,), "reset_at": (str, None),
    "wait_attempts": (int,), "wait_ms": (int,), "reset_ms": (int,), "statements": (int,),
    "bytes": (int,), "total_ms": (int,), "error_count": (int,), "errors": (list,),
}
EXIT_TYPES = {
    "event": (str,), "timestamp": (str,), "bandage_version": (str,),
    "deployment_id": (str, None), "host": (str,), "exit_code": (int,), "signal": (int, None),
    "uptime_ms": (int,),
}


# --- helpers ----------------------------------------------------------------------

class Gate:
    """A FIFO that the app blocks on (``read _ < fifo``) until :meth:`release`.

    Opening a FIFO O_RDWR never blocks on Linux; the line written waits in the
    pipe (held open until teardown) until the app opens and reads it, whether
    the app got there first or not."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "gate")
        os.mkfifo(self.path, 0o600)
        self._fd = None

    @property
    def shell(self):
        return f"read _ < {shlex.quote(self.path)}"

    def release(self):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            os.write(self._fd, b"go\n")

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@pytest.fixture
def gate(app_dir):
    g = Gate(app_dir)
    yield g
    g.close()


@pytest.fixture(scope="session")
def bandage_version(bandage_bin):
    out = subprocess.run([bandage_bin, "--version"], capture_output=True, text=True,
                         timeout=scaled(10), env={"PATH": os.environ.get("PATH", "")})
    m = re.fullmatch(r"bandage (\S+)\nMIT licence\..*THIRD_PARTY_NOTICES.*\n", out.stdout)
    assert m, f"unexpected --version output: {out.stdout!r} {out.stderr!r}"
    return m.group(1)


def reset_args(db, *extra):
    """A real reset of ``db`` with examples/prisma/schema.sql."""
    return ["--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
            "--schema-file", SCHEMA_SQL, *extra]


def parse_time(text):
    assert RFC3339_RX.match(text), f"not RFC 3339: {text!r}"
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_types(payload, types):
    for key, kinds in types.items():
        assert key in payload, f"{key!r} missing from {payload}"
        value = payload[key]
        # type() is: a bool is not an int here, and an int is not a bool.
        assert any(value is None if k is None else type(value) is k for k in kinds), \
            f"{key}={value!r} is not of type {kinds}"


def events(receiver, name):
    """The requests whose JSON body is event ``name``."""
    return [r for r in receiver.requests if r.json().get("event") == name]


def only_summary(run):
    """The one "deploy ... in N ms: ..." line (text format), without the prefix."""
    found = TEXT_SUMMARY_RX.findall(run.stderr)
    assert len(found) == 1, f"expected one summary line, got {found}; stderr:\n{run.stderr}"
    return found[0]


def json_lines(run):
    """Every stderr line parsed as JSON (fails naming the first that is not)."""
    parsed = []
    for line in run.stderr.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {line!r}\nstderr:\n{run.stderr}")
        assert isinstance(obj, dict), line
        parsed.append(obj)
    return parsed


def without_timestamp(payload):
    return {k: v for k, v in payload.items() if k != "timestamp"}


def check_headers(req, bandage_version):
    assert req.method == "POST"
    assert req.headers.get("content-type") == "application/json", req.headers
    assert req.headers.get("user-agent", "").startswith("bandage/"), req.headers
    assert req.headers["user-agent"] == f"bandage/{bandage_version}"


# --- the deploy event ---------------------------------------------------------------

def test_deploy_event_after_a_real_reset(run_bandage, db, webhook, gate, bandage_version):
    wall_before = time.time()
    run = run_bandage([*reset_args(db), "--webhook-url", webhook.url,
                       "--", "sh", "-c", f"{gate.shell}; exit 0"], env=RAILWAY_ENV)
    (req,) = webhook.wait_for(1)
    # The app is still blocked on the gate: the report did not wait for it.
    assert run.running, run.stderr
    wall_seen = time.time()
    check_headers(req, bandage_version)
    assert req.path == "/hook"
    body = req.json()
    check_types(body, DEPLOY_TYPES)
    assert body["event"] == "deploy"
    assert body["bandage_version"] == bandage_version
    assert body["deployment_id"] == RAILWAY_ENV["RAILWAY_DEPLOYMENT_ID"]
    assert body["service"] == "api"
    assert body["environment"] == "staging"
    assert body["git_commit_sha"] == RAILWAY_ENV["RAILWAY_GIT_COMMIT_SHA"]
    assert body["host"] == socket.gethostname()
    assert body["outcome"] == "ok"
    assert body["exit_code"] == 0
    assert body["reset_mode"] == "always"
    assert body["reset_ran"] is True
    reset_at, stamp = parse_time(body["reset_at"]), parse_time(body["timestamp"])
    assert wall_before - 1 <= reset_at <= stamp <= wall_seen + 1, body
    assert body["wait_attempts"] >= 1
    assert 0 <= body["wait_ms"] <= body["total_ms"]
    assert 0 <= body["reset_ms"] <= body["total_ms"]
    assert body["total_ms"] <= (wall_seen - wall_before) * 1000 + 5
    assert body["statements"] == SCHEMA_STATEMENTS
    assert 0 < body["bytes"] <= os.path.getsize(SCHEMA_SQL)
    assert body["error_count"] == 0 and body["errors"] == []
    # The reset really happened.
    tables = {r[0] for r in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"User", "Post", "Comment", "Tag", "_PostToTag"} <= tables
    summary = only_summary(run)
    assert summary.startswith("deploy ok in ") and "reset in" in summary, summary
    assert f"({SCHEMA_STATEMENTS} statements)" in summary, summary

    gate.release()
    run.wait_exit_code(0)
    kinds = [r.json()["event"] for r in webhook.requests]
    assert kinds == ["deploy", "exit"], kinds


def test_deploy_event_without_a_database_phase(run_bandage, webhook, bandage_version):
    """No database configured: still one summary line and one deploy event, and
    no Railway fields when the variables are unset (or empty)."""
    run = run_bandage(["--webhook-url", webhook.url], env={"RAILWAY_SERVICE_NAME": ""})
    run.wait_exit_code(0)
    (req,) = webhook.requests
    check_headers(req, bandage_version)
    body = req.json()
    check_types(body, DEPLOY_TYPES)
    assert body["event"] == "deploy" and body["outcome"] == "ok" and body["exit_code"] == 0
    assert body["reset_mode"] == "never" and body["reset_ran"] is False
    assert body["reset_at"] is None and body["deployment_id"] is None
    assert body["wait_attempts"] == 0 and body["statements"] == 0 and body["errors"] == []
    for key in ("service", "environment", "git_commit_sha"):
        assert key not in body, body
    assert only_summary(run).endswith("no database phase, 0 errors")


@pytest.mark.parametrize("flag, env, expected", [
    (None, {"RAILWAY_DEPLOYMENT_ID": "rw-1"}, "rw-1"),
    ("flag-2", {"RAILWAY_DEPLOYMENT_ID": "rw-1"}, "flag-2"),
    (None, {"BANDAGE_DEPLOYMENT_ID": "env-3", "RAILWAY_DEPLOYMENT_ID": "rw-1"}, "env-3"),
], ids=["railway fallback", "flag wins", "BANDAGE_DEPLOYMENT_ID wins"])
def test_deployment_id(run_bandage, webhook, flag, env, expected):
    args = ["--webhook-url", webhook.url] + (["--deployment-id", flag] if flag else [])
    run_bandage(args, env=env).wait_exit_code(0)
    (req,) = webhook.requests
    assert req.json()["deployment_id"] == expected


def test_skipped_outcome_on_the_second_start_of_a_deploy(run_bandage, db, webhook):
    args = ["--database-url", db.dsn(), "--reset", "once", "--confirm-database", db.name,
            "--schema-file", SCHEMA_SQL, "--deployment-id", "dep-once",
            "--webhook-url", webhook.url]
    run_bandage(args).wait_exit_code(0)
    second = run_bandage(args)
    second.wait_exit_code(0)
    first_body, second_body = [r.json() for r in webhook.requests]
    assert first_body["outcome"] == "ok" and first_body["reset_ran"] is True
    check_types(second_body, DEPLOY_TYPES)
    assert second_body["outcome"] == "skipped"
    assert second_body["exit_code"] == 0 and second_body["reset_mode"] == "once"
    assert second_body["reset_ran"] is False and second_body["reset_at"] is None
    assert second_body["statements"] == 0 and second_body["errors"] == []
    assert isinstance(second_body.get("skip_reason"), str) and second_body["skip_reason"]
    assert only_summary(second).startswith("deploy skipped in ")


# --- the exit event -----------------------------------------------------------------

def test_exit_event_for_an_exit_code(run_bandage, webhook, gate, app_dir, pid1,
                                    bandage_version):
    started = os.path.join(app_dir, "started")
    run = run_bandage(["--webhook-url", webhook.url, "--deployment-id", "dep-exit", "--",
                       "sh", "-c", f"date +%s.%N > {shlex.quote(started)}; {gate.shell}; exit 3"],
                      pid1=pid1)
    webhook.wait_for(1)
    wait_until(lambda: os.path.exists(started) and os.path.getsize(started), scaled(5),
               "the app to start")
    released = time.time()
    gate.release()
    run.wait_exit_code(3)
    # Read right after bandage exited: the exit event must already be here.
    reqs = webhook.requests
    assert [r.json()["event"] for r in reqs] == ["deploy", "exit"], reqs
    req = reqs[1]
    assert req.received_at <= run.exited_at
    check_headers(req, bandage_version)
    body = req.json()
    check_types(body, EXIT_TYPES)
    assert body["exit_code"] == 3 and body["signal"] is None
    assert body["deployment_id"] == "dep-exit"
    assert body["host"] == socket.gethostname()
    assert body["command"] in ("sh", "/bin/sh"), body
    # uptime runs from spawn to exit: at least from the app's first command
    # until the gate opened.
    with open(started) as f:
        app_started = float(f.read())
    assert (released - app_started) * 1000 - 2 <= body["uptime_ms"] <= \
        (run.exited_at - run.started_at) * 1000 + 2, body
    assert re.search(r"^bandage: app exited with code 3 after \d+ ms$", run.stderr, re.M), \
        run.stderr


def test_exit_event_for_a_signal(run_bandage, webhook, pid1):
    run = run_bandage(["--webhook-url", webhook.url, "--", "sh", "-c", "kill -TERM $$"],
                      pid1=pid1)
    run.wait_exit_code(143)
    exits = events(webhook, "exit")
    assert len(exits) == 1, webhook.requests
    assert exits[0].received_at <= run.exited_at
    body = exits[0].json()
    check_types(body, EXIT_TYPES)
    assert body["signal"] == 15 and body["exit_code"] == 143, body
    assert re.search(r"^bandage: app killed by signal 15 .*exit code 143$", run.stderr, re.M), \
        run.stderr


def test_exit_event_when_bandage_is_stopped(run_bandage, webhook, gate, app_dir, pid1):
    """A container stop: SIGTERM to bandage reaches the app, which dies of it;
    that is reported before bandage exits."""
    ready = os.path.join(app_dir, "ready")
    run = run_bandage(["--webhook-url", webhook.url, "--grace", "5",
                       "--", "sh", "-c", f"touch {shlex.quote(ready)}; {gate.shell}"], pid1=pid1)
    wait_until(lambda: os.path.exists(ready), scaled(5), "the app to start")
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(143)
    exits = events(webhook, "exit")
    assert len(exits) == 1, webhook.requests
    assert exits[0].status == 200 and exits[0].received_at <= run.exited_at
    body = exits[0].json()
    assert body["signal"] == 15 and body["exit_code"] == 143, body


def test_exit_event_when_the_command_is_not_found(run_bandage, webhook):
    run = run_bandage(["--webhook-url", webhook.url, "--", "/nonexistent/bandage-test-app"])
    run.wait_exit_code(127)
    exits = events(webhook, "exit")
    assert len(exits) == 1, webhook.requests
    body = exits[0].json()
    assert body["exit_code"] == 127 and body["signal"] is None, body


def test_deploy_event_survives_an_app_that_exits_at_once(run_bandage, webhook, pid1):
    """A crash-looping app (exits at once) is when the deploy report matters
    most: it must still arrive, next to the exit event, retries included.

    With a receiver that answers 200 at once the report is lost about half the
    time (a race between the sender's POST and the app's exit); the first
    answer being a 503 makes the loss certain, as the sender is then in its
    retry back-off (>= 50 ms) when the app exits."""
    webhook.respond_with(503)
    run = run_bandage(["--webhook-url", webhook.url, "--", "sh", "-c", "exit 3"], pid1=pid1)
    run.wait_exit_code(3)
    # Whichever sender got the 503 retried: one of each event must get a 200.
    assert [r.status for r in events(webhook, "exit")][-1:] == [200], webhook.requests
    delivered = [r for r in events(webhook, "deploy") if r.status == 200]
    assert len(delivered) == 1, (f"deploy event not delivered: {webhook.requests}\n"
                                 f"stderr:\n{run.stderr}")


def test_payload_strings_are_escaped(run_bandage, webhook):
    """Quotes, backslashes, control characters and non-ASCII text come through
    exactly; a byte that is not UTF-8 becomes U+FFFD, and the body stays valid
    UTF-8 JSON (in the webhook and in the JSON log line)."""
    tricky = 'dép "quoted" back\\slash\nnew\tline\x01ctl\x7f'
    run = run_bandage(["--webhook-url", webhook.url, "--log-format", "json",
                       "--deployment-id", tricky],
                      env={"RAILWAY_SERVICE_NAME": "svc\udcff"})  # b"svc\xff"
    run.wait_exit_code(0)
    (req,) = webhook.requests
    body = req.json()  # strict UTF-8 decoding
    assert body["deployment_id"] == tricky
    assert body["service"] == "svc\ufffd"
    (summary,) = [o for o in json_lines(run) if SUMMARY_RX.match(o["msg"])]
    assert summary["report"]["deployment_id"] == tricky
    assert summary["report"]["service"] == "svc\ufffd"


# --- formats --------------------------------------------------------------------------

def test_slack_format(run_bandage, webhook, gate, bandage_version):
    run = run_bandage(["--webhook-url", webhook.url, "--webhook-format", "slack",
                       "--deployment-id", "dep-slack", "--", "sh", "-c", f"{gate.shell}; exit 4"])
    (deploy,) = webhook.wait_for(1)
    check_headers(deploy, bandage_version)
    body = deploy.json()
    assert set(body) == {"text"} and isinstance(body["text"], str), body
    assert only_summary(run) in body["text"], (body, run.stderr)
    assert "dep-slack" in body["text"] and bandage_version in body["text"]
    gate.release()
    run.wait_exit_code(4)
    reqs = webhook.requests
    assert len(reqs) == 2, reqs
    body = reqs[1].json()
    assert set(body) == {"text"}, body
    assert re.search(r"app exited with code 4 after \d+ ms", body["text"]), body


def test_json_log_lines_carry_the_reports(run_bandage, db, webhook, gate):
    run = run_bandage([*reset_args(db), "--log-format", "json", "--webhook-url", webhook.url,
                       "--", "sh", "-c", f"{gate.shell}; exit 2"])
    (deploy,) = webhook.wait_for(1)
    gate.release()
    run.wait_exit_code(2)
    lines = json_lines(run)
    assert lines, "no log lines"
    for obj in lines:
        assert {"time", "level", "msg"} <= set(obj), obj
        parse_time(obj["time"])
        assert obj["level"] in LEVELS and isinstance(obj["msg"], str), obj
    summaries = [o for o in lines if SUMMARY_RX.match(o["msg"])]
    assert len(summaries) == 1, lines
    assert summaries[0]["msg"].startswith("deploy ok in ")
    assert isinstance(summaries[0].get("report"), dict), summaries[0]
    assert without_timestamp(summaries[0]["report"]) == without_timestamp(deploy.json())
    (exit_req,) = events(webhook, "exit")
    exit_lines = [o for o in lines if o["msg"].startswith("app exited with code 2")]
    assert len(exit_lines) == 1, lines
    assert without_timestamp(exit_lines[0]["report"]) == without_timestamp(exit_req.json())
    assert any(o["level"] == "info" and "delivered" in o["msg"] for o in lines), lines


# --- delivery -------------------------------------------------------------------------

@pytest.mark.parametrize("codes", [(500, 500, 200), (429, 200)], ids=["5xx", "429"])
def test_retried_until_delivered(run_bandage, webhook, codes):
    webhook.respond_with(*codes)
    run = run_bandage(["--webhook-url", webhook.url, "--webhook-timeout", "5"])
    run.wait_exit_code(0)
    reqs = webhook.requests
    assert [r.status for r in reqs] == list(codes), reqs
    assert len({r.body for r in reqs}) == 1, "a retry sent another body"
    assert reqs[0].json()["event"] == "deploy"
    assert re.search(rf"^bandage: webhook http://127\.0\.0\.1:{webhook.port}/…: delivered "
                     rf"\(HTTP 200\) in \d+ ms$", run.stderr, re.M), run.stderr


def test_4xx_is_not_retried(run_bandage, webhook):
    webhook.respond_with(400, 200)
    run = run_bandage(["--webhook-url", webhook.url, "--webhook-timeout", "5"])
    run.wait_exit_code(0)
    assert [r.status for r in webhook.requests] == [400], webhook.requests
    assert re.search(r"^bandage: warn: webhook http://127\.0\.0\.1:\d+/…: not delivered after "
                     r"1 attempt in \d+ ms: HTTP 400$", run.stderr, re.M), run.stderr


def test_gives_up_on_5xx_at_the_timeout(run_bandage, webhook):
    webhook.default_status = 500
    run = run_bandage(["--webhook-url", webhook.url, "--webhook-timeout", "0.5"])
    run.wait_exit_code(0, timeout=scaled(10))
    assert run.exited_at - run.started_at <= 0.5 + scaled(1.5), run.exited_at - run.started_at
    reqs = webhook.requests
    assert len(reqs) >= 2 and all(r.status in (500, None) for r in reqs), reqs
    m = re.search(r"^bandage: warn: webhook http://127\.0\.0\.1:\d+/…: not delivered after "
                  r"(\d+) attempts in \d+ ms: (.*)$", run.stderr, re.M)
    assert m, run.stderr
    # The last attempt may have been cut by the deadline rather than answered.
    assert int(m.group(1)) in (len(reqs), len(reqs) + 1), (m.group(0), reqs)
    assert m.group(2) == "HTTP 500" or "timed out" in m.group(2).lower(), m.group(0)


def test_hanging_receiver_delays_neither_the_app_nor_the_exit(run_bandage, db, webhook,
                                                              app_dir):
    """The deploy sender never gets an answer: the app still starts right after
    the reset, and after the app exits bandage gives the exit event at most
    --webhook-timeout."""
    webhook.hang = True
    # The app is date(1) itself: its output (on bandage's stdout) is the time
    # it started, and it exits right after.
    run = run_bandage([*reset_args(db), "--log-format", "json", "--webhook-url", webhook.url,
                       "--webhook-timeout", "2", "--", "date", "+%s.%N"])
    run.wait_exit_code(0)
    exited_wall = time.time()
    app_started = float(run.stdout)
    lines = json_lines(run)
    committed = [o for o in lines if o["msg"].startswith("reset committed")]
    assert len(committed) == 1, lines
    gap = app_started - parse_time(committed[0]["time"])
    # The log time is truncated to the millisecond: allow that much negative.
    # Waiting for the webhook would cost --webhook-timeout (2 s). The normal
    # lag (worker exit, fork, exec of date) measured 20-70 ms on a loaded
    # 2-CPU machine, so the bound is 200 ms, not a flaky 50.
    assert -0.002 <= gap <= scaled(0.2), f"the app started {gap * 1000:.1f} ms after the reset"
    assert exited_wall - app_started <= 2 + scaled(1.5), \
        f"bandage exited {exited_wall - app_started:.2f}s after the app"
    # The exit event was tried (the receiver holds it) and reported as lost.
    assert events(webhook, "exit"), webhook.requests
    assert any(o["level"] == "warn" and "not delivered" in o["msg"] for o in lines), lines


def test_hanging_receiver_without_an_app_is_bounded(run_bandage, webhook):
    webhook.hang = True
    run = run_bandage(["--webhook-url", webhook.url, "--webhook-timeout", "0.5"])
    run.wait_exit_code(0, timeout=scaled(10))
    assert run.exited_at - run.started_at <= 0.5 + scaled(1.5), run.exited_at - run.started_at
    (req,) = webhook.requests
    assert req.json()["event"] == "deploy" and req.status is None
    assert re.search(r"^bandage: warn: webhook .*not delivered", run.stderr, re.M), run.stderr


@pytest.mark.parametrize("with_app", [True, False], ids=["app", "no app"])
def test_refused_connection_is_a_warning(run_bandage, refused_url, with_app):
    args = ["--webhook-url", refused_url, "--webhook-timeout", "0.5"]
    if with_app:
        args += ["--", "sh", "-c", "exit 6"]
    run = run_bandage(args)
    run.wait_exit_code(6 if with_app else 0, timeout=scaled(10))
    assert run.exited_at - run.started_at <= 0.5 + scaled(1.5)
    m = re.search(r"^bandage: warn: webhook http://127\.0\.0\.1:\d+/…: not delivered after "
                  r"(\d+) attempts? in \d+ ms: (.*)$", run.stderr, re.M)
    assert m, run.stderr
    assert int(m.group(1)) >= 2, "a refused connection was not retried"
    assert "connect" in m.group(2).lower(), m.group(0)


# --- TLS ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["flag", "SSL_CERT_FILE", "BANDAGE_WEBHOOK_CA_FILE",
                                 "flag over a wrong SSL_CERT_FILE"])
def test_https_trusting_the_harness_ca(run_bandage, webhook_https, wrong_ca, how):
    ca = webhook_https.ca_file
    args, env = ["--webhook-url", webhook_https.url], {}
    if how == "flag":
        args += ["--webhook-ca-file", ca]
    elif how == "flag over a wrong SSL_CERT_FILE":
        args += ["--webhook-ca-file", ca]
        env["SSL_CERT_FILE"] = wrong_ca.ca_file
    else:
        env[how] = ca
    run = run_bandage(args, env=env)
    run.wait_exit_code(0)
    (req,) = webhook_https.requests
    assert req.json()["event"] == "deploy" and req.status == 200
    assert f"https://127.0.0.1:{webhook_https.port}/…: delivered (HTTP 200)" in run.stderr


@pytest.mark.parametrize("trust", ["system bundle", "wrong CA"])
def test_https_untrusted_certificate_is_a_warning(run_bandage, webhook_https, wrong_ca,
                                                  app_dir, trust):
    env = {"HOME": app_dir}
    if trust == "wrong CA":
        env["SSL_CERT_FILE"] = wrong_ca.ca_file
    run = run_bandage(["--webhook-url", webhook_https.url, "--webhook-timeout", "3",
                       "--", "sh", "-c", "exit 9"], env=env)
    run.wait_exit_code(9)
    assert webhook_https.requests == []
    warnings = [line for line in run.stderr.splitlines()
                if line.startswith("bandage: warn: webhook") and "not delivered" in line]
    assert warnings, run.stderr
    assert all("certificate" in w.lower() for w in warnings), warnings
    wait_until(lambda: webhook_https.tls_errors, scaled(5),
               "the receiver to see a failed handshake")


# --- failures are reported too ---------------------------------------------------------

@pytest.fixture
def refused_port():
    r = PortReservation()
    yield r.port
    r.release()


def _bad_schema(app_dir):
    path = os.path.join(app_dir, "bad.sql")
    with open(path, "w") as f:
        f.write("CREATE TABLE made_first (id int);\nINSERT INTO no_such_table VALUES (1);\n")
    return path


FAILURES = {
    # name: (args(db, pg, port, app_dir), exit code, phase, code or None); db is
    # None for the cases that never get as far as a database of their own.
    "wrong password": (lambda db, pg, port, d: [
        "--database-url", pg.dsn(password="not-the-pass-Xq7"), "--wait-timeout", "5"],
        77, "wait", "28P01"),
    "unreachable": (lambda db, pg, port, d: [
        "--database-url", pg.dsn(port=port), "--wait-timeout", "0.5"],
        69, "wait", None),
    "failing schema file": (lambda db, pg, port, d: [
        "--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
        "--schema-file", _bad_schema(d)], 65, "schema-file", "42P01"),
    "no --confirm-database": (lambda db, pg, port, d: [
        "--database-url", db.dsn(), "--reset", "always", "--schema-file", SCHEMA_SQL],
        77, "reset", "interlock"),
}
NEEDS_DB = {"failing schema file", "no --confirm-database"}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_is_reported_before_exiting(run_bandage, db_factory, pg, webhook, refused_port,
                                            app_dir, case):
    db = db_factory() if case in NEEDS_DB else None
    make_args, code, phase, sqlstate = FAILURES[case]
    run = run_bandage([*make_args(db, pg, refused_port, app_dir), "--webhook-url", webhook.url])
    run.wait_exit_code(code)
    # No app: bandage waited for the sender, so the report is already here.
    (req,) = webhook.requests
    assert req.status == 200 and req.received_at <= run.exited_at
    body = req.json()
    check_types(body, DEPLOY_TYPES)
    assert body["event"] == "deploy" and body["outcome"] == "failed"
    assert body["exit_code"] == code
    assert body["reset_ran"] is False and body["reset_at"] is None
    assert body["error_count"] == len(body["errors"]) >= 1, body
    for e in body["errors"]:
        assert set(e) == {"phase", "code", "message"}, e
        assert all(isinstance(v, str) and v for v in e.values()), e
    first = body["errors"][0]
    assert first["phase"] == phase, body["errors"]
    if sqlstate:
        assert first["code"] == sqlstate, body["errors"]
    summary = only_summary(run)
    assert summary.startswith("deploy failed in ") and first["code"] in summary, summary
    # Multi-line server/libpq messages are folded: every line is a log line.
    stray = [line for line in run.stderr.splitlines() if not line.startswith("bandage: ")]
    assert not stray, f"stderr lines that are not log lines: {stray}\n{run.stderr}"
    for secret in (pg.superuser_password, "not-the-pass-Xq7"):
        assert secret not in req.body.decode() and secret not in run.stderr


def test_failure_with_an_app_reports_and_does_not_start_it(run_bandage, pg, webhook, app_dir):
    marker = os.path.join(app_dir, "ran")
    run = run_bandage(["--database-url", pg.dsn(password="not-the-pass-Xq7"),
                       "--webhook-url", webhook.url, "--", "touch", marker])
    run.wait_exit_code(77)
    assert not os.path.exists(marker)
    reqs = webhook.requests
    assert [r.json()["event"] for r in reqs] == ["deploy"], reqs
    assert reqs[0].status == 200 and reqs[0].json()["outcome"] == "failed"


# --- secrets ----------------------------------------------------------------------------

@pytest.mark.parametrize("log_format, dsn_form", [("text", "uri"), ("json", "key=value")])
def test_secrets_stay_out_of_logs_and_payloads(run_bandage, db, pg, webhook, gate,
                                               log_format, dsn_form):
    url = f"http://hookuser:hookpw9x@127.0.0.1:{webhook.port}/hook/T0K3N?token=S3CR3T"
    dsn = db.dsn() if dsn_form == "uri" else (
        f"host=127.0.0.1 port={pg.port} dbname={db.name} user=postgres "
        f"password={pg.superuser_password}")
    run = run_bandage(["--database-url", dsn, "--reset", "always", "--confirm-database",
                       db.name, "--schema-file", SCHEMA_SQL, "--log-level", "debug",
                       "--log-format", log_format, "--webhook-url", url,
                       "--", "sh", "-c", f"{gate.shell}; exit 0"])
    webhook.wait_for(1)
    gate.release()
    run.wait_exit_code(0)
    reqs = webhook.requests
    assert [r.json()["event"] for r in reqs] == ["deploy", "exit"], reqs
    expected_auth = "Basic " + base64.b64encode(b"hookuser:hookpw9x").decode()
    for r in reqs:
        assert r.path == "/hook/T0K3N?token=S3CR3T"  # the receiver may see its own token
        assert r.headers.get("authorization") == expected_auth
        assert pg.superuser_password not in r.body.decode()
    lines = run.stderr.splitlines()
    assert lines
    for line in lines:
        for secret in ("hookpw9x", "hookuser", "T0K3N", "S3CR3T", "token=",
                       pg.superuser_password):
            assert secret not in line, f"{secret!r} logged: {line}"
    redacted = f"http://127.0.0.1:{webhook.port}/…"
    assert redacted in run.stderr, run.stderr
    if log_format == "json":
        json_lines(run)


# --- one event, one line ------------------------------------------------------------------

FORGED = "\nbandage: error: fake"


def assert_no_forged_line(run, log_format):
    """Every stderr line is one of bandage's own events, and none is the fake."""
    lines = run.stderr.splitlines()
    assert lines, "no log lines"
    if log_format == "json":
        objs = json_lines(run)
        assert not any(o["msg"].startswith("bandage: error: fake") for o in objs), objs
        return objs
    for line in lines:
        assert line.startswith("bandage: "), f"not one of bandage's lines: {line!r}\n{run.stderr}"
        assert not line.startswith("bandage: error: fake"), f"forged line:\n{run.stderr}"
    return lines


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_deployment_id_cannot_forge_a_log_line(run_bandage, db, log_format):
    """The deployment id is logged when a deploy was already reset; a newline
    in it shows escaped (text) or JSON-escaped, on the one line of the event."""
    deployment = "dep-1" + FORGED
    args = ["--database-url", db.dsn(), "--reset", "once", "--confirm-database", db.name,
            "--schema-file", SCHEMA_SQL, "--deployment-id", deployment,
            "--log-format", log_format]
    run_bandage(args).wait_exit_code(0)
    second = run_bandage(args)
    second.wait_exit_code(0)
    lines = assert_no_forged_line(second, log_format)
    if log_format == "json":
        assert any(o["msg"] == f"deployment {deployment} was already reset; skipping"
                   for o in lines), lines
    else:
        assert "bandage: deployment dep-1\\nbandage: error: fake was already reset; skipping" \
            in lines, second.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_multi_line_server_error_is_one_line(run_bandage, db, tmp_path, log_format):
    """A server error whose text spans lines (here RAISE with a newline and an
    escape sequence) is logged on the event's one line."""
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE ok (id int);\n"
                      "DO $$ BEGIN RAISE EXCEPTION E'first line\\nbandage: error: fake\\x1b[2J';"
                      " END $$;\n")
    run = run_bandage(["--database-url", db.dsn(), "--reset", "always", "--confirm-database",
                       db.name, "--schema-file", str(schema), "--log-format", log_format])
    run.wait_exit_code(65)
    lines = assert_no_forged_line(run, log_format)
    text = "\n".join(o["msg"] for o in lines) if log_format == "json" else "\n".join(lines)
    assert "\x1b" not in run.stderr, run.stderr
    if log_format == "text":
        assert "first line\\nbandage: error: fake\\x1b[2J" in text, run.stderr
    else:
        assert "first line\nbandage: error: fake\x1b[2J" in text, lines
