"""The migration-stall row of bench/db_rows.py (issue 20 item 2).

The previous deployment still serves while a deploy migrates: one of its
requests holds a transaction that has read "Post" (ACCESS SHARE) for
BLOCK_S seconds, and its other requests keep querying "Post", one every
APP_EVERY_S from a connection of their own. A migration `ALTER TABLE "Post"
ADD COLUMN` (it needs ACCESS EXCLUSIVE) is applied meanwhile by bandage
(`--migrations`), by `psql -1 -f` and by dbmate (`up`), each on a fresh
database holding the same table, each tool having applied the table's own
migration first (bandage and dbmate refuse, or would re-run, a table without
their history).

Measured for each: the app's slowest query and its 99th percentile while the
tool runs (from its start to its exit), and how long after the old
transaction ended the tool exited (its migration applied).
"""
import os
import statistics
import subprocess
import threading
import time

import psycopg

import gen_migrations

BLOCK_S = 5.0
APP_EVERY_S = 0.02
ROWS = 10000

INIT = ("20240101000000_init", 'CREATE TABLE "Post" ("id" SERIAL NOT NULL, "title" TEXT NOT NULL,'
        ' CONSTRAINT "Post_pkey" PRIMARY KEY ("id"));\n')
ALTER = ("20240102000000_post_views", 'ALTER TABLE "Post" ADD COLUMN "views" INTEGER;\n')


def _dirs(bench):
    base = os.path.join(bench.tmp, "stall")
    dirs = {}
    for stage, history in (("init", [INIT]), ("full", [INIT, ALTER])):
        gen_migrations.write_prisma(os.path.join(base, stage, "prisma"), history)
        gen_migrations.write_dbmate(os.path.join(base, stage, "dbmate"), history)
        dirs[stage] = os.path.join(base, stage)
    alter_file = os.path.join(base, "alter.sql")
    with open(alter_file, "w") as f:
        f.write(ALTER[1])
    return dirs, alter_file


def _commands(bench, url, stage_dir, alter_file):
    cmds = {
        "bandage": [bench.bandage, "--database-url", url, "--migrations",
                    os.path.join(stage_dir, "prisma"), "--log-level", "warn"],
        "psql -1 -f": ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                       alter_file],
    }
    if bench.dbmate:
        cmds["dbmate up"] = [bench.dbmate, "--url", url, "--migrations-dir",
                             os.path.join(stage_dir, "dbmate"), "--no-dump-schema", "up"]
    return cmds


def _prepare(bench, cluster, tool, dirs, alter_file):
    """A fresh database where tool has applied INIT; ROWS rows in "Post"."""
    url = bench.fresh_db(cluster, "bench_stall")
    init = _commands(bench, url, dirs["init"], alter_file)[tool]
    if tool == "psql -1 -f":
        init = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", INIT[1]]
    r = subprocess.run(init, env=bench.base_env(), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{tool} (init) exited {r.returncode}: {r.stderr[-1500:]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO \"Post\" (\"title\") SELECT 'post ' || g "
                     "FROM generate_series(1, %s) g", (ROWS,))
    return url


def _app(url, stop, latencies):
    """The old deployment's requests: one query on "Post" every APP_EVERY_S."""
    with psycopg.connect(url, autocommit=True, application_name="old-app") as conn:
        while not stop.is_set():
            t = time.monotonic()
            conn.execute('SELECT count(*) FROM "Post"')
            latencies.append((t, time.monotonic() - t))
            time.sleep(APP_EVERY_S)


def _one(bench, cluster, tool, dirs, alter_file):
    url = _prepare(bench, cluster, tool, dirs, alter_file)
    argv = _commands(bench, url, dirs["full"], alter_file)[tool]
    latencies, stop = [], threading.Event()
    old = psycopg.connect(url, application_name="old-request")
    app = threading.Thread(target=_app, args=(url, stop, latencies))
    try:
        old.execute('SELECT count(*) FROM "Post"')  # ACCESS SHARE until it ends
        app.start()
        time.sleep(0.2)  # the app's steady state before the tool starts
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=bench.base_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(BLOCK_S)  # the old request's length: the thing measured against
        released = time.monotonic()
        old.rollback()
        _, err = proc.communicate(timeout=120)
        ended = time.monotonic()
    finally:
        stop.set()
        app.join(timeout=30)
        old.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited {proc.returncode}: {err[-1500:]}")
    during = sorted(d for t, d in latencies if started <= t <= ended)
    p99 = during[max(0, int(len(during) * 0.99) - 1)]
    return {"max": during[-1], "p99": p99, "n": len(during), "after": ended - released,
            "total": ended - started}


def migration_stall(bench, cluster):
    rounds = 1 if bench.quick else 3
    dirs, alter_file = _dirs(bench)
    results = {}
    for r in range(rounds):
        for tool in _commands(bench, "x", dirs["full"], alter_file):
            bench.log(f"migration stall round {r + 1}/{rounds}: {tool}")
            results.setdefault(tool, []).append(_one(bench, cluster, tool, dirs, alter_file))
    bench.log("migration stall:", results)

    def med(tool, key):
        return statistics.median(x[key] for x in results[tool])

    def cell(tool):
        return (f"app's slowest query {bench.fmt_ms(med(tool, 'max'))}, p99 "
                f"{bench.fmt_ms(med(tool, 'p99'))}, {med(tool, 'n'):.0f} queries served; "
                f"applied {bench.fmt_ms(med(tool, 'after'))} after the old transaction ended")

    peers = [t for t in results if t != "bandage"]
    bench.rows.append((f"migration behind a {BLOCK_S:.0f} s old transaction on a {ROWS:,}-row "
                       f"table, the app querying it every {APP_EVERY_S * 1000:.0f} ms, median "
                       f"of {rounds}", cell("bandage"),
                       "; ".join(f"{t}: {cell(t)}" for t in peers),
                       f"app's slowest query {med('bandage', 'max') * 1000:.0f} ms against "
                       + ", ".join(f"{med(t, 'max') * 1000:.0f} ms ({t})" for t in peers)
                       + " (goal ≤ 250 ms)"))
