#!/usr/bin/python3
"""Large resets against the server's own floor, at default and raised lock
settings, in one run (issue 12). Prints a markdown table on stdout, progress
on stderr.

For each lock setting (max_locks_per_transaction 64, the default, and 2048)
a PostgreSQL of its own is started (the integration harness's PgCluster),
and for each size N (Prisma-style tables from scripts/gen_schema.py):

- floor: what the server needs with no guarantee at all, with psql:
  the old tables dropped (one DROP SCHEMA ... CASCADE where the lock table
  holds it, else multi-object DROP TABLE then DROP TYPE statements of 200
  in autocommit, then DROP SCHEMA), CREATE SCHEMA, then `psql -f` of the
  new file in autocommit (a transaction per statement);
- bandage: `bandage --reset always` of the same old tables with the same
  file, all-or-nothing;
- app start: with an app after `--`, the time from starting bandage to the
  app's first instruction (the old schema goes beside the app), against
  `psql -f` of the file alone into an empty schema.

With --rounds R each size is measured R times, floor and bandage side by
side in each round; the table gives medians, ranges and the median of the
rounds' ratios.

With --progress-baseline BIN (a bandage built from before progress lines,
issue 23), the largest size at the default lock setting is also reset by
both binaries alternately at --log-level info (the progress lines written,
every 2 s): the ratio says what progress costs (goal ≤ 1.01). With
--progress-only that row alone is measured.

The servers' data is on tmpfs when there is room (tools.data_tmpdir,
BENCH_PGDATA_DIR): on the bench machine's journal-less ext4 the same
measurement went from 9.9 s to 26.3 s within one run, by what had been
deleted before it (bench/README.md, "Where the servers keep their data").

usage: bench/reset_rows.py BANDAGE [--quick] [--sizes 1000,3000,10000] [--rounds R]
       [--progress-baseline BIN [--progress-only]]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from helpers.pg import CertAuthority, PgCluster, find_pg_bin  # noqa: E402

import psycopg  # noqa: E402

import tools  # noqa: E402

GEN = os.path.join(REPO, "scripts", "gen_schema.py")
LOCK_SETTINGS = (64, 2048)


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def psql():
    return shutil.which("psql") or os.path.join(find_pg_bin(), "psql")


def timed(argv, env=None, timeout=3600):
    start = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {r.returncode}: {r.stderr[-2000:]}")
    return elapsed


def fmt(seconds):
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def spread(times):
    """The median, and the range when there are several rounds."""
    if len(times) == 1:
        return fmt(times[0])
    return f"{fmt(statistics.median(times))} ({fmt(min(times))}–{fmt(max(times))})"


def ratio(times, floors):
    """The median of each round's ratio: a round's floor and bandage run
    minutes apart, and this machine's speed drifts by 2x over a run."""
    return f"{statistics.median(t / f for t, f in zip(times, floors)):.2f}"


def drop_in_chunks(conn, kind, names, chunk=200):
    """DROP <kind> of many objects a statement, in autocommit."""
    for i in range(0, len(names), chunk):
        conn.execute(f"DROP {kind} IF EXISTS " + ", ".join(names[i:i + chunk]) + " CASCADE")


def base_env(dsn=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PG", "BANDAGE_", "RAILWAY_")) and k not in ("DATABASE_URL",
                                                                            "DIRECT_URL")}
    if dsn:
        env["DATABASE_URL"] = dsn
    return env


class ResetBench:
    def __init__(self, bandage, sizes, rounds=1, baseline=None, progress_only=False):
        self.bandage = bandage
        self.sizes = sizes
        self.rounds = rounds
        self.baseline = baseline
        self.progress_only = progress_only
        self.tmp, where = tools.data_tmpdir("bandage-bench-reset-")
        log(where)
        self.ca = CertAuthority(os.path.join(self.tmp, "ca"))
        self.rows = []

    def schema_file(self, n, prefix):
        path = os.path.join(self.tmp, f"{prefix}-{n}.sql")
        if not os.path.exists(path):
            out = subprocess.run([sys.executable, GEN, str(n), "--prefix", prefix], check=True,
                                 capture_output=True, text=True).stdout
            with open(path, "w") as f:
                f.write(out)
        return path

    def fresh_db(self, cluster, name):
        cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cluster.execute(f'CREATE DATABASE "{name}"')
        return cluster.dsn(name)

    def old_db(self, cluster, name, n):
        """A fresh database holding the old schema: n tables, 500 statements a
        transaction (fast), then a checkpoint, so that no run pays for the
        load's dirty pages. Returns its DSN."""
        dsn = self.fresh_db(cluster, name)
        with open(self.schema_file(n, "Model")) as f:
            stmts = [s for s in f.read().split(";\n") if s.strip()]
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(0, len(stmts), 500):
                with conn.transaction():
                    for s in stmts[i:i + 500]:
                        conn.execute(s)
        cluster.execute("CHECKPOINT")
        return dsn

    def floor(self, dsn, locks, n, new):
        """Drop and create as the server does it cheapest, no guarantee."""
        start = time.monotonic()
        with psycopg.connect(dsn, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT format('%I', relname) FROM pg_class WHERE relkind = 'r'"
                " AND relnamespace = 'public'::regnamespace")]
            if n * 12 < locks * 100 // 2:  # a table with its indexes, types: about 12 locks
                conn.execute("DROP SCHEMA public CASCADE")
            else:  # the tables, then their enum types, 200 to a statement
                drop_in_chunks(conn, "TABLE", tables)
                drop_in_chunks(conn, "TYPE", [r[0] for r in conn.execute(
                    "SELECT format('%I', typname) FROM pg_type WHERE typtype = 'e'"
                    " AND typnamespace = 'public'::regnamespace")])
                conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        dropped = time.monotonic() - start
        create = timed([psql(), dsn, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", new])
        return dropped + create, create

    def reset(self, dsn, db, new, app_file=None, binary=None, level="warn"):
        argv = [binary or self.bandage, "--reset", "always", "--confirm-database", db,
                "--schema-file", new, "--log-level", level]
        if app_file:
            argv += ["--", "sh", "-c", f"date +%s.%N > {app_file}; exec sleep 600"]
            start = time.time()
            proc = subprocess.Popen(argv, env=base_env(dsn), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 3600
            while not (os.path.exists(app_file) and os.path.getsize(app_file) > 0):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bandage exited {proc.returncode} before the app")
                time.sleep(0.005)
            with open(app_file) as f:
                started = float(f.read()) - start
            self.wait_old_schema_gone(dsn)
            proc.terminate()
            proc.wait(60)
            return started
        return timed(argv, env=base_env(dsn))

    def wait_old_schema_gone(self, dsn, timeout=3600):
        deadline = time.monotonic() + timeout
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pg_namespace"
                               " WHERE nspname LIKE 'bandage\\_aside\\_%'").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the old schema was not dropped beside the app")
                time.sleep(0.05)

    def progress_row(self, cluster, n):
        """The same reset by this bandage and by the baseline, alternately, both
        logging at info (stderr read by the bench): what the progress lines cost."""
        db, new = f"bench_progress_{n}", self.schema_file(n, "New")
        withp, without = [], []
        for r in range(self.rounds):
            for binary, times in ((self.bandage, withp), (self.baseline, without)):
                dsn = self.old_db(cluster, db, n)
                times.append(self.reset(dsn, db, new, binary=binary, level="info"))
            log(f"progress, {n} tables, round {r + 1}: with {fmt(withp[-1])}, "
                f"without {fmt(without[-1])}")
        self.rows.append((f"reset of {n:,} tables with progress lines every 2 s "
                          f"(PostgreSQL {cluster.version})", spread(withp),
                          f"without progress {spread(without)}",
                          f"{ratio(withp, without)}× (goal ≤ 1.01×)"))
        cluster.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def measure(self, locks):
        if self.progress_only and locks != LOCK_SETTINGS[0]:
            return
        cluster = PgCluster(self.ca, base_dir=os.path.join(self.tmp, f"locks{locks}"))
        with open(os.path.join(cluster.data_dir, "bandage_test.conf"), "a") as f:
            f.write(f"max_locks_per_transaction = {locks}\n")
        cluster.start()
        try:
            if self.baseline and locks == LOCK_SETTINGS[0]:
                self.progress_row(cluster, max(self.sizes))
            for n in [] if self.progress_only else self.sizes:
                db = f"bench_reset_{n}"
                new = self.schema_file(n, "New")
                floors, creates, resets, apps = [], [], [], []
                for r in range(self.rounds):
                    log(f"locks {locks}, {n} tables, round {r + 1}: loading the old schema")
                    dsn = self.old_db(cluster, db, n)
                    floor, create_alone = self.floor(dsn, locks, n, new)
                    floors.append(floor)
                    creates.append(create_alone)
                    log(f"locks {locks}, {n} tables, round {r + 1}: floor {fmt(floor)}")
                    dsn = self.old_db(cluster, db, n)
                    resets.append(self.reset(dsn, db, new))
                    log(f"locks {locks}, {n} tables, round {r + 1}: bandage {fmt(resets[-1])}")
                    if locks == LOCK_SETTINGS[0] and n == max(self.sizes):
                        dsn = self.old_db(cluster, db, n)
                        apps.append(self.reset(dsn, db, new,
                                               os.path.join(self.tmp, f"app-{n}-{r}")))
                self.rows.append((f"reset of {n:,} tables, max_locks_per_transaction {locks} "
                                  f"(PostgreSQL {cluster.version})",
                                  spread(resets), f"floor {spread(floors)}",
                                  f"{ratio(resets, floors)}× the floor (goal ≤ 1.15×)"))
                if apps:
                    self.rows.append((f"bandage started → app started, reset of {n:,} tables "
                                      f"(PostgreSQL {cluster.version})",
                                      spread(apps), f"psql -f of the file alone {spread(creates)}",
                                      f"{ratio(apps, creates)}× (goal ≤ 1.1×)"))
                cluster.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            cluster.destroy()

    def table(self):
        lines = ["| measurement | bandage | floor / peer | ratio |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        return "\n".join(lines)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    ap = argparse.ArgumentParser(usage=__doc__.rsplit("usage: ", 1)[1].strip())
    ap.add_argument("bandage")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--progress-baseline")
    ap.add_argument("--progress-only", action="store_true")
    args = ap.parse_args()
    sizes = args.sizes or ([300] if args.quick else [1000, 3000, 10000])
    baseline = os.path.abspath(args.progress_baseline) if args.progress_baseline else None
    bench = ResetBench(os.path.abspath(args.bandage), sizes, args.rounds, baseline,
                       args.progress_only and baseline is not None)
    try:
        for locks in LOCK_SETTINGS:
            bench.measure(locks)
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    print(bench.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
