"""One DATABASE_URL for the app and for bandage, as Prisma 7 apps write it
(issue 18 item 3). Prisma 7 connects through @prisma/adapter-pg, which hands
the URL to node-postgres; its parser reads ``ssl``, ``sslmode=no-verify``,
``uselibpqcompat`` and ``sslnegotiation``, which libpq does not.

The server is the harness's PostgreSQL with a self-signed certificate, as
Railway's is. The app is real node-postgres (``pg`` from npm, pinned below,
cached under build/), started by bandage with the same URL; the server's
connection log says whether each side used TLS. Rule under test: a URL the
app accepts starts bandage; bandage is never less strict than libpq's own
meaning of it; where the app is stricter, bandage says so once."""
import json
import os
import re
import shutil
import subprocess

import pytest

from helpers import REPO_ROOT, scaled
from helpers.pg import PgCluster, _openssl

NODE_PG_VERSION = "8.23.1"  # npm's latest `pg` (what @prisma/adapter-pg 7.10.1 resolves to)
NODE_PG_DIR = os.path.join(REPO_ROOT, "build", "npm-tools", f"pg-{NODE_PG_VERSION}")

# The app: connects with DATABASE_URL exactly as Prisma 7's adapter does (a
# connectionString), reports whether its session is encrypted, or its error.
APP_JS = r"""
const { Client } = require('pg');
process.removeAllListeners('warning');
(async () => {
  const c = new Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const r = await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    console.log(JSON.stringify({ ok: true, ssl: r.rows[0].ssl }));
    await c.end();
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
  }
})();
"""


@pytest.fixture(scope="session")
def node_pg():
    """The directory holding node_modules/pg, installed from npm once."""
    if not (shutil.which("npm") and shutil.which("node")):
        pytest.skip("node and npm are not installed (Debian: apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(NODE_PG_DIR, "node_modules", "pg")):
        os.makedirs(NODE_PG_DIR, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NODE_PG_DIR,
                            f"pg@{NODE_PG_VERSION}"], capture_output=True, text=True,
                           timeout=scaled(300))
        assert r.returncode == 0, r.stderr
    return NODE_PG_DIR


class SelfSigned:
    """A self-signed server certificate for localhost/127.0.0.1 (Railway's
    postgres-ssl image makes its own the same way): it is its own CA."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        crt, key = os.path.join(directory, "self.crt"), os.path.join(directory, "self.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        os.chmod(crt, 0o644)
        self.server_cert = (crt, key)
        self.ca_file = crt


@pytest.fixture(scope="module")
def railway_like(_pg_template, tmp_path_factory, wrong_ca):
    """A PostgreSQL with TLS on a self-signed certificate, logging every
    connection (with whether it is encrypted)."""
    cert = SelfSigned(str(tmp_path_factory.mktemp("selfsigned")))
    cluster = PgCluster(cert, wrong_ca, _pg_template.superuser_password,
                        template=_pg_template.data_dir, bin_dir=_pg_template.bin_dir)
    cluster.start()
    cluster.execute("ALTER SYSTEM SET log_connections = on")
    cluster.execute("SELECT pg_reload_conf()")
    yield cluster
    cluster.destroy()


def url(pg, query):
    return pg.dsn(dbname="postgres") + ("?" + query if query else "")


def server_saw(pg, before, app_name):
    """'SSL' or 'plain' for the connection of application_name app_name
    authorized after offset before of the server log, None when none."""
    for line in pg.log()[before:].splitlines():
        if "connection authorized" in line and f"application_name={app_name}" in line:
            return "SSL" if "SSL enabled" in line else "plain"
    return None


def run_app_under_bandage(run_bandage, node_pg, pg, query):
    """bandage with DATABASE_URL, then the app with the same URL; returns
    (bandage run, app result or None, bandage's TLS as the server saw it)."""
    before = len(pg.log())
    env = {"DATABASE_URL": url(pg, query), "NODE_PATH": os.path.join(node_pg, "node_modules")}
    run = run_bandage(["--wait-timeout", "10", "--", "node", "-e", APP_JS], env=env)
    code = run.wait()
    result = None
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    return code, run, result, server_saw(pg, before, "bandage")


# (query, what node-postgres does against a self-signed server, whether
# bandage's log says the app is stricter)
ACCEPTED = [
    ("sslmode=no-verify", {"ok": True, "ssl": True}, False),
    ("ssl=no-verify", {"ok": True, "ssl": True}, False),
    ("uselibpqcompat=true&sslmode=require", {"ok": True, "ssl": True}, False),
    ("uselibpqcompat=true&sslmode=prefer", {"ok": True, "ssl": True}, False),
    ("sslmode=require", {"ok": False}, True),
    ("sslmode=prefer", {"ok": False}, True),
    ("ssl=true", {"ok": False}, True),
    ("ssl=1", {"ok": False}, True),
    ("sslmode=disable", {"ok": True, "ssl": False}, False),
]


@pytest.mark.parametrize("query, app, stricter", ACCEPTED, ids=[q for q, _, _ in ACCEPTED])
def test_url_the_app_reads_starts_bandage_over_tls(run_bandage, node_pg, railway_like, query,
                                                   app, stricter):
    """bandage starts with the app's URL and encrypts whenever the URL asks
    for TLS in either reading; the app's own verdict is node-postgres's."""
    code, run, result, bandage_tls = run_app_under_bandage(run_bandage, node_pg, railway_like,
                                                           query)
    assert code == 0, run.stderr
    assert "database ready" in run.stderr, run.stderr
    assert result is not None and result["ok"] == app["ok"], (result, run.stderr)
    if app["ok"]:
        assert result["ssl"] == app["ssl"], result
    assert bandage_tls == ("plain" if query == "sslmode=disable" else "SSL"), railway_like.log()
    notes = [l for l in run.stderr.splitlines() if "node-postgres" in l]
    assert len(notes) == (1 if stricter else 0), run.stderr
    if stricter:
        assert "DATABASE_URL:" in notes[0] and "verify-full" in notes[0], notes


def test_ssl_0_keeps_libpqs_default(run_bandage, node_pg, railway_like):
    """ssl=0: node-postgres connects in plaintext; bandage keeps libpq's own
    default (prefer), so it still encrypts where the server offers TLS."""
    code, run, result, bandage_tls = run_app_under_bandage(run_bandage, node_pg, railway_like,
                                                           "ssl=0")
    assert code == 0, run.stderr
    assert result == {"ok": True, "ssl": False}, result
    assert bandage_tls == "SSL", railway_like.log()


def test_direct_negotiation_is_tls_the_standard_way(run_bandage, railway_like):
    """sslnegotiation=direct (PostgreSQL 17's direct TLS): this libpq has no
    direct TLS; bandage requires TLS, opens it the standard way and says so."""
    before = len(railway_like.log())
    run = run_bandage(["--wait-timeout", "10"],
                      env={"DATABASE_URL": url(railway_like, "sslnegotiation=direct")})
    assert run.wait() == 0, run.stderr
    assert "sslmode=require" in run.stderr, run.stderr
    assert re.search(r"sslnegotiation=direct: this libpq \(\d+\) has no direct TLS", run.stderr)
    assert server_saw(railway_like, before, "bandage") == "SSL", railway_like.log()


def test_verify_full_against_the_self_signed_server_is_refused(run_bandage, railway_like):
    """No CA given: the chain cannot be verified, as node-postgres finds too."""
    run = run_bandage(["--wait-timeout", "10"],
                      env={"DATABASE_URL": url(railway_like, "sslmode=verify-full")})
    assert run.wait() == 77, run.stderr
    assert "certificate" in run.stderr, run.stderr


@pytest.fixture
def plaintext_only(pg_factory):
    cluster = pg_factory()
    cluster.start()
    cluster.execute("ALTER SYSTEM SET ssl = off")
    cluster.execute("SELECT pg_reload_conf()")
    return cluster


@pytest.mark.parametrize("query", ["sslmode=no-verify", "ssl=true", "ssl=no-verify",
                                   "sslnegotiation=direct"])
def test_tls_asked_for_is_never_given_up(run_bandage, plaintext_only, query):
    """Each of these means TLS or nothing, in node-postgres and in libpq's
    reading: against a server without TLS, bandage refuses (exit 77) rather
    than fall back to plaintext."""
    run = run_bandage(["--wait-timeout", "10"],
                      env={"DATABASE_URL": url(plaintext_only, query)})
    assert run.wait() == 77, run.stderr
    assert "does not support SSL" in run.stderr, run.stderr


@pytest.mark.parametrize("query, named", [
    ("ssl=yes", "ssl must be true, 1, 0 or no-verify"),
    ("sslmode=no_verify", "sslmode must be"),
    ("sslnegotiation=tls", "sslnegotiation must be postgres or direct"),
    ("sslnegotiation=direct&sslmode=disable", "sslmode=disable"),
])
def test_bad_value_is_named_and_touches_nothing(run_bandage, db, query, named):
    run = run_bandage(["--wait-timeout", "10"], env={"DATABASE_URL": db.dsn() + "?" + query})
    assert run.wait() == 64, run.stderr
    assert "DATABASE_URL:" in run.stderr and named in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
