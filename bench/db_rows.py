#!/usr/bin/python3
"""The database rows of bench/run. Prints a markdown table on stdout,
progress on stderr. Rows, in order (--rows picks some):

  readiness      server accepts logins → app started (bench/wait_rows.py)
  poll_rates     attempts/s while refused and during 57P03, server CPU (wait_rows.py)
  reset_example  a reset against psql -1 -f and the old deploy script
  webhook        reset committed → app started, with a hanging webhook
  reset_sizes    reset time at 100, 1,000 and 10,000 tables
  migrations     150+ migrations by bandage, psql -1 -f, dbmate; nothing
                 pending against a plain start (bench/migration_rows.py)
  migration_stall  the running app's slowest query while a migration waits
                 behind an old transaction: bandage, psql -1 -f, dbmate
                 (bench/stall_rows.py)
  undo           undo a reset of a million-row table: --restore-previous
                 against pg_dump -Fc + pg_restore (bench/restore_rows.py)
  prisma8        120 Prisma 8 packages (--quick: 100) applied to an empty
                 database by bandage and by prisma db migrate, then a start
                 with nothing pending (bench/prisma8_rows.py)
  checks_memory  --plan of a pending 2 MB seed INSERT, statement checks on
                 against off: peak RSS and time (bench/checks_rows.py)

Starts its own PostgreSQL (the integration harness's PgCluster: initdb in a
temp dir, as postgres when root, random loopback port). Every row measures
bandage and its peers in this one run, on this one server.

usage: bench/db_rows.py BANDAGE [--quick] [--rows ROW,ROW...]
  --quick  fewer repetitions, smaller sizes (a smoke run)
  --rows   only these rows (default: all; BENCH_DB_ROWS sets it too)
"""
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers.pg import CertAuthority, PgCluster, find_pg_bin  # noqa: E402

import psycopg  # noqa: E402

import checks_rows  # noqa: E402
import migration_rows  # noqa: E402
import prisma8_rows  # noqa: E402
import restore_rows  # noqa: E402
import stall_rows  # noqa: E402
import tools  # noqa: E402
import wait_rows  # noqa: E402

ROWS = ["readiness", "poll_rates", "reset_example", "webhook", "reset_sizes", "migrations",
        "migration_stall", "undo", "prisma8", "checks_memory"]
NEEDS_DBMATE = {"readiness", "poll_rates", "migrations", "migration_stall"}

SCHEMA = os.path.join(REPO, "examples", "prisma", "schema.sql")
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
    log = staticmethod(log)
    timed = staticmethod(timed)
    base_env = staticmethod(base_env)
    fmt_ms = staticmethod(fmt_ms)

    def __init__(self, bandage, quick, rows):
        self.bandage = bandage
        self.quick = quick
        self.wanted = rows
        self.tmp, where = tools.data_tmpdir("bandage-bench-")
        log(where)
        self.ca = CertAuthority(os.path.join(self.tmp, "ca"))
        self.rows = []
        self.dbmate = None
        if NEEDS_DBMATE & set(rows):
            self.dbmate, why = tools.dbmate()
            if why:
                log(f"dbmate columns left out: {why}")

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

    def reset_example(self, cluster):
        """examples/prisma/schema.sql: bandage's reset against psql -1 -f and the old script."""
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
        self.rows.append((f"reset of examples/prisma/schema.sql (17 statements), median of {n}",
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
        needs_server = [r for r in self.wanted if r not in ("readiness", "poll_rates")]
        if "readiness" in self.wanted:
            wait_rows.readiness(self)
        if "poll_rates" in self.wanted:
            wait_rows.poll_rates(self)
        if needs_server:
            cluster = PgCluster(self.ca, base_dir=os.path.join(self.tmp, "main"))
            cluster.start()
            first = len(self.rows)
            try:
                for row in needs_server:
                    {"reset_example": self.reset_example, "webhook": self.webhook_delay,
                     "reset_sizes": self.reset_by_size,
                     "migrations": lambda c: migration_rows.migrations(self, c),
                     "migration_stall": lambda c: stall_rows.migration_stall(self, c),
                     "undo": lambda c: restore_rows.undo(self, c),
                     "prisma8": lambda c: prisma8_rows.prisma8_migrations(self, c),
                     "checks_memory": lambda c: checks_rows.checks_memory(self, c)}[row](cluster)
            finally:
                cluster.stop(mode="immediate")
            # Each row says which server it ran on (PG_VERSION picks it).
            self.rows[first:] = [(f"{row[0]} (PostgreSQL {cluster.version})", *row[1:])
                                 for row in self.rows[first:]]
        print("| database rows | bandage | peers (same run) | ratio / note |")
        print("|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        if self.dbmate:
            print(f"\ndbmate: `{tools.version([self.dbmate, '--version'])}` "
                  f"({os.path.relpath(self.dbmate, REPO)}, from npm)")


def parse_rows(argv):
    text = os.environ.get("BENCH_DB_ROWS", "")
    if "--rows" in argv:
        i = argv.index("--rows")
        text = argv[i + 1] if i + 1 < len(argv) else ""
    rows = [r.strip() for r in text.replace(" ", ",").split(",") if r.strip()] or ROWS
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"db_rows.py: no row {', '.join(unknown)} (rows: {', '.join(ROWS)})")
    return [r for r in ROWS if r in rows]


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 64
    bench = Bench(os.path.abspath(sys.argv[1]), "--quick" in sys.argv, parse_rows(sys.argv))
    try:
        bench.all()
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
