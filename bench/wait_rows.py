"""The waiting rows of bench/db_rows.py: readiness lag, and the attempts a
waiter makes per second while nothing listens and while the server answers
57P03 (with the server's CPU for the latter). bandage and its peers are
measured in the same run, on the same server.

Peers: a `pg_isready` loop with `sleep 1` and with `sleep 0.1` (pg_isready
sends a startup packet but does not log in), wait-for-it (a TCP connect, 1 s
period) and dbmate's `wait` (a real login through Go's lib/pq, default 1 s
--wait-interval; its static binary from npm, run directly).
"""
import calendar
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time

import psycopg

from helpers.pg import PgCluster, PortReservation, find_pg_bin

READY = re.compile(r"database ready after (\d+) attempts? in (\d+) ms")


def _ready_at(stderr):
    """(attempts, wall time) of bandage's "database ready" JSON log line."""
    for line in stderr.splitlines():
        if "database ready after" not in line:
            continue
        rec = json.loads(line)
        stamp = rec["time"]  # 2026-12-02T06:33:01.123456Z
        t = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        return int(READY.search(rec["msg"]).group(1)), t + float("0" + stamp[19:].rstrip("Z"))
    return None, None
GAVE_UP = re.compile(r"within (\d+) ms \((\d+) attempts?\)")


DATE = "/usr/bin/date"
APP = [DATE, "+%s.%N"]  # the app: its first action prints the time on stdout


def waiters(bench, port, url, limit_s=60):
    """name -> argv that waits for the server on 127.0.0.1:port, then runs
    APP: one fork and exec of date in every case. limit_s bounds each."""
    isready = f"pg_isready -q -h 127.0.0.1 -p {port}"
    app = " ".join(APP)
    w = {
        "bandage": [bench.bandage, "--database-url", url, "--log-level", "info",
                    "--log-format", "json", "--wait-timeout", f"{limit_s}s", "--", *APP],
        "pg_isready loop (sleep 1)": ["/bin/sh", "-c",
                                      f"until {isready}; do sleep 1; done; {app}"],
        "pg_isready loop (sleep 0.1)": ["/bin/sh", "-c",
                                        f"until {isready}; do sleep 0.1; done; {app}"],
    }
    if shutil.which("wait-for-it"):
        w["wait-for-it (TCP)"] = ["wait-for-it", "-q", "-t", str(limit_s), f"127.0.0.1:{port}",
                                  "--", *APP]
    if bench.dbmate:
        w["dbmate wait"] = ["/bin/sh", "-c", f"{bench.dbmate} --url '{url}' --wait-timeout "
                                             f"{limit_s}s wait >/dev/null 2>&1 && {app}"]
    return w


class LoginProbe(threading.Thread):
    """Logs in every 2 ms, with the waiters' URL (TCP, TLS, scram-sha-256:
    a login that costs what bandage's costs), until one succeeds; .accepted
    is the wall time at which that first login completed."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.dsn = cluster.dsn(connect_timeout=2)
        self.accepted = None
        self.stop = False

    def run(self):
        while not self.stop and self.accepted is None:
            try:
                psycopg.connect(self.dsn).close()
                self.accepted = time.time()
            except psycopg.OperationalError:
                time.sleep(0.002)


def readiness(bench):
    """Server accepts logins → app started, median of N starts per waiter,
    the waiters interleaved start by start."""
    n = 4 if bench.quick else 10
    cluster = PgCluster(bench.ca, base_dir=os.path.join(bench.tmp, "ready"))
    names = list(waiters(bench, cluster.port, cluster.dsn()))
    lags = {name: [] for name in names}
    attempts, after_login = [], []
    env = bench.base_env()
    env["PATH"] = find_pg_bin() + ":" + env.get("PATH", "")
    try:
        for i in range(n):
            for name in names:
                argv = waiters(bench, cluster.port, cluster.dsn())[name]
                waiter = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
                time.sleep(0.3 + 0.05 * i)  # the waiter is polling a closed port by now
                probe = LoginProbe(cluster)
                probe.start()
                cluster.start(wait=False)
                probe.join(60)
                probe.stop = True
                stdout, err = waiter.communicate(timeout=90)
                if probe.accepted is None or not stdout.strip():
                    raise RuntimeError(f"{name}: no login by the probe or no app start "
                                       f"(exit {waiter.returncode}): {err[-1500:]}\n"
                                       f"{cluster.log()[-1500:]}")
                started = float(stdout.strip().splitlines()[-1])
                lags[name].append(started - probe.accepted)
                if name == "bandage":
                    tried, ready = _ready_at(err)
                    attempts.append(tried or 0)
                    if ready:
                        after_login.append(started - ready)
                cluster.stop(mode="immediate")  # the next start recovers: a 57P03 phase
    finally:
        cluster.destroy()
    med = {k: statistics.median(v) for k, v in lags.items()}
    bench.log("readiness lags (ms):", {k: [round(x * 1000) for x in v] for k, v in lags.items()})
    peers = "; ".join(f"{k} {med[k] * 1000:.0f} ms" for k in names if k != "bandage")
    note = (f"goal ≤ 20 ms; bandage: {statistics.median(attempts):.0f} attempts per start, "
            f"{statistics.median(after_login) * 1000:.0f} ms from its login to the app (medians); "
            "negative: the waiter went on before logins worked (it does not log in)")
    bench.rows.append((f"readiness lag (server accepts logins → app started), median of {n}",
                       f"{med['bandage'] * 1000:.0f} ms", peers, note))


# --- attempts per second -----------------------------------------------------

def _connects(trace, port):
    try:
        with open(trace) as f:
            return sum(1 for line in f if f"htons({port})" in line)
    except FileNotFoundError:
        return 0


def refused_rates(bench, window):
    """Nothing listens on the port: attempts per second over `window` s.
    bandage counts its own (its log); the peers' connect() calls are
    counted by strace (bandage's too, as a cross-check, when strace is here)."""
    hold = PortReservation()  # bound, not listening: connections are refused
    port = hold.port
    url = f"postgresql://postgres:x@127.0.0.1:{port}/postgres"
    strace = shutil.which("strace")
    env = bench.base_env()
    env["PATH"] = find_pg_bin() + ":" + env.get("PATH", "")
    rates = {}
    try:
        for name, argv in waiters(bench, port, url, limit_s=int(window) + 5).items():
            if name == "bandage":
                r = subprocess.run([bench.bandage, "--database-url", url, "--wait-timeout",
                                    f"{int(window * 1000)}ms"], env=env, capture_output=True,
                                   text=True, timeout=window + 30)
                m = GAVE_UP.search(r.stderr)
                rates[name] = int(m.group(2)) / window if m else None
                continue
            if not strace:
                continue
            trace = os.path.join(bench.tmp, "connects.trace")
            subprocess.run([strace, "-f", "-qq", "-e", "trace=connect", "-e", "signal=none",
                            "-o", trace, "timeout", str(window)] + argv, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=window + 30)
            rates[name] = _connects(trace, port) / window
    finally:
        hold.release()
    return rates


def _standby_57p03(bench):
    """A standby with hot_standby = off: it answers every login with 57P03,
    forever, and logs each connection it forks a backend for."""
    cluster = PgCluster(bench.ca, base_dir=os.path.join(bench.tmp, "standby"))
    conf = os.path.join(cluster.data_dir, "postgresql.conf")
    with open(os.path.join(cluster.data_dir, "bench.conf"), "w") as f:
        f.write("hot_standby = off\nlog_connections = on\n")
    with open(conf, "a") as f:
        f.write("include 'bench.conf'\n")
    open(os.path.join(cluster.data_dir, "standby.signal"), "w").close()
    cluster._chown()
    cluster.start(wait=False)
    dsn = cluster.dsn(connect_timeout=2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dsn).close()
            raise RuntimeError("the hot_standby = off standby accepted a login")
        except psycopg.OperationalError as e:
            if "57P03" in str(getattr(e, "sqlstate", "")) or "not accepting" in str(e):
                return cluster
        time.sleep(0.05)
    raise RuntimeError(f"the standby never answered 57P03:\n{cluster.log()}")


def _server_cpu_ms(pid):
    """The postmaster's CPU time, its reaped backends included, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def starting_up_rates(bench, window):
    """57P03: per waiter, the attempts it makes per second, the backends the
    server forks per second for them (log_connections), and the server's
    CPU (postmaster plus backends) per second; an idle window first."""
    cluster = _standby_57p03(bench)
    env = bench.base_env()
    env["PATH"] = find_pg_bin() + ":" + env.get("PATH", "")
    out = {}
    try:
        pid = cluster.pid
        url = cluster.dsn()
        runs = [("no waiter", ["sleep", str(window)])]
        runs += list(waiters(bench, cluster.port, url, limit_s=int(window) + 5).items())
        for name, argv in runs:
            before_log, before_cpu = len(cluster.log()), _server_cpu_ms(pid)
            if name == "bandage":
                argv = [bench.bandage, "--database-url", url,
                        "--wait-timeout", f"{int(window * 1000)}ms"]
            r = subprocess.run(["timeout", str(window)] + argv if name != "bandage" else argv,
                               env=env, capture_output=True, text=True, timeout=window + 30)
            forks = cluster.log()[before_log:].count("connection received: host=127.0.0.1")
            cpu = _server_cpu_ms(pid) - before_cpu
            tried = None
            if name == "bandage":
                m = GAVE_UP.search(r.stderr)
                tried = int(m.group(2)) / window if m else None
            out[name] = (tried, forks / window, cpu / window)
    finally:
        cluster.destroy()
    return out


def poll_rates(bench):
    window = 1.0 if bench.quick else 3.0
    refused = refused_rates(bench, window)
    starting = starting_up_rates(bench, window)
    bench.log("refused attempts/s:", refused)
    bench.log("57P03 (attempts/s, backends/s, server CPU ms/s):", starting)
    fmt = lambda x: "—" if x is None else f"{x:.0f}"  # noqa: E731
    peers = "; ".join(f"{k} {fmt(v)}" for k, v in refused.items() if k != "bandage")
    bench.rows.append((f"attempts per second while nothing listens (refused), {window:.0f} s",
                       f"{fmt(refused.get('bandage'))}/s",
                       peers or "(no strace: peers not counted)",
                       "costs the server nothing; bandage from its log, peers' connect() "
                       "by strace"))
    idle_cpu = starting["no waiter"][2]
    tried, forks, cpu = starting["bandage"]
    peers = "; ".join(f"{k} {f:.0f} backends/s, {c - idle_cpu:.0f} ms CPU/s"
                      for k, (_, f, c) in starting.items() if k not in ("bandage", "no waiter"))
    bench.rows.append(
        (f"57P03 (standby, hot_standby = off), {window:.0f} s: attempts/s, backends the server "
         "forks/s, server CPU ms/s above idle",
         f"{fmt(tried)} attempts/s, {forks:.0f} backends/s, {cpu - idle_cpu:.0f} ms CPU/s",
         peers, f"idle server {idle_cpu:.0f} ms CPU/s; CPU in clock ticks "
                f"({1000 / os.sysconf('SC_CLK_TCK'):.0f} ms)"))
