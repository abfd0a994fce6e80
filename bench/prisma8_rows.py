"""The prisma8 row of bench/db_rows.py (issue 22 item 6).

A Prisma 8 project's history of PACKAGES migration packages, planned by
Prisma 8 itself (``prisma contract emit`` then ``prisma migration plan``, one
package per step, each adding a table with a unique column, and from the
second on an index and a foreign key to the previous table: four
operations), is applied to an empty database
by bandage (``--migrations``) and by ``prisma db migrate``, each on a fresh
database of the same server, in the same run; then each starts again with
nothing pending. Both write the same prisma_contract rows (checked: the
ledger's length and the marker).

Prisma 8 is the version pinned for the tests (tests/integration/helpers/
prisma8.py), installed from npm into build/; the history is planned once
and cached there (two CLI runs per package: about 10 minutes for 120 on two
shared cores), so later runs measure only the applying.
"""
import os
import shutil
import statistics
import subprocess
import time

import psycopg

from helpers import prisma8

PACKAGES = int(os.environ.get("BENCH_PRISMA8_PACKAGES", "120"))


def _model(k):
    """Tables T1..Tk, each with a unique email and a foreign key to the one before."""
    parts = ["// use prisma-8\n"]
    for i in range(1, k + 1):
        back = f"  prev{i - 1}   T{i - 1}? @relation(fields: [prevId], references: [id])\n" \
               f"  prevId  Int?\n" if i > 1 else ""
        forward = f"  next    T{i + 1}[]\n" if i < k else ""
        parts.append(f"model T{i} {{\n  id      Int     @id @default(autoincrement())\n"
                     f"  email   String  @unique\n  name    String?\n{back}{forward}}}\n")
    return "\n".join(parts)


def _history(bench, n):
    steps = [(f"t{k}", _model(k), None) for k in range(1, n + 1)]
    history = prisma8.History(steps)
    if not os.path.exists(os.path.join(history.cache, "done.json")):
        bench.log(f"prisma8: planning {n} packages with Prisma 8 (cached in "
                  f"{os.path.relpath(history.cache)})")
    return history.make()


def _ledger(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*), (SELECT core_hash FROM prisma_contract.marker)"
                            " FROM prisma_contract.ledger").fetchone()


def _bandage(bench, url, app):
    env = bench.base_env()
    env["DATABASE_URL"] = url
    return bench.timed([bench.bandage, "--migrations", os.path.join(app, "migrations"),
                        "--log-level", "warn"], env=env)


def _prisma(bench, url, app):
    """prisma db migrate, run in the project (it reads ./prisma.config.ts)."""
    start = time.monotonic()
    r = subprocess.run(prisma8.command(app, ["db", "migrate", "--db", url]), cwd=app,
                       env=prisma8.env(), capture_output=True, text=True, timeout=900)
    return time.monotonic() - start, r


def _one(bench, cluster, app, n, head):
    times = {}
    for tool, apply in (("bandage", _bandage), ("prisma", _prisma)):
        url = bench.fresh_db(cluster, f"bench_p8_{tool}")
        t, r = apply(bench, url, app)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} exited {r.returncode}: {(r.stdout + r.stderr)[-1500:]}")
        rows, marker = _ledger(url)
        if rows != n or marker != head:
            raise RuntimeError(f"{tool}: {rows} ledger rows, marker {marker} (want {n}, {head})")
        again, r = apply(bench, url, app)
        if r.returncode != 0 or _ledger(url)[0] != n:
            raise RuntimeError(f"{tool} again exited {r.returncode}: {r.stderr[-1500:]}")
        times[tool], times[tool + " again"] = t, again
    return times


def prisma8_migrations(bench, cluster):
    n = PACKAGES if not bench.quick else min(PACKAGES, 100)
    rounds = 1 if bench.quick else 3
    if prisma8.NPM is None:
        bench.log("prisma8 row left out: npm is not installed (Prisma 8 comes from npm)")
        return
    try:
        prisma8.install()
    except BaseException as e:  # pytest.skip/fail outside pytest: say why, go on
        bench.log(f"prisma8 row left out: {e}")
        return
    history = _history(bench, n)
    app = history.project(os.path.join(bench.tmp, "prisma8-app"), n)
    ops = sum(len(prisma8.read_package(os.path.join(app, "migrations"), d)[1])
              for d in history.names())
    results = []
    for r in range(rounds):
        bench.log(f"prisma8 round {r + 1}/{rounds}: {n} packages, bandage then prisma db migrate")
        results.append(_one(bench, cluster, app, n, history.head(n)))
    shutil.rmtree(app, ignore_errors=True)
    bench.log("prisma8:", results)
    med = {k: statistics.median(x[k] for x in results) for k in results[0]}
    bench.rows.append((f"{n} Prisma 8 packages ({ops} operations) applied to an empty database "
                       f"in one run, then a start with nothing pending, median of {rounds} "
                       f"(prisma {prisma8.VERSIONS['prisma']}, Node "
                       f"{prisma8.node_version()})",
                       f"{bench.fmt_ms(med['bandage'])}; nothing pending "
                       f"{bench.fmt_ms(med['bandage again'])}",
                       f"`prisma db migrate` {bench.fmt_ms(med['prisma'])}; nothing pending "
                       f"{bench.fmt_ms(med['prisma again'])}",
                       f"{med['prisma'] / med['bandage']:.1f}× faster applying, "
                       f"{med['prisma again'] / med['bandage again']:.0f}× with nothing "
                       f"pending"))
