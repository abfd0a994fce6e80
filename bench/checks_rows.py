"""The checks_memory row of bench/db_rows.py: what the statement checks cost
in memory and time when a pending migration is large. A seed migration of
ROWS rows in one INSERT (about 2 MB for 100,000) is pending after a
CREATE TABLE; bandage's `--plan` reads and checks it with
`--migration-checks warn` (the default) and, as the floor, with `off`, on
one server in one run. Peak RSS is GNU time's (Debian's `time` package).
"""
import os
import statistics

ROWS = 100_000
TIME = "/usr/bin/time"  # Debian's time package


def _write_migrations(root, rows):
    def put(name, sql):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        with open(os.path.join(root, name, "migration.sql"), "w") as f:
            f.write(sql)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "migration_lock.toml"), "w") as f:
        f.write('provider = "postgresql"\n')
    put("20240101000000_init", 'CREATE TABLE "Seed" ("id" INTEGER PRIMARY KEY, "v" TEXT);\n')
    values = ",".join(f"({i},'value {i}')" for i in range(rows))
    put("20240102000000_seed", f'INSERT INTO "Seed" VALUES {values};\n')
    return os.path.getsize(os.path.join(root, "20240102000000_seed", "migration.sql"))


def _plan(bench, url, root, checks):
    """(seconds, peak RSS in kB) of one --plan. GNU time's %M, not os.wait4's
    ru_maxrss: Linux keeps the high-water mark across exec, so a child forked
    from this Python process would start at Python's own RSS."""
    argv = [TIME, "-f", "%M", bench.bandage, "--database-url", url, "--migrations", root,
            "--plan", "--migration-checks", checks, "--log-level", "warn", "--", "true"]
    took, r = bench.timed(argv, env=bench.base_env())
    if r.returncode != 0:
        raise RuntimeError(f"bandage --plan exited {r.returncode}: {r.stderr[-1500:]}")
    return took, int(r.stderr.strip().splitlines()[-1])


def checks_memory(bench, cluster):
    if not os.access(TIME, os.X_OK):
        raise SystemExit(f"checks_memory: {TIME} is missing: apt-get install time")
    rows = ROWS // 10 if bench.quick else ROWS
    rounds = 1 if bench.quick else 3
    root = os.path.join(bench.tmp, "checks-migrations")
    size = _write_migrations(root, rows)
    url = bench.fresh_db(cluster, "bench_checks")
    got = {"warn": [], "off": []}
    for n in range(rounds):
        bench.log(f"checks memory round {n + 1}/{rounds}")
        for checks in got:
            got[checks].append(_plan(bench, url, root, checks))
    med = {k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v))
           for k, v in got.items()}
    bench.rows.append((
        f"--plan of a pending {size / 1e6:.1f} MB seed INSERT ({rows:,} rows), statement checks on"
        f" (`--migration-checks warn`), median of {rounds}",
        f"peak RSS {med['warn'][1]:,} kB, {bench.fmt_ms(med['warn'][0])}",
        f"floor: checks off, peak RSS {med['off'][1]:,} kB, {bench.fmt_ms(med['off'][0])}",
        f"{med['warn'][1] / med['off'][1]:.2f}× the floor's memory, "
        f"{med['warn'][0] / med['off'][0]:.2f}× its time"))
