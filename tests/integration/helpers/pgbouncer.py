"""A real pgbouncer (Debian's package), in transaction-pooling mode unless
told, in front of one harness database, on a free loopback port, run as
``postgres`` when root (pgbouncer refuses to run as root).

``server_round_robin = 1`` over a pool kept warm (``min_pool_size``) makes
consecutive transactions of one client land on different server connections,
as they do in production under load: what breaks session advisory locks.
"""
import os
import pwd
import shutil
import subprocess
import tempfile

import psycopg

from . import IS_ROOT, scaled, wait_until
from .pg import free_port


class PgBouncer:
    POOL = 4

    def __init__(self, binary, cluster, database, mode="transaction", quiet=False):
        """``mode``: pgbouncer's pool_mode. ``quiet``: no warm-up and
        pgbouncer's default order (the server connection freed last is
        handed out first), so one client alone gets the same server process
        for each statement, as on a quiet production pool."""
        self.cluster = cluster
        self.database = database
        self.quiet = quiet
        self.dir = tempfile.mkdtemp(prefix="bandage-pgbouncer-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        password = cluster.superuser_password
        self.conf = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write(f'"postgres" "{password}"\n')
        with open(self.conf, "w") as f:
            f.write(f"""[databases]
{database.name} = host={cluster.host} port={cluster.port} dbname={database.name} user=postgres password={password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = plain
auth_file = {self.dir}/userlist.txt
pool_mode = {mode}
default_pool_size = {self.POOL}
min_pool_size = {0 if quiet else self.POOL}
server_round_robin = {0 if quiet else 1}
server_login_retry = 1
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        if IS_ROOT:
            pw = pwd.getpwnam("postgres")
            for name in os.listdir(self.dir):
                os.chown(os.path.join(self.dir, name), pw.pw_uid, pw.pw_gid)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        argv = [binary, self.conf]
        if IS_ROOT:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._warm, scaled(15), lambda: f"pgbouncer to serve {self.POOL} server "
                   f"connections; log:\n{self.log()}")

    def dsn(self):
        return self.cluster.dsn(dbname=self.database.name, port=self.port)

    def _warm(self):
        """True once consecutive transactions of one client reach different
        server processes (a quiet pool: once it serves a client). POOL clients first hold a transaction each, which
        makes pgbouncer open POOL server connections at once (min_pool_size
        alone left the pool short past the wait's 15 s bound, in make check
        and from a fresh cluster)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"pgbouncer exited {self.proc.returncode}:\n{self.log()}")
        if self.quiet:
            try:
                with psycopg.connect(self.dsn(), autocommit=True, prepare_threshold=None,
                                     connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return False
        holders = []
        try:
            for _ in range(self.POOL):
                conn = psycopg.connect(self.dsn(), prepare_threshold=None, connect_timeout=2)
                holders.append(conn)
                conn.execute("SELECT pg_backend_pid()")  # opens a transaction: holds a server
            for conn in holders:
                conn.rollback()
            with psycopg.connect(self.dsn(), autocommit=True, prepare_threshold=None,
                                 connect_timeout=2) as conn:
                pids = {conn.execute("SELECT pg_backend_pid()").fetchone()[0] for _ in range(8)}
                return len(pids) > 1
        except psycopg.OperationalError:
            return False
        finally:
            for conn in holders:
                conn.close()

    def log(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(scaled(10))
        shutil.rmtree(self.dir, ignore_errors=True)
