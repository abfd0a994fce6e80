"""Peer tools the database rows install for themselves.

dbmate comes from npm (`npm install --prefix DIR dbmate`): the package
ships dbmate's static Go binary per platform (@dbmate/linux-x64, ...), and
the bench runs that binary directly, not the Node launcher in
node_modules/.bin (which would add Node's start-up to every run). The
directory is BENCH_TOOLS, default bench/.tools; nothing else is fetched.
"""
import glob
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("BENCH_TOOLS", os.path.join(HERE, ".tools"))


def dbmate():
    """(path to dbmate's binary, None) or (None, why not)."""
    def found():
        hits = sorted(glob.glob(os.path.join(TOOLS, "node_modules", "@dbmate", "*", "bin",
                                             "dbmate")))
        return hits[0] if hits else None
    path = found()
    if path:
        return path, None
    if not shutil.which("npm"):
        return None, "no npm to install dbmate with"
    os.makedirs(TOOLS, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", TOOLS, "--no-audit", "--no-fund",
                        "--loglevel", "error", "dbmate"],
                       capture_output=True, text=True, timeout=600)
    path = found()
    if r.returncode != 0 or not path:
        return None, f"npm install dbmate failed: {(r.stderr or r.stdout).strip()[-300:]}"
    return path, None


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


# A server's data directory goes on tmpfs when there is room: the bench
# measures what the server's CPU does (fsync is off anyway), and a
# journal-less ext4, as on the bench machine, makes every file created within
# minutes of a mass delete (DROP DATABASE of thousands of tables) scan past
# the deleted inodes (ext4's recently_deleted(), seen with perf): the same
# psql -f of 3,000 tables took 7.9 s or 17.2 s depending on what ran before.
SHM = "/dev/shm"
SHM_NEEDED = 4 << 30


def data_tmpdir(prefix):
    """A new directory for servers' data: in BENCH_PGDATA_DIR if set, else on
    /dev/shm if it has 4 GiB free, else in the system's temp directory.
    Returns (path, where: a note for the log)."""
    where = os.environ.get("BENCH_PGDATA_DIR")
    if not where and os.path.isdir(SHM) and os.access(SHM, os.W_OK):
        st = os.statvfs(SHM)
        if st.f_bavail * st.f_frsize >= SHM_NEEDED:
            where = SHM
    path = tempfile.mkdtemp(prefix=prefix, dir=where or None)
    os.chmod(path, 0o755)
    return path, f"servers' data in {os.path.dirname(path)}"
