"""A server that goes silent after the login (its VM lost, a failover that moves
its address away): no FIN, no RST, nothing. bandage must not wait for the
kernel's defaults (2 h before a keepalive probe, about 15 min of
retransmissions): it exits 69 within --dead-connection-timeout
(BANDAGE_DEAD_CONNECTION_TIMEOUT), and a long statement on a server that is
alive is never cut by it.

Silence needs a network: SIGSTOP of the server does not make any, its kernel
still ACKs. So bandage runs in a network namespace of the test's own
(``ip netns exec``), joined to the root namespace by a veth pair with a
private /30; the harness's PostgreSQL (on 127.0.0.1) is reached through a TCP
forwarder on the root end's address (helpers.tlsproxy with no failures). The
cut is ``ip link set <root end> down``: bandage's packets go nowhere and
nothing comes back, as when the host is gone. Skipped where namespaces
cannot be made (not root).

The setting is given through the environment, not a flag, so that a bandage
without it runs (and hangs: each wait here is bounded and fails the test).
"""
import os
import random
import re
import subprocess
import time
import uuid

import pytest

from helpers import scaled, wait_until
from helpers.tlsproxy import TlsFailProxy
from test_reset import (EXAMPLE_SQL, SEED_SQL, assert_same_dump, dump, reset_args,
                        wait_bandage_query, wait_no_bandage_session, write_sql)

#: --dead-connection-timeout in these tests (s): low, to keep them short.
DEAD_S = 3
#: What may come on top of it: the kernel's timers tick at whole RTOs and
#: keepalive intervals, and bandage has to log and exit.
SLACK_S = 4


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=scaled(10))
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class SplitNet:
    """A network namespace of the test's own and a veth pair to it: the root
    end ``host_if`` has ``host_addr``, the namespace's end ``ns_addr``, a
    /30 in 10.213.0.0/16 that no interface of the root namespace has."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.ns = f"bandage-dead-{tag}"
        self.host_if, self.ns_if = f"bdh{tag}", f"bdn{tag}"  # IFNAMSIZ: 15 at most
        self.host_addr, self.ns_addr = self._free_pair()
        self.made = []
        r = ip("netns", "add", self.ns, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}"
                        f"{'' if os.geteuid() == 0 else ' (not root)'}")
        self.made.append("ns")
        try:
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
               "netns", self.ns)
            self.made.append("link")
            ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
            ip("link", "set", self.host_if, "up")
            ip("-n", self.ns, "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if)
            ip("-n", self.ns, "link", "set", self.ns_if, "up")
            ip("-n", self.ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _free_pair():
        used = ip("-4", "-o", "addr", "show").stdout
        for _ in range(100):
            n = random.randrange(16384) * 4  # a /30's network address in 10.213.0.0/16
            pair = tuple(f"10.213.{(n + i) // 256}.{(n + i) % 256}" for i in (1, 2))
            if not any(f" {addr}/" in used for addr in pair):
                return pair
        raise AssertionError(f"no free /30 in 10.213.0.0/16:\n{used}")

    def prefix(self):
        """What runs a command in the namespace (run_bandage's exec_prefix)."""
        return ["ip", "netns", "exec", self.ns]

    def cut(self):
        """From now on nothing passes either way, and nobody says so."""
        ip("link", "set", self.host_if, "down")

    def sockets(self):
        """``ss -tno`` of the namespace: its established TCP connections."""
        r = subprocess.run([*self.prefix(), "ss", "-Htno", "state", "established"],
                           capture_output=True, text=True, timeout=scaled(10))
        assert r.returncode == 0, r.stderr
        return r.stdout

    def close(self):
        if "link" in self.made:
            ip("link", "del", self.host_if, check=False)
        if "ns" in self.made:
            ip("netns", "del", self.ns, check=False)
        self.made = []


@pytest.fixture
def split_net(pg):
    """(SplitNet, forwarder): the forwarder listens on the root end of the
    veth and passes every byte to the harness's PostgreSQL."""
    net = SplitNet()
    proxy = None
    try:
        proxy = TlsFailProxy(pg.host, pg.port, failures=0, listen_host=net.host_addr)
        yield net, proxy
    finally:
        if proxy is not None:
            proxy.close()  # its upstream sessions end: the server rolls back
        net.close()


def through(net, proxy, db):
    """bandage's environment: db reached through the forwarder, the low bound."""
    return {"DATABASE_URL": db.dsn(host=net.host_addr, port=proxy.port),
            "BANDAGE_DEAD_CONNECTION_TIMEOUT": DEAD_S}


def seeded(db):
    db.execute(SEED_SQL, user="postgres")
    return dump(db)


def keepalive_timer_s(ss_line):
    """The time left on a socket's keepalive timer in ``ss -o`` output
    (``timer:(keepalive,1.5sec,0)``, ``119min``, ``2min5sec``, ``880ms``), in
    seconds; None without one."""
    m = re.search(r"timer:\(keepalive,([^,]+),", ss_line)
    if not m:
        return None
    parts = re.fullmatch(r"(?:(\d+)min)?(?:([\d.]+)sec)?(?:(\d+)ms)?", m.group(1))
    assert parts, f"unknown timer format: {m.group(1)}"
    minutes, seconds, ms = parts.groups()
    return int(minutes or 0) * 60 + float(seconds or 0) + int(ms or 0) / 1000


def release(fifo):
    """Lets a --before-reset hook that reads ``fifo`` go, once it has opened it."""
    def writer():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: the hook has not opened it yet
            return None
    fd = wait_until(writer, scaled(10), "the --before-reset hook to open its FIFO")
    os.write(fd, b"go\n")
    os.close(fd)


def assert_lost(run, what):
    """Exit 69 with one error line naming the step, the lost connection and
    the setting that bounded it."""
    code = run.poll()
    assert code == 69, f"bandage exited {code}, expected 69; stderr:\n{run.stderr}"
    errors = [line for line in run.stderr.splitlines() if line.startswith("bandage: error:")]
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith(f"bandage: error: {what} failed: the connection to the database "
                                "was lost, the server stopped answering "
                                "(--dead-connection-timeout): "), run.stderr


def test_server_silent_while_bandage_idles_exits_69(run_bandage, db, split_net, tmp_path, pg):
    """Connected and idle (in the --before-reset hook) when the server goes
    silent; the hook ends, BEGIN is sent and never acknowledged:
    tcp_user_timeout ends the connection, exit 69 within the bound; nothing
    changed. The keepalive timer is bandage's, not the kernel's 2 hours."""
    net, proxy = split_net
    before = seeded(db)
    fifo = str(tmp_path / "go")
    os.mkfifo(fifo)
    run = run_bandage(reset_args(db, "--before-reset", f"read line < {fifo}", url=False),
                      env=through(net, proxy, db), exec_prefix=net.prefix(), timeout=scaled(30))
    run.wait_for_stderr(r"running --before-reset", timeout=scaled(30))
    sockets = net.sockets()
    net.cut()
    released = time.monotonic()
    release(fifo)
    run.wait(timeout=scaled(DEAD_S + SLACK_S))
    elapsed = run.exited_at - released
    assert_lost(run, "BEGIN")
    proxy.close()
    wait_no_bandage_session(pg, db, timeout=scaled(10))
    assert_same_dump(before, dump(db), f"the database (bandage stderr:\n{run.stderr})")
    # While idle, the first probe is due within the bound (the kernel's own: 2 h).
    timers = [keepalive_timer_s(line) for line in sockets.splitlines()
              if f"{net.host_addr}:{proxy.port}" in line]
    assert len(timers) == 1 and timers[0] is not None and timers[0] <= DEAD_S, sockets
    print(f"exit 69 {elapsed:.2f} s after the hook let go (bound {DEAD_S} s)")


def test_server_silent_during_a_statement_exits_69(run_bandage, db, split_net, tmp_path, pg):
    """The server goes silent while bandage waits for a statement's result
    (nothing of bandage's is unacknowledged: only keepalive probes can tell):
    exit 69 within the bound, and the reset's transaction is rolled back."""
    net, proxy = split_net
    before = seeded(db)
    schema = write_sql(tmp_path, "SELECT pg_sleep(600);\n" + EXAMPLE_SQL)
    run = run_bandage(reset_args(db, schema_file=schema, url=False),
                      env=through(net, proxy, db), exec_prefix=net.prefix(), timeout=scaled(30))
    wait_bandage_query(pg, db, "SELECT pg_sleep(600)%", timeout=scaled(30))
    net.cut()
    cut = time.monotonic()
    run.wait(timeout=scaled(DEAD_S + SLACK_S))
    elapsed = run.exited_at - cut
    assert_lost(run, "applying the schema file")
    proxy.close()  # the server sees its client go (client_connection_check_interval)
    wait_no_bandage_session(pg, db, timeout=scaled(10))
    assert_same_dump(before, dump(db), f"the database (bandage stderr:\n{run.stderr})")
    print(f"exit 69 {elapsed:.2f} s after the cut (bound {DEAD_S} s)")


def test_long_statement_outlives_the_bound(run_bandage, db, tmp_path):
    """A statement that runs longer than the bound on a server that answers
    is not cut: the server's kernel answers the keepalive probes, and
    tcp_user_timeout only counts data left unacknowledged."""
    schema = write_sql(tmp_path, f"SELECT pg_sleep({2.5 * DEAD_S});\n" + EXAMPLE_SQL)
    run = run_bandage(reset_args(db, schema_file=schema, url=False),
                      env={"DATABASE_URL": db.dsn(), "BANDAGE_DEAD_CONNECTION_TIMEOUT": DEAD_S},
                      timeout=scaled(30))
    run.wait_exit_code(0)
    assert "reset committed" in run.stderr, run.stderr


def liveness_logged(run):
    """(keepalives, idle, interval, count, tcp_user_timeout) as the debug log
    shows them after the login: the values in effect."""
    m = re.search(r"connection liveness: keepalives=(\S+) keepalives_idle=(\S+) "
                  r"keepalives_interval=(\S+) keepalives_count=(\S+) tcp_user_timeout=(\S+)",
                  run.stderr)
    assert m, run.stderr
    return m.groups()


def test_url_keepalive_parameters_win(run_bandage, db):
    """libpq's keepalive keywords in DATABASE_URL (here a Prisma-style URL)
    are the user's: bandage's derived values only fill in the others."""
    url = db.dsn(schema="public", connection_limit=5, keepalives_idle=42,
                 tcp_user_timeout=7000)
    run = run_bandage(["--log-level", "debug"],
                      env={"DATABASE_URL": url, "BANDAGE_DEAD_CONNECTION_TIMEOUT": "30"})
    run.wait_exit_code(0)
    assert liveness_logged(run) == ("1", "42", "5", "3", "7000"), run.stderr


def test_zero_leaves_the_kernel_defaults(run_bandage, db):
    """--dead-connection-timeout 0 sets none of them."""
    run = run_bandage(["--log-level", "debug", "--dead-connection-timeout", "0"],
                      env={"DATABASE_URL": db.dsn()})
    run.wait_exit_code(0)
    assert liveness_logged(run) == ("(default)",) * 5, run.stderr


#: bandage's advisory lock key (entrypoint/db/reset.h, RESET_LOCK_KEY).
RESET_LOCK_KEY = 7089068665867822369


def test_server_silent_before_the_lock_is_not_reconnected(run_bandage, db, split_net, pg):
    """Waiting for the reset lock (a real session holds it) when the server
    goes silent: the loss is the network's, not another start ending the
    session, so no reconnect (five more waits over a dead link, minutes):
    exit 69 within the bound."""
    net, proxy = split_net
    seeded(db)
    holder = db.connect(user="postgres")
    try:
        holder.execute(f"SELECT pg_advisory_lock({RESET_LOCK_KEY})")
        run = run_bandage(reset_args(db, url=False), env=through(net, proxy, db),
                          exec_prefix=net.prefix(), timeout=scaled(60))
        wait_until(lambda: pg.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'bandage'"
            " AND datname = %s AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
            (db.name,)), scaled(30), lambda: f"bandage to wait for the lock: {run.stderr}")
        net.cut()
        cut = time.monotonic()
        run.wait(timeout=scaled(DEAD_S + SLACK_S))
        assert run.exited_at - cut < DEAD_S + SLACK_S, run.stderr
        assert_lost(run, "waiting for the reset lock")
        assert "connecting again" not in run.stderr
    finally:
        holder.close()
