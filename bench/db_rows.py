#!/usr/bin/python3
"""The database rows of bench/run: readiness lag, reset time against psql and
the old deploy script, reset time by schema size, and the app's start delay
with a hanging webhook. Prints a markdown table on stdout, progress on stderr.

Starts its own PostgreSQL (the integration harness's PgCluster: initdb in a
temp dir, as postgres when root, random loopback port). Every row measures
bandage and its peers in this one run, on this one server.

usage: bench/db_rows.py BANDAGE [--quick]
  --quick  fewer repetitions and sizes 100/1000 only (for a smoke run)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from helpers.pg import CertAuthority, PgCluster, find_pg_bin  # noqa: E402

import psycopg  # noqa: E402

SCHEMA = os.path.join(REPO, "examples", "schema.sql")
GEN = os.path.join(REPO, "scripts", "gen_schema.py")


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def psql():
    return shutil.which("psql") or os.path.join(find_pg_bin(), "psql")


def run(argv, env=None, timeout=900, check=True):
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def timed(argv, env=None, timeout=900):
    start = time.monotonic()
    r = run(argv, env=env, timeout=timeout, check=False)
    return time.monotonic() - start, r


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "BANDAGE_", "RAILWAY_")) and k != "DATABASE_URL"}
    return env


def fmt_ms(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class Bench:
    def __init__(self, bandage, quick):
        self.bandage = bandage
        self.quick = quick
        self.tmp = tempfile.mkdtemp(prefix="bandage-bench-")
        os.chmod(self.tmp, 0o755)
        self.ca = CertAuthority(os.path.join(self.tmp, "ca"))
        self.rows = []

    # --- helpers --------------------------------------------------------------

    def fresh_db(self, cluster, name):
        cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cluster.execute(f'CREATE DATABASE "{name}"')
        return cluster.dsn(name)

    def load_tables(self, dsn, n, prefix="Model"):
        """n Prisma-style tables, 500 statements a transaction (fast)."""
        sql = run([sys.executable, GEN, str(n), "--prefix", prefix]).stdout
        stmts = [s for s in sql.split(";\n") if s.strip()]
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(0, len(stmts), 500):
                with conn.transaction():
                    for s in stmts[i:i + 500]:
                        conn.execute(s)

    def schema_file(self, n, prefix="New"):
        path = os.path.join(self.tmp, f"schema-{n}.sql")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(run([sys.executable, GEN, str(n), "--prefix", prefix]).stdout)
        return path

    def bandage_reset(self, dsn, dbname, schema):
        env = base_env()
        env["DATABASE_URL"] = dsn
        return timed([self.bandage, "--reset", "always", "--confirm-database", dbname,
                      "--schema-file", schema, "--log-level", "warn"], env=env)

    def old_script(self, dsn, schema):
        """The script bandage replaces, with psql -f standing in for prisma db push."""
        t1, r1 = timed([psql(), dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                        "DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
                        "GRANT ALL ON SCHEMA public TO public"])
        if r1.returncode != 0:
            return None, r1.stderr.strip().splitlines()[-1]
        t2, r2 = timed([psql(), dsn, "-q", "-v", "ON_ERROR_STOP=1", "-f", schema])
        if r2.returncode != 0:
            return None, r2.stderr.strip().splitlines()[-1]
        return t1 + t2, None

    # --- rows -----------------------------------------------------------------

    def readiness(self):
        """Database accepting logins → app started, median of N starts."""
        n = 4 if self.quick else 10
        waiters = {
            "bandage": lambda c, out: [self.bandage, "--log-level", "warn", "--",
                                       "sh", "-c", f"date +%s.%N > {out}"],
            "pg_isready loop (sleep 1)": lambda c, out: [
                "sh", "-c", f"until pg_isready -q -h 127.0.0.1 -p {c.port}; do sleep 1; done; "
                            f"date +%s.%N > {out}"],
            "pg_isready loop (sleep 0.1)": lambda c, out: [
                "sh", "-c", f"until pg_isready -q -h 127.0.0.1 -p {c.port}; do sleep 0.1; done; "
                            f"date +%s.%N > {out}"],
        }
        if shutil.which("wait-for-it"):
            waiters["wait-for-it (TCP)"] = lambda c, out: [
                "wait-for-it", "-q", "-t", "60", f"127.0.0.1:{c.port}", "--",
                "sh", "-c", f"date +%s.%N > {out}"]
        lags = {name: [] for name in waiters}
        cluster = PgCluster(self.ca, base_dir=os.path.join(self.tmp, "ready"))
        try:
            for i in range(n):
                for name, make in waiters.items():
                    out = os.path.join(self.tmp, "app-started")
                    if os.path.exists(out):
                        os.unlink(out)
                    env = base_env()
                    env["DATABASE_URL"] = cluster.dsn()
                    env["PATH"] = find_pg_bin() + ":" + env.get("PATH", "")
                    waiter = subprocess.Popen(make(cluster, out), env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.3 + 0.05 * i)  # the waiter is polling a closed port by now
                    accepted = []

                    def probe():
                        while not accepted:
                            try:
                                psycopg.connect(cluster.dsn(), connect_timeout=2).close()
                                accepted.append(time.time())
                            except psycopg.OperationalError:
                                time.sleep(0.002)
                    t = threading.Thread(target=probe)
                    t.start()
                    cluster.start(wait=False)
                    t.join(60)
                    waiter.wait(60)
                    with open(out) as f:
                        lags[name].append(float(f.read()) - accepted[0])
                    cluster.stop(mode="immediate")
        finally:
            if cluster.running:
                cluster.stop(mode="immediate")
        med = {k: statistics.median(v) for k, v in lags.items()}
        peers = "; ".join(f"{k} {fmt_ms(v)}" for k, v in med.items() if k != "bandage")
        log("readiness lags:", {k: [round(x * 1000) for x in v] for k, v in lags.items()})
        self.rows.append(("readiness lag (db accepting logins → app started), median of "
                          f"{n}", fmt_ms(med["bandage"]), peers,
                          "negative = started before logins worked" if
                          any(v < 0 for v in med.values()) else "goal: bandage ≤ 100 ms"))

    def reset_example(self, cluster):
        """examples/schema.sql: bandage's reset against psql -1 -f and the old script."""
        n = 5 if self.quick else 20
        dsn = self.fresh_db(cluster, "bench_example")
        b, p, o = [], [], []
        for _ in range(n):
            t, r = self.bandage_reset(dsn, "bench_example", SCHEMA)
            assert r.returncode == 0, r.stderr
            b.append(t)
            run([psql(), dsn, "-q", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"])
            t, r = timed([psql(), dsn, "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f", SCHEMA])
            assert r.returncode == 0, r.stderr
            p.append(t)
            t, err = self.old_script(dsn, SCHEMA)
            assert err is None, err
            o.append(t)
        mb, mp, mo = (statistics.median(x) for x in (b, p, o))
        self.rows.append((f"reset of examples/schema.sql (17 statements), median of {n}",
                          fmt_ms(mb), f"psql -1 -f {fmt_ms(mp)}; old 3-step script {fmt_ms(mo)}",
                          f"{mb / mp:.2f}× psql -1 -f (goal ≤ 1.1×); {mb / mo:.2f}× old script"))

    def reset_by_size(self, cluster):
        sizes = [100, 1000] if self.quick else [100, 1000, 10000]
        for n in sizes:
            db = f"bench_{n}"
            dsn = self.fresh_db(cluster, db)
            log(f"loading {n} tables")
            self.load_tables(dsn, n)
            log(f"bandage reset of {n} tables")
            t, r = self.bandage_reset(dsn, db, self.schema_file(n))
            ok = r.returncode == 0
            count = psycopg.connect(dsn, autocommit=True).execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
            log(f"old script on {n} tables")
            dsn2 = self.fresh_db(cluster, db + "_old")
            self.load_tables(dsn2, n)
            t_old, err = self.old_script(dsn2, self.schema_file(n))
            old = fmt_ms(t_old) if err is None else f"fails: {err[:60]}"
            self.rows.append((f"reset, {n:,} tables dropped + {n:,} created",
                              fmt_ms(t) if ok and count == n else f"FAILED ({r.returncode})",
                              f"old script {old}",
                              f"{t / n * 1000:.1f} ms per table"))
            cluster.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            cluster.execute(f'DROP DATABASE "{db}_old" WITH (FORCE)')

    def webhook_delay(self, cluster):
        """reset committed → app started, with no webhook and with one that hangs."""
        import http.server
        import json

        class Hang(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                time.sleep(30)

            def log_message(self, *a):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
        dsn = self.fresh_db(cluster, "bench_hook")
        n = 5 if self.quick else 15
        gaps = {"no webhook": [], "hanging webhook": []}
        for _ in range(n):
            for name in gaps:
                env = base_env()
                env["DATABASE_URL"] = dsn
                args = [self.bandage, "--reset", "always", "--confirm-database", "bench_hook",
                        "--schema-file", SCHEMA, "--log-format", "json"]
                if name == "hanging webhook":
                    args += ["--webhook-url", url, "--webhook-timeout", "1"]
                r = run(args + ["--", "date", "+%s.%N"], env=env)
                committed = [json.loads(line) for line in r.stderr.splitlines()
                             if '"reset committed' in line][0]["time"]
                t_commit = time.mktime(time.strptime(committed[:19], "%Y-%m-%dT%H:%M:%S")) \
                    - time.timezone + float("0" + committed[19:-1])
                gaps[name].append(float(r.stdout) - t_commit)
        srv.shutdown()
        m = {k: statistics.median(v) for k, v in gaps.items()}
        self.rows.append(("reset committed → app started, median of " + str(n),
                          f"{fmt_ms(m['hanging webhook'])} with a hanging webhook",
                          f"{fmt_ms(m['no webhook'])} with no webhook",
                          f"difference {1000 * (m['hanging webhook'] - m['no webhook']):+.0f} ms"))

    def all(self):
        self.readiness()
        cluster = PgCluster(self.ca, base_dir=os.path.join(self.tmp, "main"))
        cluster.start()
        try:
            self.reset_example(cluster)
            self.webhook_delay(cluster)
            self.reset_by_size(cluster)
        finally:
            cluster.stop(mode="immediate")
        print("| database rows | bandage | peers (same run) | ratio / note |")
        print("|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    bench = Bench(os.path.abspath(sys.argv[1]), "--quick" in sys.argv)
    try:
        bench.all()
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
