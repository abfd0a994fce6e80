"""The arm64 release binary, run on this amd64 machine under qemu-user
(``make check-arm64``).

``$BANDAGE_ARM64`` (dist/bandage-linux-arm64) is started as
``qemu-aarch64-static BANDAGE_ARM64 ...`` through the harness's usual
``run_bandage`` (its ``exec_prefix``): in PID-1 mode that is ``unshare --pid
--fork --mount-proc --kill-child qemu-aarch64-static BANDAGE_ARM64 ...``, so
the emulated bandage is PID 1 of the new namespace (qemu-user runs it in the
same process). binfmt_misc is not needed (it cannot be registered in every
sandbox): qemu is named explicitly. The apps bandage starts are this
machine's own amd64 programs: qemu-user passes execve to the kernel, so the
child runs natively while bandage stays emulated.

What runs: the binary is an aarch64 ELF without PT_INTERP; --version and
--help; waiting for the harness's PostgreSQL over TCP and over TLS 1.2 and
1.3 with verify-full against the harness CA (an unrelated CA refused: 77); a
reset from a small schema file with --confirm-database; a pending DROP COLUMN
that --plan classifies as breaking (libpg_query built for arm64); an HTTPS webhook
trusted through --webhook-ca-file; a command as PID 1's child whose exit
status comes back; SIGTERM forwarded to the app, bandage exiting with the
app's status.

Skipped unless ``BANDAGE_ARM64`` is set; fails (does not skip) when it is set
but qemu-aarch64-static is missing (package qemu-user-static).
"""
import os
import re
import shutil
import signal
import struct

import pytest

from helpers import REPO_ROOT, scaled
from helpers.apps import AppFiles, sigrecorder_cmd
from helpers.migrations import INIT, MigrationsDir

ARM64_BIN = os.environ.get("BANDAGE_ARM64")
if not ARM64_BIN:
    pytest.skip("BANDAGE_ARM64 is not set (make check-arm64 runs these tests against "
                "dist/bandage-linux-arm64)", allow_module_level=True)

QEMU = "qemu-aarch64-static"
EM_AARCH64 = 183
PT_INTERP = 3
READY = re.compile(r"database ready after (\d+) attempts? in (\d+) ms")
SCHEMA = """\
CREATE TABLE "Account" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    CONSTRAINT "Account_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "Account_email_key" ON "Account"("email");
"""


@pytest.fixture(scope="module")
def qemu():
    path = shutil.which(QEMU)
    if not path:
        pytest.fail(f"{QEMU} not found: apt-get install qemu-user-static")
    return path


@pytest.fixture(scope="session")
def bandage_bin():
    """Overrides conftest's: run_bandage starts the arm64 binary (behind qemu)."""
    path = os.path.abspath(ARM64_BIN)
    if not os.access(path, os.X_OK):
        pytest.fail(f"BANDAGE_ARM64={ARM64_BIN}: not an executable file (make dist)")
    return path


@pytest.fixture
def run_arm64(run_bandage, qemu):
    """``run_arm64(args, **kw)``: run_bandage with qemu in front; qemu is
    slower to start, so the default wait is longer."""
    def start(args, **kw):
        kw.setdefault("timeout", scaled(40))
        return run_bandage(args, exec_prefix=[qemu], **kw)
    return start


def elf_facts(path):
    """(e_machine, has PT_INTERP) of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not ELF64 LE"
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return machine, PT_INTERP in types


def test_binary_is_static_aarch64(bandage_bin):
    machine, interp = elf_facts(bandage_bin)
    assert machine == EM_AARCH64, f"e_machine {machine}, not aarch64 ({EM_AARCH64})"
    assert not interp, "has a PT_INTERP: not a static binary"


def test_version(run_arm64):
    with open(os.path.join(REPO_ROOT, "VERSION")) as f:
        version = f.read().strip()
    run = run_arm64(["--version"], pid1=False)
    assert run.wait() == 0, run.stderr
    assert version in run.stdout + run.stderr, (run.stdout, run.stderr)


def test_help(run_arm64):
    run = run_arm64(["--help"], pid1=False)
    assert run.wait() == 0, run.stderr
    for flag in ("--database-url", "--reset", "--confirm-database", "--webhook-url"):
        assert flag in run.stdout, f"{flag} missing from --help:\n{run.stdout}"


def test_wait_over_tcp(run_arm64, pg):
    run = run_arm64(["--database-url", pg.dsn(sslmode="disable"), "--wait-timeout", "20"])
    run.wait_exit_code(0)
    assert READY.search(run.stderr), run.stderr


@pytest.mark.parametrize("tls", ["TLSv1.2", "TLSv1.3"])
def test_wait_over_tls_verify_full(run_arm64, pg, tls):
    """Both protocol versions the OpenSSL build keeps (TLS 1.2 with ECDHE:
    finite-field DH is not built in)."""
    dsn = pg.dsn(host="localhost", sslmode="verify-full", sslrootcert=pg.ca_file,
                 ssl_min_protocol_version=tls, ssl_max_protocol_version=tls)
    run = run_arm64(["--database-url", dsn, "--wait-timeout", "20"])
    run.wait_exit_code(0)
    assert READY.search(run.stderr), run.stderr


def test_tls_verify_full_with_a_wrong_ca_exits_77(run_arm64, pg):
    dsn = pg.dsn(host="localhost", sslmode="verify-full", sslrootcert=pg.wrong_ca_file)
    run = run_arm64(["--database-url", dsn, "--wait-timeout", "20"])
    run.wait_exit_code(77)
    assert "certificate verify failed" in run.stderr, run.stderr


def test_reset_with_a_schema_file(run_arm64, db, tmp_path):
    db.execute('CREATE TABLE "Old" (id int); INSERT INTO "Old" VALUES (1)')
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    run = run_arm64(["--database-url", db.dsn(sslmode="require"), "--reset", "always",
                     "--confirm-database", db.name, "--schema-file", str(schema),
                     "--", "/bin/sh", "-c", "exit 0"])
    run.wait_exit_code(0)
    assert "reset committed" in run.stderr, run.stderr
    tables = {r[0] for r in db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"Account"}, tables


def test_plan_classifies_a_breaking_statement(run_arm64, db, tmp_path):
    """The statement checks' parser (libpg_query, cross-built) works on arm64."""
    mdir = MigrationsDir(tmp_path, migrations=[("20240101000000_init", INIT)])
    args = ["--database-url", db.dsn(sslmode="require"), "--migrations", mdir.path]
    run_arm64(args).wait_exit_code(0)
    mdir.add("20240102000000_contract", '-- contract\nALTER TABLE "User" DROP COLUMN "name";\n')
    plan = run_arm64([*args, "--plan", "true"])
    plan.wait_exit_code(0)
    assert re.search(r'^ {11}line 2: breaking drop-column on "User" \(column name\)',
                     plan.stdout, re.M), plan.stdout


def test_https_webhook(run_arm64, webhook_https):
    run = run_arm64(["--webhook-url", webhook_https.url,
                     "--webhook-ca-file", webhook_https.ca_file])
    run.wait_exit_code(0)
    (req,) = webhook_https.requests
    assert req.json()["event"] == "deploy" and req.status == 200
    assert "delivered (HTTP 200)" in run.stderr, run.stderr


def test_exit_status_of_the_app_as_pid1(run_arm64):
    run = run_arm64(["--", "/bin/sh", "-c", "exit 7"], pid1=True)
    run.wait_exit_code(7)


def test_sigterm_reaches_the_app_as_pid1(run_arm64, app_dir):
    """bandage (emulated) is PID 1; the app (native) is its child; SIGTERM to
    bandage reaches the app, whose exit status bandage exits with."""
    run = run_arm64(["--", *sigrecorder_cmd(app_dir, "--on-term", "exit:3")], pid1=True)
    app = AppFiles(app_dir)
    app.wait_ready(run, timeout=scaled(40))
    assert app.status()["ppid"] == 1, app.status()
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(3)
    assert app.signals() == [signal.SIGTERM]
