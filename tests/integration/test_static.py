"""The fully static release binary on an empty root (``make check-static``).

build/bandage-static runs as PID 1 of a new PID namespace, chrooted into a
directory holding only itself, a CA bundle, /etc/hosts, /etc/resolv.conf,
/tmp, /proc and a static test app (helpers/emptyroot.py): what a ``FROM
scratch`` image gives it. No shell, no libc, no ld.so, no /etc/passwd.

What it proves there: the app runs as PID 1's child with a clean slate, its
exit code comes back, SIGTERM reaches it; PostgreSQL over loopback TCP with
``sslmode=require`` and ``sslmode=verify-full`` against a made-up host name
(db.bandage.test, from /etc/hosts, in the server certificate's SAN) with NO
``sslrootcert``: bandage finds /etc/ssl/certs/ca-certificates.crt by itself;
a reset applying a schema file from the root; a pending DROP COLUMN classified
as breaking by the statement checks (the parser is linked); an HTTPS webhook trusted through
the same bundle (no ``--webhook-ca-file``); a name that is in neither
/etc/hosts nor DNS fails cleanly. This machine exports SSL_CERT_FILE,
SSL_CERT_DIR and CURL_CA_BUNDLE: the runs get none of them (nor anything else
of the harness's environment), so the bundle lookup itself is what is tested.

Skipped unless ``BANDAGE_STATIC`` names the static binary (``make
check-static`` sets it), so ``make check`` does not run it. Needs root
(chroot, PID namespace, port 53 for the fake DNS). The test app is
``$BANDAGE_STATIC_APP`` (``make check-static`` builds build/static_app), else
helpers/static_app.c is compiled with ``musl-gcc -static`` here.
"""
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import types
import uuid

import pytest

from helpers import HERE, IS_ROOT, REPO_ROOT, scaled, wait_until
from helpers.emptyroot import CA_BUNDLE, CA_VARIABLES, EmptyRoot, EmptyRootRun, root_env
from helpers.fakedns import FakeDns
from helpers.migrations import INIT, LOCK_FILE
from helpers.pg import PgCluster
from helpers.webhook import WebhookReceiver

STATIC_BIN = os.environ.get("BANDAGE_STATIC")
if not STATIC_BIN:
    pytest.skip("BANDAGE_STATIC is not set (make check-static runs these tests)",
                allow_module_level=True)

DB_HOST = "db.bandage.test"        # in /etc/hosts and in the server certificate
HOOK_HOST = "hooks.bandage.test"   # in /etc/hosts and in the same certificate
OTHER_HOST = "other.bandage.test"  # in /etc/hosts, NOT in the certificate
UNKNOWN_HOST = "nosuch.bandage.test"  # nowhere: DNS (the fake one) says NXDOMAIN
SCHEMA_SQL = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
RFC3339 = re.compile(r"^LAST_DB_RESET=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
                     re.M)


# --- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def static_bin():
    path = os.path.abspath(STATIC_BIN)
    if not os.access(path, os.X_OK):
        pytest.fail(f"BANDAGE_STATIC={STATIC_BIN}: not an executable file (make static)")
    if not IS_ROOT:
        pytest.fail("the empty-root tests need root (chroot, a PID namespace, port 53)")
    return path


@pytest.fixture(scope="module")
def static_app(tmp_path_factory):
    """The static test app: $BANDAGE_STATIC_APP, or compiled here."""
    given = os.environ.get("BANDAGE_STATIC_APP")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"BANDAGE_STATIC_APP={given}: not an executable file")
        return given
    cc = shutil.which("musl-gcc")
    if not cc:
        pytest.fail("musl-gcc not found (package musl-tools) to build helpers/static_app.c")
    out = str(tmp_path_factory.mktemp("static_app") / "static_app")
    r = subprocess.run([cc, "-static", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-D_GNU_SOURCE", "-o", out, os.path.join(HERE, "static_app.c")],
                       capture_output=True, timeout=scaled(120))
    if r.returncode != 0:
        pytest.fail(f"compiling static_app.c failed:\n{r.stderr.decode(errors='replace')}")
    return out


@pytest.fixture(scope="module")
def named_tls(test_ca):
    """The harness CA and a server certificate it signed for the made-up
    names (and localhost): duck-types the CertAuthority that PgCluster and
    WebhookReceiver use (``server_cert``, ``ca_file``)."""
    cert = test_ca.issue("static-root", cn=DB_HOST, dns=(DB_HOST, HOOK_HOST, "localhost"),
                         ips=("127.0.0.1",))
    return types.SimpleNamespace(server_cert=cert, ca_file=test_ca.ca_file)


@pytest.fixture(scope="module")
def bundles(test_ca, wrong_ca, tmp_path_factory):
    """CA bundles to put in the root: "test" is this machine's system bundle
    with the harness CA appended (a real bundle of ~150 roots, the one that
    matters last); "wrong" holds only an unrelated CA."""
    d = tmp_path_factory.mktemp("bundles")
    system = ""
    if os.path.exists(SYSTEM_BUNDLE):
        with open(SYSTEM_BUNDLE) as f:
            system = f.read()
    with open(test_ca.ca_file) as f:
        ours = f.read()
    test = d / "test.pem"
    test.write_text(system + ("\n" if system and not system.endswith("\n") else "") + ours)
    return {"test": str(test), "wrong": wrong_ca.ca_file, None: None}


@pytest.fixture(scope="module")
def pg_named(_pg_template, named_tls):
    """A PostgreSQL of its own (a copy of the session template) serving the
    certificate for db.bandage.test, with log_connections on (the log says
    whether a login used TLS)."""
    cluster = PgCluster(named_tls, None, _pg_template.superuser_password,
                        template=_pg_template.data_dir, bin_dir=_pg_template.bin_dir)
    with open(os.path.join(cluster.data_dir, "bandage_test.conf"), "a") as f:
        f.write("log_connections = on\n")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def sdb(pg_named):
    name = f"static_{uuid.uuid4().hex[:10]}"
    database = pg_named.create_database(name)
    yield database
    pg_named.drop_database(name)


@pytest.fixture(scope="module")
def fake_dns():
    dns = FakeDns()
    yield dns
    dns.close()


@pytest.fixture
def make_root(static_bin, static_app, bundles, fake_dns):
    """Factory: ``make_root(bundle="test"|"wrong"|None, files=None)`` ->
    EmptyRoot with the binary, that bundle, hosts for the test names,
    resolv.conf pointing at the fake DNS, the static app, examples/prisma/schema.sql
    as /app/schema.sql, and ``files`` ({root path: host path})."""
    made = []

    def create(bundle="test", files=None):
        root = EmptyRoot(static_bin, ca_bundle=bundles[bundle],
                         hosts={DB_HOST: "127.0.0.1", HOOK_HOST: "127.0.0.1",
                                OTHER_HOST: "127.0.0.1"},
                         nameserver=fake_dns.address, app=static_app,
                         files={"/app/schema.sql": SCHEMA_SQL, **(files or {})})
        made.append(root)
        return root

    yield create
    for root in made:
        root.remove()


@pytest.fixture
def run_root():
    """Factory: ``run_root(root, args, env=None, timeout=None, binary=None,
    wd=None)`` -> a started EmptyRootRun (bandage as PID 1 in ``root``);
    ``env``: overrides on top of a scratch image's environment (PATH,
    HOME=/). Killed at teardown."""
    runs = []
    workroot = tempfile.mkdtemp(prefix="bandage-static-run-")

    def start(root, args, env=None, timeout=None, binary=None, wd=None):
        run = EmptyRootRun(root, args, env=root_env(env), timeout=timeout or scaled(30),
                           workdir=os.path.join(workroot, str(len(runs))), binary=binary,
                           wd=wd)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill_tree()
    shutil.rmtree(workroot, ignore_errors=True)


@pytest.fixture
def named_webhook(named_tls):
    """An HTTPS receiver serving the certificate for hooks.bandage.test."""
    receiver = WebhookReceiver(https=True, ca=named_tls)
    yield receiver
    receiver.close()


# --- helpers ---------------------------------------------------------------------

def app_cmd(root, name="app", *options):
    return [root.app, "--dir", "/tmp", "--name", name, *map(str, options)]


def app_ready(root, run, name="app"):
    """The app's ready line as a dict (waits for it, bounded)."""
    def ready():
        text = root.read(f"/tmp/{name}.ready")
        if text is None and run.poll() is not None:
            raise AssertionError(f"bandage exited {run.poll()} before the app was ready:\n"
                                 f"{run.stderr}")
        return text
    text = wait_until(ready, scaled(15), f"{name}.ready in the root")
    return dict(kv.split("=", 1) for kv in text.split())


def app_env(root, name="app"):
    text = root.read(f"/tmp/{name}.env") or ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def app_signals(root, name="app"):
    return [int(s) for s in (root.read(f"/tmp/{name}.signals") or "").split()]


def db_url(database, host=DB_HOST, **params):
    """A URI for ``database`` through ``host`` (no sslrootcert unless given)."""
    return database.dsn(host=host, connect_timeout=5, **params)


def tls_logins(pg, dbname):
    """The server's 'connection authorized' lines of bandage's logins to dbname."""
    return [line for line in pg.log().splitlines()
            if "connection authorized" in line and f"database={dbname} " in line + " "
            and "application_name=bandage" in line]


def elf_program_headers(path):
    """The p_type of every program header of a 64-bit little-endian ELF."""
    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1, f"{path}: not ELF64 LE"
        e_phoff, = struct.unpack_from("<Q", head, 0x20)
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x36)
        types_ = []
        for i in range(e_phnum):
            f.seek(e_phoff + i * e_phentsize)
            types_.append(struct.unpack("<I", f.read(4))[0])
    return types_


PT_DYNAMIC, PT_INTERP = 2, 3


TRIMMED = r"gave back the pages of code and constant data"


def report_rss(label, kib):
    """PID 1's resident memory, printed (never asserted): make check-static shows it.
    Read once PID 1 has given back its code (``TRIMMED``, at --log-level debug),
    100 ms after the app started."""
    line = f"PID-1 VmRSS ({label}): " + (f"{kib} KiB" if kib is not None else "gone")
    print(f"\n[check-static] {line}")
    out = os.environ.get("BANDAGE_STATIC_RSS_FILE")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


# --- the root itself ----------------------------------------------------------------

def test_binaries_are_static_and_the_root_is_empty(make_root, run_root, static_bin, static_app):
    for path in (static_bin, static_app):
        phdrs = elf_program_headers(path)
        assert PT_INTERP not in phdrs, f"{path} has a PT_INTERP (needs a dynamic loader)"
        assert PT_DYNAMIC not in phdrs, f"{path} has a PT_DYNAMIC segment"
    root = make_root()
    assert root.listing() == sorted(["/bandage", CA_BUNDLE, "/etc/hosts", "/etc/resolv.conf",
                                     "/app/static_app", "/app/schema.sql"])
    assert os.listdir(root.host("/proc")) == [] and os.listdir(root.host("/tmp")) == []
    run = run_root(root, ["--version"])
    run.wait_exit_code(0)
    assert re.match(r"bandage \d+\.\d+\.\d+", run.stdout), run.stdout


def test_environment_carries_no_ca_variables(make_root, run_root):
    """The harness machine exports SSL_CERT_FILE & co.; nothing of it gets in."""
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"):
        if var in os.environ:
            assert var not in root_env(), var
    root = make_root()
    run = run_root(root, ["--", *app_cmd(root, "app", "--exit", 0)])
    run.wait_exit_code(0)
    env = app_env(root)
    assert env, "the app wrote no environment"
    assert not set(env) & set(CA_VARIABLES), env
    assert env.get("HOME") == "/" and "ITEST_RUN_TOKEN" in env, env


# --- PID 1 and the app -----------------------------------------------------------------

def test_app_runs_as_child_of_pid1_with_a_clean_slate(make_root, run_root):
    root = make_root()
    run = run_root(root, ["--", *app_cmd(root, "app", "--exit", 0)])
    run.wait_exit_code(0)
    ready = app_ready(root, run)
    assert ready["ppid"] == "1", ready             # bandage is PID 1 in the namespace
    assert ready["pgrp"] == ready["pid"], ready     # the app leads its own group
    assert ready["blocked"] == "0" and ready["ignored"] == "0", ready
    assert "LAST_DB_RESET unset" in run.stdout, run.stdout


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code_is_the_apps(make_root, run_root, code):
    root = make_root()
    run = run_root(root, ["--", *app_cmd(root, "app", "--exit", code)])
    run.wait_exit_code(code)


@pytest.mark.parametrize("command", ["/app/no-such-app", "/bin/sh", "node"])
def test_missing_command_exits_127(make_root, run_root, command):
    """Nothing but the root's own files exists: no /bin/sh, nothing on PATH."""
    root = make_root()
    run = run_root(root, ["--", command])
    run.wait_exit_code(127)
    assert command in run.stderr and "No such file or directory" in run.stderr, run.stderr


def test_not_executable_exits_126(make_root, run_root):
    root = make_root()
    run = run_root(root, ["--", "/app/schema.sql"])
    run.wait_exit_code(126)
    assert "Permission denied" in run.stderr, run.stderr


@pytest.mark.parametrize("term_exit", [0, 7])
def test_sigterm_reaches_the_app(make_root, run_root, term_exit):
    root = make_root()
    run = run_root(root, ["--grace", "5", "--log-level", "debug", "--",
                          *app_cmd(root, "app", "--wait", 60, "--term-exit", term_exit)])
    app_ready(root, run)
    if term_exit == 0:
        run.wait_for_stderr(TRIMMED)
        report_rss("app running, no database phase", run.vm_rss_kib())
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(term_exit)
    assert app_signals(root) == [signal.SIGTERM], app_signals(root)


def test_other_signals_are_forwarded(make_root, run_root):
    root = make_root()
    run = run_root(root, ["--", *app_cmd(root, "app", "--wait", 60)])
    app_ready(root, run)
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        run.send_signal(sig)
        wait_until(lambda: sig in app_signals(root), scaled(5), f"the app to record {sig.name}")
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(0)
    assert app_signals(root) == [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM]


# --- PostgreSQL over TLS, trusted through the bundle -----------------------------------------

@pytest.mark.parametrize("sslmode", ["require", "verify-full"])
def test_tls_login_without_sslrootcert(make_root, run_root, pg_named, sdb, sslmode):
    root = make_root()
    url = db_url(sdb, sslmode=sslmode)
    assert "sslrootcert" not in url
    run = run_root(root, ["--wait-timeout", "10", "--", *app_cmd(root, "app", "--exit", 0)],
                   env={"DATABASE_URL": url})
    run.wait_exit_code(0)
    assert re.search(r"database ready after 1 attempt", run.stderr), run.stderr
    assert f"host={DB_HOST}" in run.stderr, run.stderr
    logins = wait_until(lambda: tls_logins(pg_named, sdb.name), scaled(5),
                        "bandage's login in the server log")
    assert all("SSL enabled" in line for line in logins), logins
    assert DB_HOST in root.read("/etc/hosts")


@pytest.mark.parametrize("bundle, reason", [
    ("wrong", "certificate verify failed"),
    (None, "root.crt"),  # no bundle anywhere: libpq's own default, which is absent too
], ids=["bundle-without-our-ca", "no-bundle"])
def test_verify_full_fails_without_the_right_ca(make_root, run_root, sdb, bundle, reason):
    root = make_root(bundle)
    run = run_root(root, ["--wait-timeout", "10", "--", *app_cmd(root, "app", "--exit", 0)],
                   env={"DATABASE_URL": db_url(sdb, sslmode="verify-full")})
    run.wait_exit_code(77)
    assert reason in run.stderr, run.stderr
    assert root.read("/tmp/app.ready") is None, "the app must not start"


def test_verify_full_checks_the_host_name(make_root, run_root, sdb):
    """other.bandage.test resolves to the same server, but the certificate does
    not name it: verify-full refuses, require (no verification) accepts."""
    root = make_root()
    run = run_root(root, ["--wait-timeout", "10"],
                   env={"DATABASE_URL": db_url(sdb, host=OTHER_HOST, sslmode="verify-full")})
    run.wait_exit_code(77)
    assert "does not match host name" in run.stderr, run.stderr
    run = run_root(root, ["--wait-timeout", "10"],
                   env={"DATABASE_URL": db_url(sdb, host=OTHER_HOST, sslmode="require")})
    run.wait_exit_code(0)


def test_unknown_host_fails_cleanly(make_root, run_root, sdb, fake_dns):
    """A name in neither /etc/hosts nor DNS: retried (DNS may come up late),
    logged once, then exit 69 at --wait-timeout; the app never starts."""
    root = make_root()
    run = run_root(root, ["--wait-timeout", "1.5", "--", *app_cmd(root, "app", "--exit", 0)],
                   env={"DATABASE_URL": db_url(sdb, host=UNKNOWN_HOST, sslmode="verify-full")})
    run.wait_exit_code(69, timeout=scaled(15))
    assert run.stderr.count(f'could not translate host name "{UNKNOWN_HOST}"') >= 1, run.stderr
    assert len(re.findall(r"database not ready .*could not translate", run.stderr)) == 1, run.stderr
    assert root.read("/tmp/app.ready") is None
    assert UNKNOWN_HOST in fake_dns.names()   # /etc/resolv.conf was read
    for known in (DB_HOST, HOOK_HOST, OTHER_HOST, "localhost"):
        assert known not in fake_dns.names(), f"{known} went to DNS: /etc/hosts not used"


# --- reset and webhook ----------------------------------------------------------------

def public_tables(database):
    return sorted(r[0] for r in database.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def test_reset_applies_the_schema_file(make_root, run_root, sdb):
    sdb.execute('CREATE TABLE "Leftover" (id int)')
    root = make_root()
    run = run_root(root, ["--wait-timeout", "10", "--reset", "always",
                          "--confirm-database", sdb.name, "--schema-file", "/app/schema.sql",
                          "--", *app_cmd(root, "app", "--exit", 0)],
                   env={"DATABASE_URL": db_url(sdb, sslmode="verify-full")})
    run.wait_exit_code(0)
    assert RFC3339.search(run.stdout), run.stdout
    assert "Leftover" not in public_tables(sdb)
    assert {"User", "Post"} <= set(public_tables(sdb)), public_tables(sdb)
    assert "LAST_DB_RESET" in app_env(root)


def test_plan_classifies_a_breaking_statement(make_root, run_root, sdb):
    """The release binary has PostgreSQL's parser (libpg_query, PostgreSQL
    17's grammar, linked by default: static.mk): a pending DROP COLUMN is a
    breaking drop-column finding in --plan, not "not checked"."""
    root = make_root()
    mig = "/app/migrations"
    root.write(f"{mig}/migration_lock.toml", LOCK_FILE)
    root.write(f"{mig}/20240101000000_init/migration.sql", INIT)
    args = ["--wait-timeout", "10", "--migrations", mig]
    env = {"DATABASE_URL": db_url(sdb, sslmode="verify-full")}
    run_root(root, args, env=env).wait_exit_code(0)
    root.write(f"{mig}/20240102000000_contract/migration.sql",
               '-- contract\nALTER TABLE "User" DROP COLUMN "name";\n')
    plan = run_root(root, [*args, "--plan", "true"], env=env)
    plan.wait_exit_code(0)
    assert re.search(r'^ {11}line 2: breaking drop-column on "User" \(column name\)',
                     plan.stdout, re.M), plan.stdout
    assert "without PostgreSQL's parser" not in plan.stderr, plan.stderr


def test_hook_without_a_shell_is_a_usage_error(make_root, run_root, sdb):
    """Hooks run through /bin/sh, which a scratch image lacks: a --before-reset
    is refused up front (64) naming the setting and /bin/sh, before waiting,
    and nothing is dropped."""
    sdb.execute('CREATE TABLE "Kept" (id int)')
    root = make_root()
    run = run_root(root, ["--wait-timeout", "10", "--reset", "always",
                          "--confirm-database", sdb.name, "--schema-file", "/app/schema.sql",
                          "--before-reset", "pg_dump > /tmp/backup.sql",
                          "--", *app_cmd(root, "app", "--exit", 0)],
                   env={"DATABASE_URL": db_url(sdb, sslmode="verify-full")})
    run.wait_exit_code(64)
    assert "--before-reset" in run.stderr and "/bin/sh" in run.stderr, run.stderr
    assert "waiting for the database" not in run.stderr, run.stderr
    assert public_tables(sdb) == ["Kept"]
    assert root.read("/tmp/app.ready") is None

def test_reset_once_uses_railway_deployment_id(make_root, run_root, sdb):
    """--reset once with the id from RAILWAY_DEPLOYMENT_ID (as railway.json
    starts it): the first start resets, a restart of the same deploy does not,
    a new deploy does."""
    root = make_root()

    def start(deploy):
        run = run_root(root, ["--wait-timeout", "10", "--reset", "once",
                              "--schema-file", "/app/schema.sql",
                              "--", *app_cmd(root, "app", "--exit", 0)],
                       env={"DATABASE_URL": db_url(sdb, sslmode="verify-full"),
                            "BANDAGE_CONFIRM_DATABASE": sdb.name,
                            "RAILWAY_DEPLOYMENT_ID": deploy})
        run.wait_exit_code(0)
        return run

    assert RFC3339.search(start("deploy-1").stdout)
    sdb.execute('INSERT INTO "User" (email) VALUES (\'kept@example.com\')')
    assert "LAST_DB_RESET unset" in start("deploy-1").stdout
    assert sdb.execute('SELECT count(*) FROM "User"') == [(1,)]
    assert RFC3339.search(start("deploy-2").stdout)
    assert sdb.execute('SELECT count(*) FROM "User"') == [(0,)]


def test_webhook_over_https_trusts_the_bundle(make_root, run_root, sdb, named_webhook):
    """Deploy and exit events reach an https:// receiver known only by a
    made-up name, verified through the root's bundle (no --webhook-ca-file);
    PID 1's memory is measured after the whole database phase."""
    root = make_root()
    url = named_webhook.url.replace("127.0.0.1", HOOK_HOST)
    run = run_root(root, ["--wait-timeout", "10", "--reset", "always",
                          "--confirm-database", sdb.name, "--schema-file", "/app/schema.sql",
                          "--webhook-url", url, "--log-level", "debug", "--",
                          *app_cmd(root, "app", "--wait", 60)],
                   env={"DATABASE_URL": db_url(sdb, sslmode="verify-full")})
    app_ready(root, run)
    deploy = named_webhook.wait_for(1)[0]
    run.wait_for_stderr(TRIMMED)
    report_rss("app running, after wait + reset + HTTPS webhook", run.vm_rss_kib())
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(0)
    requests = named_webhook.wait_for(2)
    assert named_webhook.tls_errors == []
    assert deploy.header("host", "").startswith(HOOK_HOST), deploy.headers
    body = deploy.json()
    assert body.get("event") == "deploy", body
    assert requests[1].json().get("event") == "exit", requests[1].json()


def test_webhook_with_an_untrusted_certificate_never_blocks_the_app(make_root, run_root, sdb,
                                                                   named_webhook):
    """The bundle lacks our CA: the POST fails its TLS handshake (logged), the
    app starts and its exit code is bandage's all the same."""
    root = make_root("wrong")
    url = named_webhook.url.replace("127.0.0.1", HOOK_HOST)
    run = run_root(root, ["--webhook-url", url, "--webhook-timeout", "2",
                          "--", *app_cmd(root, "app", "--exit", 5)])
    run.wait_exit_code(5)
    assert root.read("/tmp/app.ready") is not None
    assert named_webhook.requests == []
    wait_until(lambda: named_webhook.tls_errors, scaled(5), "a rejected TLS handshake")


# --- the deploy files' start command --------------------------------------------------

def test_railway_start_command_runs_in_an_empty_root(make_root, run_root, static_bin,
                                                     static_app, sdb):
    """railway.json's startCommand, word for word, in /app of an empty root:
    the static binary at node_modules/.bin/bandage (standing in for npm's
    launcher, which execs it), prisma/schema.sql as the build makes it, the
    static app standing in for `node` on PATH. Railway's variables:
    DATABASE_URL, BANDAGE_CONFIRM_DATABASE, RAILWAY_DEPLOYMENT_ID. The first
    start of a deploy resets, its crash restart does not."""
    with open(os.path.join(REPO_ROOT, "railway.json")) as f:
        argv = shlex.split(json.load(f)["deploy"]["startCommand"])
    assert argv[0] == "node_modules/.bin/bandage", argv
    root = make_root(files={"/app/node_modules/.bin/bandage": static_bin,
                            "/app/prisma/schema.sql": SCHEMA_SQL,
                            "/usr/local/bin/node": static_app})
    env = {"DATABASE_URL": db_url(sdb, sslmode="verify-full"),
           "BANDAGE_CONFIRM_DATABASE": sdb.name, "RAILWAY_DEPLOYMENT_ID": "d-1"}

    run = run_root(root, argv[1:], env=env, binary=argv[0], wd="/app")
    run.wait_exit_code(0)
    assert RFC3339.search(run.stdout), run.stdout + run.stderr
    ready = app_ready(root, run)
    assert ready["ppid"] == "1" and ready["args"] == str(len(argv) - argv.index("--") - 2)
    assert {"User", "Post"} <= set(public_tables(sdb))

    restart = run_root(root, argv[1:], env=env, binary=argv[0], wd="/app")
    restart.wait_exit_code(0)
    assert "LAST_DB_RESET unset" in restart.stdout, restart.stdout + restart.stderr
