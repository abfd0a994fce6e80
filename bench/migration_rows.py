"""The migration rows of bench/db_rows.py (issue 10, "Speed").

- N generated Prisma-style migrations (bench/gen_migrations.py) applied to
  an empty database by bandage (`--migrations DIR`), by `psql -1 -f` per
  file in a shell loop, by dbmate (`up`, one transaction per file, the same
  SQL under `-- migrate:up`), and, for reference, by one `psql -f` of every
  file wrapped in BEGIN/COMMIT (the same transactions over one connection,
  no bookkeeping), each on a fresh database, interleaved.
- A start with nothing pending against a plain start (no migrations, no
  reset): wall time and the transactions the server counts for the
  database (pg_stat_database.xact_commit + xact_rollback, read once
  bandage's session has ended, from a session on another database).

`prisma migrate deploy` is not a column: its schema engine is downloaded at
install time from binaries.prisma.sh, which this network does not reach.
"""
import os
import statistics
import time

import gen_migrations


ONE_SESSION = "psql -f of all files in one session"


def _apply_commands(bench, url, prisma_dir, dbmate_dir):
    psql_loop = (f"for f in {prisma_dir}/*/migration.sql; do "
                 f"psql -X -q -1 -v ON_ERROR_STOP=1 -d '{url}' -f \"$f\" || exit 1; done")
    cmds = {
        "bandage": [bench.bandage, "--database-url", url, "--migrations", prisma_dir,
                    "--log-level", "warn"],
        "psql -1 -f per file": ["sh", "-c", psql_loop],
        # the same transactions (BEGIN … COMMIT per file) in one connection, no bookkeeping
        ONE_SESSION: ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                os.path.join(os.path.dirname(prisma_dir), "all-in-one.sql")],
    }
    if bench.dbmate:
        cmds["dbmate up"] = [bench.dbmate, "--url", url, "--migrations-dir", dbmate_dir,
                             "--no-dump-schema", "up"]
    return cmds


def _tables(bench, dsn):
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(  # the tools' own bookkeeping tables left out
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('_prisma_migrations', 'schema_migrations')").fetchone()[0]


def apply_all(bench, cluster):
    n = int(os.environ.get("BENCH_MIGRATIONS", 40 if bench.quick else 160))
    rounds = 2 if bench.quick else 5
    history = gen_migrations.history(n)
    prisma_dir = os.path.join(bench.tmp, "migrations")
    dbmate_dir = os.path.join(bench.tmp, "dbmate-migrations")
    gen_migrations.write_prisma(prisma_dir, history)
    gen_migrations.write_dbmate(dbmate_dir, history)
    with open(os.path.join(bench.tmp, "all-in-one.sql"), "w") as f:
        f.writelines(f"BEGIN;\n{sql}\nCOMMIT;\n" for _, sql in history)
    stmts = sum(sql.count(";\n") for _, sql in history)
    tables = None
    times = {}
    env = bench.base_env()
    for r in range(-1, rounds):  # round -1 warms the server's and the tools' caches, untimed
        names = list(_apply_commands(bench, "x", prisma_dir, dbmate_dir))
        names = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in names:
            dsn = bench.fresh_db(cluster, "bench_migrate")
            argv = _apply_commands(bench, dsn, prisma_dir, dbmate_dir)[name]
            bench.log(f"migrations round {r + 1}/{rounds}: {name}" if r >= 0 else
                      f"migrations warm-up: {name}")
            t, res = bench.timed(argv, env=env)
            if res.returncode != 0:
                raise RuntimeError(f"{name} failed ({res.returncode}): {res.stderr[-1500:]}")
            got = _tables(bench, dsn)
            tables = got if tables is None else tables
            if got != tables:
                raise RuntimeError(f"{name} left {got} tables, another tool {tables}")
            if r >= 0:
                times.setdefault(name, []).append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    bench.log("migrations (s):", {k: [round(x, 3) for x in v] for k, v in times.items()})
    peers = {k: v for k, v in med.items() if k not in ("bandage", ONE_SESSION)}
    best = min(peers, key=peers.get)
    bench.rows.append((f"{n} Prisma-style migrations ({stmts} statements, {tables} tables) "
                       f"applied to an empty database, median of {rounds}",
                       bench.fmt_ms(med["bandage"]),
                       "; ".join(f"{k} {bench.fmt_ms(v)}" for k, v in med.items()
                                 if k != "bandage"),
                       f"{med['bandage'] / peers[best]:.2f}× {best} (goal ≤ 1×); "
                       f"{med['bandage'] / med[ONE_SESSION]:.2f}× one psql session (BEGIN … "
                       f"COMMIT per file, no bookkeeping); "
                       f"{med['bandage'] / n * 1000:.1f} ms per migration"))
    return prisma_dir


def _xacts(cluster, db):
    """Transactions the server counted for db, once no session is on it."""
    import psycopg
    deadline = time.monotonic() + 30
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (db,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"a session on {db} did not end")
            time.sleep(0.01)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                            "WHERE datname = %s", (db,)).fetchone()[0]


def nothing_pending(bench, cluster, prisma_dir):
    """bandage --migrations DIR with everything applied, against a plain start."""
    n = 5 if bench.quick else 20
    db = "bench_pending"
    dsn = bench.fresh_db(cluster, db)
    t, r = bench.timed([bench.bandage, "--database-url", dsn, "--migrations", prisma_dir,
                        "--log-level", "warn"], env=bench.base_env())
    if r.returncode != 0:
        raise RuntimeError(f"bandage --migrations: exit {r.returncode}: {r.stderr[-1500:]}")
    cmds = {"plain start": [bench.bandage, "--database-url", dsn, "--log-level", "warn"],
            "nothing pending": [bench.bandage, "--database-url", dsn, "--migrations", prisma_dir,
                                "--log-level", "warn"]}
    times = {k: [] for k in cmds}
    xacts = {k: [] for k in cmds}
    for _ in range(n):
        for name, argv in cmds.items():
            before = _xacts(cluster, db)
            t, r = bench.timed(argv, env=bench.base_env())
            if r.returncode != 0:
                raise RuntimeError(f"{name}: exit {r.returncode}: {r.stderr[-1500:]}")
            times[name].append(t)
            xacts[name].append(_xacts(cluster, db) - before)
    med = {k: statistics.median(v) for k, v in times.items()}
    tx = {k: statistics.median(v) for k, v in xacts.items()}
    bench.log("nothing pending (s):", times, "transactions:", xacts)
    bench.rows.append((f"start with nothing pending (`--migrations`, all applied), median of {n}",
                       f"{bench.fmt_ms(med['nothing pending'])}, {tx['nothing pending']:.0f} "
                       "transactions",
                       f"plain start {bench.fmt_ms(med['plain start'])}, "
                       f"{tx['plain start']:.0f} transactions",
                       f"+{(med['nothing pending'] - med['plain start']) * 1000:.1f} ms, "
                       f"+{tx['nothing pending'] - tx['plain start']:.0f} transactions "
                       "(server-counted, pg_stat_database)"))


def migrations(bench, cluster):
    prisma_dir = apply_all(bench, cluster)
    nothing_pending(bench, cluster, prisma_dir)
