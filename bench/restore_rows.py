"""The undo row of bench/db_rows.py (issue 21): undoing a reset of a
database whose "Event" table holds ROWS rows (a million; 100,000 with
--quick), two ways, in one run on one server:

- bandage: `--restore-previous` after a reset with `--keep-previous 1` (the
  replaced schema was renamed aside; the restore renames it back);
- the dump way the old deploy script documented: `pg_dump -Fc` of the
  database before the reset, `pg_restore --clean --if-exists` after it.

Each is timed from the start of the undo command to its exit (for the dump
way, the dump taken before the reset is counted too: without it there is
nothing to restore). Also: the reset itself with --keep-previous 1 and 0
(keeping must not be slower: it drops less).
"""
import os
import statistics
import subprocess

import psycopg

ROWS = 1_000_000
SCHEMA = 'CREATE TABLE "Event" ("id" BIGSERIAL PRIMARY KEY, "kind" TEXT NOT NULL, "at" TIMESTAMPTZ NOT NULL DEFAULT now());\n'


def _fill(url, rows):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute('INSERT INTO "Event" ("kind") SELECT \'kind \' || (g %% 100)'
                     ' FROM generate_series(1, %s) g', (rows,))
        conn.execute('ANALYZE "Event"')


def _reset(bench, url, db, schema_file, keep, deployment):
    argv = [bench.bandage, "--database-url", url, "--reset", "always", "--confirm-database", db,
            "--schema-file", schema_file, "--keep-previous", str(keep), "--deployment-id",
            deployment, "--log-level", "warn"]
    took, r = bench.timed(argv, env=bench.base_env())
    if r.returncode != 0:
        raise RuntimeError(f"bandage reset exited {r.returncode}: {r.stderr[-1500:]}")
    return took


def _count(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute('SELECT count(*) FROM "Event"').fetchone()[0]


def _bandage_round(bench, cluster, schema_file, rows, n):
    db = f"bench_undo_b{n}"
    url = bench.fresh_db(cluster, db)
    _fill(url, rows)
    reset_keep = _reset(bench, url, db, schema_file, 1, f"reset-{n}")
    assert _count(url) == 0
    argv = [bench.bandage, "--database-url", url, "--restore-previous", "--confirm-database", db,
            "--deployment-id", f"restore-{n}", "--log-level", "warn"]
    took, r = bench.timed(argv, env=bench.base_env())
    if r.returncode != 0:
        raise RuntimeError(f"bandage restore exited {r.returncode}: {r.stderr[-1500:]}")
    assert _count(url) == rows, "the restore did not bring the rows back"
    return took, reset_keep


def _dump_round(bench, cluster, schema_file, rows, n):
    db = f"bench_undo_d{n}"
    url = bench.fresh_db(cluster, db)
    _fill(url, rows)
    dump = os.path.join(bench.tmp, f"undo-{n}.dump")
    dump_took, r = bench.timed(["pg_dump", "-Fc", "-f", dump, "-d", url])
    if r.returncode != 0:
        raise RuntimeError(f"pg_dump exited {r.returncode}: {r.stderr[-1500:]}")
    reset_drop = _reset(bench, url, db, schema_file, 0, f"reset-{n}")
    restore_took, r = bench.timed(["pg_restore", "--clean", "--if-exists", "--no-owner",
                                   "-d", url, dump])
    if r.returncode != 0:
        raise RuntimeError(f"pg_restore exited {r.returncode}: {r.stderr[-1500:]}")
    assert _count(url) == rows, "pg_restore did not bring the rows back"
    os.unlink(dump)
    return dump_took, restore_took, reset_drop


def undo(bench, cluster):
    rows = 100_000 if bench.quick else ROWS
    rounds = 1 if bench.quick else 3
    schema_file = os.path.join(bench.tmp, "undo-schema.sql")
    with open(schema_file, "w") as f:
        f.write(SCHEMA)
    b, d = [], []
    for n in range(rounds):
        bench.log(f"undo round {n + 1}/{rounds}: bandage --restore-previous")
        b.append(_bandage_round(bench, cluster, schema_file, rows, n))
        bench.log(f"undo round {n + 1}/{rounds}: pg_dump -Fc + pg_restore")
        d.append(_dump_round(bench, cluster, schema_file, rows, n))
    bench.log("undo:", b, d)
    restore = statistics.median(x[0] for x in b)
    keep_reset = statistics.median(x[1] for x in b)
    dump = statistics.median(x[0] for x in d)
    pg_restore = statistics.median(x[1] for x in d)
    drop_reset = statistics.median(x[2] for x in d)
    fmt = bench.fmt_ms
    bench.rows.append((
        f"undo a reset of a {rows:,}-row table, median of {rounds}",
        f"--restore-previous {fmt(restore)} (the reset before it, keeping: {fmt(keep_reset)})",
        f"pg_dump -Fc {fmt(dump)} before the reset + pg_restore --clean {fmt(pg_restore)} after "
        f"(the reset, dropping: {fmt(drop_reset)})",
        f"restore {(dump + pg_restore) / restore:.0f}x faster than dump + restore (goal: "
        f"under 1 s: {'met' if restore < 1 else 'not met'}); reset keeping / dropping "
        f"{keep_reset / drop_reset:.2f}x"))
