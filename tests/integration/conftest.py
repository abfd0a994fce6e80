"""Fixtures of the bandage integration tests: real bandage, real PostgreSQL, a
real HTTP receiver, a real PID namespace.

Run: ``/usr/bin/python3 -m pytest -q tests/integration`` (as root in CI).
Environment: ``BANDAGE`` (the binary; default <repo>/build/bandage),
``BANDAGE_SANITIZED=1`` (an ASan build: every timeout is tripled).

Fixtures (details in each docstring):

=====================  =========  ==============================================
``bandage_bin``        session    absolute path of the binary under test
``run_bandage``        function   ``run_bandage(args, env=None, pid1=True,
                                  timeout=None, **kw) -> BandageRun``
``pid1``               function   parametrized True ("pid1") / False
                                  ("subreaper"): run a test in both modes
``app_dir``            function   a directory for the test apps' files
``orphan_helper``      session    path of the compiled helpers/orphans.c
``test_ca``            session    CertAuthority (``.ca_file``, ``.server_cert``)
``wrong_ca``           session    an unrelated CertAuthority
``pg``                 session    started PgCluster
``db``                 function   fresh Database on ``pg``, dropped after
``db_factory``         function   ``db_factory(owner=None, name=None)``
``app_role``           session    Role ``app`` on ``pg`` (no superuser/CREATEDB)
``pg_factory``         function   ``pg_factory() -> PgCluster`` initdb'd, NOT
                                  started; stopped and removed after
``webhook``            function   WebhookReceiver (http)
``webhook_https``      function   WebhookReceiver (https, harness CA)
``webhook_factory``    function   ``webhook_factory(https=False)``
``refused_url``        function   ``http://127.0.0.1:PORT/hook``, refused
=====================  =========  ==============================================

The classes behind them are in ``helpers/`` (importable from test modules:
``from helpers import scaled``, ``from helpers.apps import AppFiles``, ...).
"""
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import pytest

from helpers import IS_ROOT, REPO_ROOT, SANITIZED, scaled
from helpers.apps import ORPHANS_SRC
from helpers.bandage import BandageRun, bandage_env, pid1_supported
from helpers.pg import KNOWN_SECRETS, DEFAULT, PG_VERSION, find_pg_bin, server_major, CertAuthority, Database, PgCluster, Role, free_port  # noqa: F401
from helpers.webhook import RefusedPort, WebhookReceiver

__all__ = ["BandageRun", "PgCluster", "Database", "Role", "CertAuthority", "WebhookReceiver",
           "DEFAULT", "free_port", "scaled", "SANITIZED"]


def pytest_report_header(config):
    path = os.environ.get("BANDAGE") or os.path.join(REPO_ROOT, "build", "bandage")
    return [f"bandage: {path}" + (" (sanitized: timeouts x3)" if SANITIZED else ""),
            f"root: {IS_ROOT}",
            f"PostgreSQL: {server_major(find_pg_bin())} (PG_VERSION={PG_VERSION or 'unset'}: "
            f"{find_pg_bin()})"]


# --- bandage -------------------------------------------------------------------

@pytest.fixture(scope="session")
def bandage_bin():
    """Absolute path of the bandage binary under test: ``$BANDAGE``, default
    ``<repo>/build/bandage``. Fails (does not skip) if it is missing."""
    path = os.path.abspath(os.environ.get("BANDAGE") or
                           os.path.join(REPO_ROOT, "build", "bandage"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"bandage binary not found or not executable: {path} (run make, or set "
                    f"BANDAGE)")
    return path


@pytest.fixture(params=[True, False], ids=["pid1", "subreaper"])
def pid1(request):
    """Run the test twice: bandage as PID 1 of a new PID namespace (True), and
    bandage as a plain child subreaper (False). Pass it on:
    ``run_bandage(args, pid1=pid1)``."""
    return request.param


@pytest.fixture
def app_dir():
    """A fresh directory (under /tmp, world-traversable) for the test apps'
    status, ready and signal files; removed afterwards."""
    d = tempfile.mkdtemp(prefix="bandage-app-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def run_bandage(bandage_bin, request):
    """Factory: start bandage, return a :class:`helpers.bandage.BandageRun`.

    ``run_bandage(args, env=None, pid1=True, timeout=None, *, stdin=None,
    cwd=None, exec_prefix=())``

    - ``args``: bandage's arguments, e.g. ``["--grace", "0.5", "--", *cmd]``.
    - ``env``: overrides on top of the harness's environment, from which
      bandage's settings (``BANDAGE_*``), ``DATABASE_URL``, libpq's ``PG*``,
      ``RAILWAY_*``, CA-bundle and proxy variables are removed, so the
      developer's shell cannot change a test. A value of None removes.
    - ``pid1``: True runs ``unshare --pid --fork --mount-proc --kill-child
      bandage ...`` (bandage is PID 1 inside); False runs bandage directly
      (subreaper mode). The handle's ``.pid`` is bandage's host pid either way.
    - ``timeout``: default for ``.wait()`` (20 s, scaled).
    - ``exec_prefix``: argv run before bandage that must exec it (e.g.
      ``helpers.apps.dirty_exec_prefix(...)``); it is PID 1 until it execs.

    bandage starts in its own session, stdin ``/dev/null``, stdout/stderr to
    files (``.stdout``/``.stderr`` read them at any time). ``.wait(timeout)``
    returns bandage's exit code (N, or 128+N for signal N, also through
    unshare), or kills the whole tree and fails the test if it runs out.
    At teardown every process the run started is SIGKILLed (found through a
    per-run environment token, so also daemons that left bandage's tree).
    """
    runs = []
    counter = [0]
    workroot = tempfile.mkdtemp(prefix="bandage-run-")

    def start(args, env=None, pid1=True, timeout=None, *, stdin=None, cwd=None,
              exec_prefix=()):
        if pid1:
            ok, reason = pid1_supported()
            if not ok:
                message = f"cannot create a PID namespace with unshare: {reason}"
                if IS_ROOT:
                    pytest.fail(message)
                pytest.skip(message + " (not root)")
        counter[0] += 1
        run = BandageRun(bandage_bin, [str(a) for a in args], pid1=pid1,
                         env=bandage_env(env), timeout=timeout or scaled(20),
                         workdir=os.path.join(workroot, str(counter[0])), stdin=stdin,
                         cwd=cwd, exec_prefix=[str(a) for a in exec_prefix])
        runs.append(run)
        return run

    yield start
    errors = []
    for run in runs:
        try:
            run.kill_tree()
        except Exception as e:  # keep stopping the others
            errors.append(f"{run.argv}: {e!r}")
    leaked = [f"run {i + 1}: {secret[:3]}…" for i, run in enumerate(runs)
              for secret in KNOWN_SECRETS
              if len(secret) >= 8 and secret in bandage_lines(run.stderr)]
    shutil.rmtree(workroot, ignore_errors=True)
    if errors:
        pytest.fail("could not stop every bandage run: " + "; ".join(errors))
    if leaked:
        pytest.fail(f"a database password reached bandage's log: {leaked}")


def bandage_lines(stderr):
    """The lines bandage itself wrote ('bandage: ...' or JSON with a "level"),
    not the app's own output on the same stream."""
    return "\n".join(line for line in stderr.splitlines()
                     if line.startswith("bandage:") or line.startswith('{"time":'))


@pytest.fixture(scope="session")
def orphan_helper(tmp_path_factory):
    """helpers/orphans.c compiled with ``cc`` (once per session): makes
    thousands of orphaned grandchildren cheaply (see its header comment)."""
    out = str(tmp_path_factory.mktemp("orphans") / "orphans")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no C compiler (cc) to build helpers/orphans.c; make deps installs one")
    r = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, ORPHANS_SRC],
                       capture_output=True, timeout=scaled(120))
    if r.returncode != 0:
        pytest.fail(f"compiling helpers/orphans.c failed:\n{r.stderr.decode(errors='replace')}")
    os.chmod(os.path.dirname(out), 0o755)
    return out


# --- TLS ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _cert_root():
    d = tempfile.mkdtemp(prefix="bandage-certs-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def test_ca(_cert_root):
    """The harness CA (:class:`helpers.pg.CertAuthority`). ``.ca_file`` is the
    PEM to trust; ``.server_cert`` is ``(cert, key)`` for localhost and
    127.0.0.1, used by PostgreSQL and ``webhook_https``; ``.issue(...)`` signs
    more."""
    return CertAuthority(os.path.join(_cert_root, "ca"), "bandage test CA")


@pytest.fixture(scope="session")
def wrong_ca(_cert_root):
    """A second CA that signed nothing the servers present: trusting only it
    must make verification fail."""
    return CertAuthority(os.path.join(_cert_root, "wrong-ca"), "unrelated CA")


# --- PostgreSQL ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def _pg_template(test_ca, wrong_ca):
    """One initdb per session; every cluster starts as a copy of it."""
    cluster = PgCluster(test_ca, wrong_ca)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def pg(_pg_template, test_ca, wrong_ca):
    """The session's PostgreSQL (:class:`helpers.pg.PgCluster`), started once.

    ``pg.port``, ``pg.host`` (127.0.0.1), ``pg.socket_dir``,
    ``pg.superuser_password``, ``pg.ca_file``, ``pg.wrong_ca_file``;
    ``pg.dsn(dbname='postgres', user='postgres', password=DEFAULT, host=None,
    port=None, **params)`` -> ``postgresql://`` URI;
    ``pg.connect(dbname='postgres', user='postgres', ...)`` -> psycopg
    connection (autocommit); ``pg.execute(sql, params=None, dbname=...)``;
    ``pg.create_database(name, owner=None)`` -> Database;
    ``pg.drop_database(name)`` (WITH (FORCE));
    ``pg.create_role(name, password=None, superuser=False, createdb=False)``
    -> Role; ``pg.app_role()`` -> Role ``app``; ``pg.log()``; ``pg.stop()``.
    Tests must not stop it (use ``pg_factory`` for that)."""
    cluster = PgCluster(test_ca, wrong_ca, _pg_template.superuser_password,
                        template=_pg_template.data_dir, bin_dir=_pg_template.bin_dir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def app_role(pg):
    """Role ``app`` on ``pg``: login with ``.password``, not a superuser, no
    CREATEDB, no CREATEROLE: a normal owner for a test database."""
    return pg.app_role()


def _db_name(request):
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{base}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db_factory(pg, request):
    """Factory: ``db_factory(owner=None, name=None)`` creates a database on
    ``pg`` (unique name from the test's name) and returns a
    :class:`helpers.pg.Database` (``.name``, ``.owner``, ``.dsn(user=None,
    password=DEFAULT, **params)``, ``.connect(...)``, ``.execute(sql)``).
    Each is dropped WITH (FORCE) after the test."""
    made = []

    def create(owner=None, name=None):
        database = pg.create_database(name or _db_name(request), owner=owner)
        made.append(database)
        return database

    yield create
    for database in made:
        pg.drop_database(database.name)


@pytest.fixture
def db(db_factory):
    """A fresh database on ``pg`` owned by ``postgres``, dropped WITH (FORCE)
    afterwards. For an ordinary owner: ``db_factory(owner=app_role.name)``."""
    return db_factory()


@pytest.fixture
def pg_factory(_pg_template, test_ca, wrong_ca):
    """Factory: ``pg_factory()`` returns a new :class:`helpers.pg.PgCluster`,
    initdb'd (a copy of the session template: same superuser password) but
    NOT started, its port already chosen and held (connections are refused
    until ``.start()``; ``.start(wait=False)`` returns at once,
    ``.wait_ready()`` waits). Stopped and deleted after the test."""
    made = []

    def create():
        cluster = PgCluster(test_ca, wrong_ca, _pg_template.superuser_password,
                            template=_pg_template.data_dir, bin_dir=_pg_template.bin_dir)
        made.append(cluster)
        return cluster

    yield create
    for cluster in made:
        cluster.destroy()


# --- HTTP ---------------------------------------------------------------------------

@pytest.fixture
def webhook_factory(test_ca):
    """Factory: ``webhook_factory(https=False)`` -> a started
    :class:`helpers.webhook.WebhookReceiver`; all are closed after the test."""
    made = []

    def create(https=False):
        receiver = WebhookReceiver(https=https, ca=test_ca if https else None)
        made.append(receiver)
        return receiver

    yield create
    for receiver in made:
        receiver.close()


@pytest.fixture
def webhook(webhook_factory):
    """An HTTP receiver on 127.0.0.1 (:class:`helpers.webhook.WebhookReceiver`):
    ``.url``; ``.requests`` (method, path, headers (lower-case keys), body,
    received_at, status); ``.wait_for(n, timeout)``; behaviour:
    ``.respond_with(500, 500, 200)``, ``.default_status``, ``.delay = 2.0``,
    ``.hang = True`` (never answers until the test ends)."""
    return webhook_factory()


@pytest.fixture
def webhook_https(webhook_factory):
    """Like ``webhook`` but HTTPS with a certificate for localhost/127.0.0.1
    signed by the harness CA (``.ca_file``); ``.tls_errors`` lists failed
    handshakes."""
    return webhook_factory(https=True)


@pytest.fixture
def refused_url():
    """``http://127.0.0.1:PORT/hook`` where nothing listens: connections are
    refused at once (the port is held bound, not listening)."""
    port = RefusedPort()
    yield port.url
    port.close()
