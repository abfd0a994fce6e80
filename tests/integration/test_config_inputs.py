"""What users put in bandage's settings, against the real PostgreSQL of the
harness: Prisma's DATABASE_URL with each of its parameters, ``?schema=``
choosing what a reset rebuilds, unknown parameters, a password with an
unescaped '@', DIRECT_URL beside a pgbouncer URL, a --schema-file that is a
directory, and secrets on the command line (issue 8 items 2-4, issue 9 items
1, 5)."""
import os
import shutil
import subprocess
import uuid

import pytest

from helpers import IS_ROOT, scaled, wait_until


def seed(db, schema="public"):
    """A table with rows that must survive whatever bandage refuses to do."""
    db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    db.execute(f'CREATE TABLE "{schema}".keep (id int)')
    db.execute(f'INSERT INTO "{schema}".keep SELECT generate_series(1, 150)')


def kept_rows(db, schema="public"):
    return db.execute(f'SELECT count(*) FROM "{schema}".keep')[0][0]


def exists(db, name):
    return db.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]


def schema_file(tmp_path, sql):
    path = tmp_path / "schema.sql"
    path.write_text(sql)
    return str(path)


# --- Prisma's DATABASE_URL -----------------------------------------------------------

PRISMA_PARAMS = [
    {"schema": "public"},
    {"connection_limit": 5},
    {"pool_timeout": 10},
    {"pgbouncer": "false"},
    {"socket_timeout": 30},
    {"statement_cache_size": 0},
    {"max_connection_lifetime": 60},
    {"max_idle_connection_lifetime": 300},
    {"sslmode": "disable"},
    {"sslmode": "prefer"},
    {"sslmode": "require"},
    {"sslaccept": "accept_invalid_certs", "sslmode": "require"},
    {"connect_timeout": 5},
    {"application_name": "web app"},
    {"options": "-c statement_timeout=5000"},
    {"channel_binding": "prefer"},
]


@pytest.mark.parametrize("params", PRISMA_PARAMS,
                         ids=["&".join(f"{k}={v}" for k, v in p.items()) for p in PRISMA_PARAMS])
def test_prisma_parameter_is_accepted(run_bandage, db, params):
    """Each parameter Prisma users write: bandage connects, the app gets the
    URL unchanged. (Before: exit 64, "libpq cannot parse it".)"""
    url = db.dsn(**params)
    run = run_bandage(["--wait-timeout", "20", "--", "/bin/sh", "-c",
                       'printf %s "$DATABASE_URL"'], env={"DATABASE_URL": url})
    assert run.wait() == 0, run.stderr
    assert "database ready" in run.stderr, run.stderr
    assert run.stdout == url


def test_prisma_init_url_resets_and_hooks_get_it_unchanged(run_bandage, db, tmp_path):
    """The URL `prisma init` writes plus every pool parameter, through a whole
    reset; the --schema-command hook sees DATABASE_URL exactly as given."""
    seed(db)
    url = db.dsn(schema="public", connection_limit=3, pool_timeout=5, socket_timeout=10,
                 statement_cache_size=50, sslmode="require", connect_timeout=5)
    seen = tmp_path / "hook-url"
    run = run_bandage(["--reset", "always", "--confirm-database", db.name,
                       "--schema-file", schema_file(tmp_path, "CREATE TABLE fresh (id int);\n"),
                       "--schema-command", f'printf %s "$DATABASE_URL" > {seen}'],
                      env={"DATABASE_URL": url})
    assert run.wait() == 0, run.stderr
    assert exists(db, "public.fresh") and not exists(db, "public.keep")
    assert seen.read_text() == url


def test_sslaccept_strict_verifies_with_prisma_sslcert(run_bandage, db, pg):
    """sslaccept=strict with Prisma's sslcert (the CA file) is libpq's
    verify-full with that root: the harness CA passes, an unrelated one is a
    trust failure (exit 77)."""
    ok = run_bandage(["--wait-timeout", "20"],
                     env={"DATABASE_URL": db.dsn(sslaccept="strict", sslcert=pg.ca_file)})
    assert ok.wait() == 0, ok.stderr
    assert "sslmode=verify-full" in ok.stderr, ok.stderr
    bad = run_bandage(["--wait-timeout", "20"],
                      env={"DATABASE_URL": db.dsn(sslaccept="strict",
                                                  sslcert=pg.wrong_ca_file)})
    assert bad.wait() == 77, bad.stderr
    assert "certificate" in bad.stderr, bad.stderr


def test_prisma_default_accepts_an_unverified_certificate(run_bandage, db):
    """Without sslaccept=strict Prisma does not verify: neither does bandage
    (the harness CA is in no system bundle, yet require connects)."""
    run = run_bandage(["--wait-timeout", "20"],
                      env={"DATABASE_URL": db.dsn(sslmode="require", sslaccept="accept_invalid_certs")})
    assert run.wait() == 0, run.stderr


@pytest.mark.parametrize("query, named", [
    ("shema=public", "'shema'"),
    ("connection_limits=3", "'connection_limits'"),
    ("sslidentity=/id.p12&sslpassword=idpass", "sslidentity"),
    ("pgbouncer=yes", "pgbouncer"),
    ("sslcert=ca.pem", "sslcert"),
], ids=["typo", "plural", "sslidentity", "pgbouncer-yes", "relative-sslcert"])
def test_refused_parameter_exits_64_naming_it(run_bandage, db, tmp_path, query, named):
    """Nothing is touched: the reset asked for never starts."""
    seed(db)
    url = db.dsn() + "?" + query
    run = run_bandage(["--reset", "always", "--confirm-database", db.name,
                       "--schema-file", schema_file(tmp_path, "CREATE TABLE fresh (id int);\n")],
                      env={"DATABASE_URL": url})
    assert run.wait() == 64, run.stderr
    assert "DATABASE_URL:" in run.stderr and named in run.stderr, run.stderr
    assert "cannot parse" not in run.stderr, run.stderr
    assert "idpass" not in run.stderr
    assert kept_rows(db) == 150 and not exists(db, "public.fresh")


def keyword_value(pg, db, *extra):
    """A key=value conninfo for ``db`` as the superuser, password last."""
    return " ".join([f"host={pg.host}", f"port={pg.port}", f"dbname={db.name}", "user=postgres",
                     *extra, f"password={pg.superuser_password}"])


@pytest.mark.parametrize("setting", ["DATABASE_URL", "DIRECT_URL", "--database-url"])
def test_bad_keyword_of_key_value_pairs_is_named(run_bandage, db, pg, tmp_path, setting):
    """libpq's own reason, naming the keyword, on one line naming the setting;
    advice for key=value pairs, not for the URL form the user did not choose.
    (Before: "libpq cannot parse it; use postgresql://... or key=value
    pairs".) Nothing is touched."""
    seed(db)
    bad = keyword_value(pg, db, "sslmdoe=require")
    args = ["--reset", "always", "--confirm-database", db.name,
            "--schema-file", schema_file(tmp_path, "CREATE TABLE fresh (id int);\n")]
    env = {"DATABASE_URL": db.dsn()}
    if setting.startswith("--"):
        args += [setting, bad]
        env = {}
    else:
        env[setting] = bad
    run = run_bandage(args, env=env)
    assert run.wait() == 64, run.stderr
    named = [line for line in run.stderr.splitlines() if "sslmdoe" in line]
    assert named == [f'bandage: {setting}: libpq refused it: invalid connection option '
                     f'"sslmdoe"; check the keyword\'s spelling'], run.stderr
    assert "cannot parse" not in run.stderr and "postgresql://" not in run.stderr
    assert pg.superuser_password not in run.stderr
    assert kept_rows(db) == 150 and not exists(db, "public.fresh")


def test_word_after_an_unquoted_password_is_never_shown(run_bandage, db, pg):
    """`password=correct horse`: libpq stops at "horse", a piece of the
    password. Not shown; the fix (quotes) is."""
    piece = "h0rse" + uuid.uuid4().hex[:8]
    run = run_bandage(["--wait-timeout", "5"],
                      env={"DATABASE_URL": keyword_value(pg, db) + " " + piece})
    assert run.wait() == 64, run.stderr
    assert piece not in run.stderr and pg.superuser_password not in run.stderr
    assert "DATABASE_URL: libpq refused the word after the password" in run.stderr, run.stderr
    assert "password='...'" in run.stderr


def test_url_schema_chooses_what_the_reset_rebuilds(run_bandage, db, tmp_path):
    """?schema=other is the default of --schemas: `other` is rebuilt, public
    is left alone."""
    seed(db, "public")
    seed(db, "other")
    run = run_bandage(["--reset", "always", "--confirm-database", db.name,
                       "--schema-file",
                       schema_file(tmp_path, "CREATE TABLE other.fresh (id int);\n")],
                      env={"DATABASE_URL": db.dsn(schema="other")})
    assert run.wait() == 0, run.stderr
    assert "other" in run.stderr
    assert exists(db, "other.fresh") and not exists(db, "other.keep")
    assert kept_rows(db, "public") == 150

    # BANDAGE_SCHEMAS wins over the URL
    run = run_bandage(["--reset", "always", "--confirm-database", db.name,
                       "--schema-file",
                       schema_file(tmp_path, "CREATE TABLE public.fresh (id int);\n")],
                      env={"DATABASE_URL": db.dsn(schema="other"), "BANDAGE_SCHEMAS": "public"})
    assert run.wait() == 0, run.stderr
    assert exists(db, "public.fresh") and not exists(db, "public.keep")
    assert exists(db, "other.fresh")


def test_schemas_list_with_spaces(run_bandage, db, tmp_path):
    """`public, audit` names public and audit, not ' audit'."""
    seed(db, "public")
    seed(db, "audit")
    run = run_bandage(["--reset", "always", "--confirm-database", db.name, "--schemas",
                       "public, audit", "--schema-file",
                       schema_file(tmp_path, "CREATE TABLE audit.fresh (id int);\n")],
                      env={"DATABASE_URL": db.dsn()})
    assert run.wait() == 0, run.stderr
    assert not exists(db, "public.keep") and not exists(db, "audit.keep")
    assert exists(db, "audit.fresh")
    assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ' audit'")[0][0] == 0


def test_unescaped_at_in_password_never_shown(run_bandage, db, pg):
    """postgresql://u:p@ss@w0rd...@host: read as Prisma reads it (the last '@'
    ends the user info), so bandage logs in and logs host=127.0.0.1, never a
    piece of the password. (Before: libpq took 'ss@w0rd-...@127.0.0.1' for the
    host, logged it, and could not connect.)"""
    tail = uuid.uuid4().hex[:10]
    role = pg.create_role(f"at_{tail}", password=f"p@ss@w0rd-{tail}")
    url = f"postgresql://{role.name}:{role.password}@{pg.host}:{pg.port}/{db.name}"
    run = run_bandage(["--wait-timeout", "20", "--log-level", "debug"],
                      env={"DATABASE_URL": url})
    assert run.wait() == 0, run.stderr
    assert f"host={pg.host}" in run.stderr, run.stderr
    for piece in ("p@ss", "ss@w0rd", "w0rd-", tail + "@"):
        assert piece not in run.stderr, run.stderr


# --- DIRECT_URL beside a pooler URL ------------------------------------------------------

def test_pgbouncer_url_refuses_reset_until_direct_url(run_bandage, db, tmp_path):
    seed(db)
    sql = schema_file(tmp_path, "CREATE TABLE fresh (id int);\n")
    args = ["--reset", "always", "--confirm-database", db.name, "--schema-file", sql]
    pooled = db.dsn(pgbouncer="true")
    run = run_bandage(args, env={"DATABASE_URL": pooled})
    assert run.wait() == 64, run.stderr
    assert "pgbouncer=true" in run.stderr and "DIRECT_URL" in run.stderr, run.stderr
    assert kept_rows(db) == 150

    # waiting alone through the pooler URL is fine
    run = run_bandage(["--wait-timeout", "20"], env={"DATABASE_URL": pooled})
    assert run.wait() == 0, run.stderr

    # with DIRECT_URL the reset runs over it; the hook still gets DATABASE_URL
    seen = tmp_path / "hook-url"
    run = run_bandage(args + ["--schema-command", f'printf %s "$DATABASE_URL" > {seen}'],
                      env={"DATABASE_URL": pooled, "DIRECT_URL": db.dsn()})
    assert run.wait() == 0, run.stderr
    assert exists(db, "public.fresh") and not exists(db, "public.keep")
    assert seen.read_text() == pooled


# --- --schema-file -------------------------------------------------------------------------

def test_schema_file_directory_exits_64_database_untouched(run_bandage, db, tmp_path):
    """What `docker run -v /missing/schema.sql:/schema.sql` leaves: a directory.
    (Before: read as empty, 150 rows dropped, exit 0.)"""
    seed(db)
    directory = tmp_path / "schema.sql"
    directory.mkdir()
    run = run_bandage(["--reset", "always", "--confirm-database", db.name,
                       "--schema-file", str(directory)], env={"DATABASE_URL": db.dsn()})
    assert run.wait(scaled(10)) == 64, run.stderr
    assert "--schema-file" in run.stderr and "directory" in run.stderr, run.stderr
    assert "waiting for the database" not in run.stderr, "it connected first"
    assert kept_rows(db) == 150


# --- secrets on the command line -----------------------------------------------------------

def read_cmdline_as_nobody(pid):
    ps = subprocess.run(["runuser", "-u", "nobody", "--", "ps", "-o", "args=", "-p", str(pid)],
                        capture_output=True, text=True, timeout=scaled(10))
    raw = subprocess.run(["runuser", "-u", "nobody", "--", "cat", f"/proc/{pid}/cmdline"],
                         capture_output=True, timeout=scaled(10))
    assert ps.returncode == 0 and raw.returncode == 0, (ps.stderr, raw.stderr)
    return ps.stdout, raw.stdout.decode(errors="replace")


@pytest.mark.skipif(not IS_ROOT or shutil.which("runuser") is None,
                    reason="reading another user's command line needs root and runuser")
def test_secrets_blanked_from_command_line(run_bandage, db, pg, webhook, app_dir, pid1):
    """--database-url / --direct-url with a password and --webhook-url: any
    user could read them in ps for as long as PID 1 lives. Blanked once
    parsed; bandage still uses them whole; the app's arguments are its own."""
    token = "tok" + uuid.uuid4().hex
    hook = webhook.url_for(f"/services/T0/B0/{token}")
    ready = os.path.join(app_dir, "ready")
    run = run_bandage(["--database-url", db.dsn(), f"--direct-url={db.dsn()}",
                       "--webhook-url", hook, "--wait-timeout", "20", "--",
                       "/bin/sh", "-c", f"touch {ready}; sleep 60", "app", "--keep-me"],
                      pid1=pid1)
    wait_until(lambda: os.path.exists(ready) or run.poll() is not None, scaled(20),
               "the app to start")
    assert os.path.exists(ready), run.stderr
    ps_line, cmdline = read_cmdline_as_nobody(run.pid)
    for text in (ps_line, cmdline):
        assert pg.superuser_password not in text, text
        assert token not in text, text
        assert "--database-url" in text and "--webhook-url" in text, text
    # the app's own arguments (part of bandage's argv) are untouched
    assert f"touch {ready}; sleep 60\0app\0--keep-me" in cmdline, cmdline
    # bandage used the whole values: it connected, and posted to the token's path
    assert "database ready" in run.stderr, run.stderr
    requests = webhook.wait_for(1)
    assert requests[0].path == f"/services/T0/B0/{token}"
    run.send_signal(15)
    assert run.wait() == 143, run.stderr


def test_secret_flag_warns_once_without_the_secret(run_bandage, db, pg):
    run = run_bandage(["--database-url", db.dsn(), "--wait-timeout", "20"])
    assert run.wait() == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines()
                if line.startswith("bandage: warn:") and "--database-url" in line]
    assert len(warnings) == 1, run.stderr
    assert "environment" in warnings[0] and "DATABASE_URL" in warnings[0]
    assert pg.superuser_password not in run.stderr
