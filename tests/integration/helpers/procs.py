"""Reading the host's /proc: parents, states, process trees, namespaces.

The harness runs in the host PID namespace, so it sees every process of a
bandage PID namespace under its host pid. All functions tolerate processes
that vanish while being read.
"""
import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    """One line of ``/proc/<pid>/stat``, the fields the tests need."""
    pid: int
    comm: str
    state: str   # 'R', 'S', 'D', 'Z' (zombie), 'T' (stopped), ...
    ppid: int
    pgrp: int
    session: int


def proc_stat(pid):
    """The :class:`ProcStat` of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    lpar, rpar = data.index("("), data.rindex(")")
    fields = data[rpar + 2:].split()
    return ProcStat(pid=int(data[:lpar]), comm=data[lpar + 1:rpar], state=fields[0],
                    ppid=int(fields[1]), pgrp=int(fields[2]), session=int(fields[3]))


def all_pids():
    """Every pid (thread group) in the host /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def all_stats():
    """:class:`ProcStat` of every live or zombie process on the host."""
    stats = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            stats.append(st)
    return stats


def children_of(pid, stats=None):
    """Direct children of ``pid``, zombies included (they are in /proc until reaped)."""
    stats = all_stats() if stats is None else stats
    return [st for st in stats if st.ppid == pid]


def descendants_of(pid, stats=None):
    """Every process below ``pid`` in the parent tree (not including ``pid``)."""
    stats = all_stats() if stats is None else stats
    by_parent = {}
    for st in stats:
        by_parent.setdefault(st.ppid, []).append(st)
    out, todo = [], [pid]
    while todo:
        for st in by_parent.get(todo.pop(), []):
            out.append(st)
            todo.append(st.pid)
    return out


def zombies_among(stats):
    return [st for st in stats if st.state == "Z"]


def ns_pids(pid):
    """The ``NSpid`` line of ``pid``: its pid in each nested namespace, host first."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return None


def has_env(pid, token):
    """Whether ``token`` (``b"NAME=value"``) is in the environment of ``pid``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return token in f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def exists(pid):
    """Alive (not a zombie, not gone)."""
    st = proc_stat(pid)
    return st is not None and st.state != "Z"


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all(pids_fn, timeout=5.0):
    """SIGKILL every pid ``pids_fn()`` returns, again and again until it returns none.

    Repeating catches processes forked while the previous pass ran. Stops
    each process first (SIGSTOP), so a forking loop cannot outrun the kill.
    Bounded by ``timeout``; returns the pids still alive (normally none).
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in pids_fn() if exists(p)]
        if not pids or time.monotonic() > deadline:
            return pids
        for p in pids:
            kill_quietly(p, signal.SIGSTOP)
        for p in pids:
            kill_quietly(p, signal.SIGKILL)
        time.sleep(0.01)
