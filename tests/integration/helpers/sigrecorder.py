#!/usr/bin/python3
"""sigrecorder: the test app that bandage supervises in the supervisor tests.

Run as ``/usr/bin/python3 -I -S sigrecorder.py --dir DIR [options]``. Files,
all in DIR and prefixed with NAME (``--name``, default ``app``):

  NAME.status.json  written first, before Python opens anything of its own:
                    pid, ppid, pgid, sid, parent_pgid, the open descriptors
                    (``fds``, probed with fstat, so the probe itself opens
                    none), SigBlk/SigIgn/SigCgt from /proc/self/status. Note
                    that Python itself sets SIGPIPE and SIGXFSZ to SIG_IGN at
                    startup, so ``sigign`` here is not purely inherited: read
                    /proc/self/status from a non-Python app for that.
  NAME.signals      one line per signal received, "<signo> <ppid at receipt>",
                    appended by the handler as it runs (handlers are installed
                    for every catchable signal except the fault signals and the
                    two glibc reserves, 32 and 33).
  NAME.ready        written (atomically) once handlers are installed and the
                    requested children exist: JSON with pid, pgid and results
                    (e.g. how many orphans found bandage as their new parent).
  NAME.exit         written just before exiting on request: the exit code.

Options:
  --on SIG=ACTION      per-signal behaviour; ACTION is ``record`` (default:
                       handle, record, keep running), ``exit:N`` (record, then
                       exit N), ``ignore`` (SIG_IGN) or ``default`` (SIG_DFL).
                       SIG is a name (TERM, SIGTERM) or number; RTMIN+2 works.
  --on-term ACTION     shorthand for --on TERM=ACTION.
  --term-delay SECS    on an ``exit:N`` action, take this long to shut down
                       (stands in for an app's graceful shutdown work).
  --exit CODE          exit with CODE right after writing the ready file.
  --orphans N          before ready: make N orphaned grandchildren that find
                       their new parent and exit (needs --orphan-helper).
  --idle-orphans N[,setsid][,stubborn]
                       before ready: make N orphaned grandchildren that stay,
                       waiting for a signal: leftovers. SIGTERM ends each one
                       after it appended its pid to NAME.orphans-terminated
                       (",stubborn": appends, does not end; SIGKILL must).
                       With ",setsid" in a session and group of their own.
  --zombie-orphans N   before ready: hand N already-dead grandchildren (zombies)
                       to bandage in one step (needs --orphan-helper).
  --orphan-helper PATH the compiled helpers/orphans.c.
  --leftover SPEC      before ready: start another sigrecorder that outlives
                       this one. SPEC is NAME[,setsid][,term=ACTION][,delay=S];
                       defaults: same process group, term=exit:0, delay=0.3.
                       ``setsid`` makes it a daemon in its own session.
  --ready-fd FD        also write one byte to FD and close it when ready (used
                       by a parent sigrecorder to wait for its leftovers).
"""
import argparse
import json
import os
import select
import signal
import sys
import time

PYTHON = sys.executable or "/usr/bin/python3"
FAULT_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP,
                 signal.SIGSYS}
UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def open_fds():
    """Descriptors open in this process, found with fstat (opens nothing)."""
    import resource
    limit = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 65536)
    fds = []
    for fd in range(limit):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


def fd_target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError as e:
        return f"? {e}"


def proc_status_fields(*names):
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in names:
                out[key] = value.strip()
    return out


def parse_signal(text):
    t = text.strip().upper()
    if t.startswith("SIG"):
        t = t[3:]
    if t.isdigit():
        return int(t)
    if t.startswith("RTMIN"):
        return signal.SIGRTMIN + int(t[5:] or 0)
    if t.startswith("RTMAX"):
        return signal.SIGRTMAX + int(t[5:] or 0)
    return int(getattr(signal, "SIG" + t))


def catchable_signals():
    sigs = []
    for n in range(1, signal.NSIG):
        if n in UNCATCHABLE or n in FAULT_SIGNALS or n in (32, 33):
            continue
        sigs.append(n)
    return sigs


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.rename(tmp, path)


class App:
    def __init__(self, opts, status):
        self.opts = opts
        self.status = status
        self.base = os.path.join(opts.dir, opts.name)
        self.exit_code = None
        self.results = {}
        self.leftover_pids = {}

    # --- signals -------------------------------------------------------------

    def install_handlers(self):
        actions = {}
        for spec in self.opts.on:
            sig, _, action = spec.partition("=")
            actions[parse_signal(sig)] = action
        self.actions = actions
        self.log_fd = os.open(self.base + ".signals",
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in catchable_signals():
            action = actions.get(sig, "record")
            if action == "ignore":
                signal.signal(sig, signal.SIG_IGN)
            elif action == "default":
                signal.signal(sig, signal.SIG_DFL)
            else:
                signal.signal(sig, self.on_signal)

    def on_signal(self, signo, frame):
        # Record only; acting on it happens in the main loop, so every signal
        # delivered in one batch gets recorded before the app exits.
        os.write(self.log_fd, f"{signo} {os.getppid()}\n".encode())
        action = self.actions.get(signo, "record")
        if action.startswith("exit:") and self.exit_code is None:
            self.exit_code = int(action[5:])

    # --- children ------------------------------------------------------------

    def make_orphans(self, mode, n, extra=()):
        helper = self.opts.orphan_helper
        if not helper:
            sys.exit("sigrecorder: --orphans/--zombie-orphans need --orphan-helper")
        r, w = os.pipe2(os.O_CLOEXEC)
        argv = [helper, mode, str(n)] + ([str(os.getppid())] if mode != "zombie" else [])
        argv += list(extra)
        pid = os.posix_spawn(helper, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, w, 1)])
        os.close(w)
        data = bytearray()
        while True:
            chunk = os.read(r, 65536)  # EOF once every live orphan has exited
            if not chunk:
                break
            data += chunk
        os.close(r)
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        if code != 0:
            sys.exit(f"sigrecorder: {helper} {mode} {n} exited {code}")
        if mode == "idle":
            self.results["idle_orphans"] = n
            self.results["idle_orphans_reparented_to_bandage"] = data.count(b"y")
        elif mode == "live":
            self.results["orphans"] = n
            self.results["orphans_reported"] = len(data)
            self.results["orphans_reparented_to_bandage"] = data.count(b"y")
        else:
            self.results["zombie_orphans"] = n

    def start_leftover(self, spec):
        parts = spec.split(",")
        name, setsid, term, delay = parts[0], False, "exit:0", "0.3"
        for p in parts[1:]:
            if p == "setsid":
                setsid = True
            elif p.startswith("term="):
                term = p[5:]
            elif p.startswith("delay="):
                delay = p[6:]
            else:
                sys.exit(f"sigrecorder: bad --leftover part {p!r}")
        r, w = os.pipe2(os.O_CLOEXEC)
        argv = [PYTHON, "-I", "-S", os.path.abspath(__file__), "--dir", self.opts.dir,
                "--name", name, "--on", f"TERM={term}", "--term-delay", delay,
                "--ready-fd", str(w)]
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                if setsid:
                    os.setsid()
                os.set_inheritable(w, True)
                os.execv(PYTHON, argv)
            finally:
                os._exit(127)
        os.close(w)
        ready, _, _ = select.select([r], [], [], 20)
        ok = ready and os.read(r, 1) == b"1"
        os.close(r)
        if not ok:
            sys.exit(f"sigrecorder: leftover {name} did not become ready")
        self.leftover_pids[name] = pid

    # --- main ----------------------------------------------------------------

    def ready(self):
        info = dict(self.status, pid=os.getpid(), pgid=os.getpgid(0), results=self.results,
                    leftovers=self.leftover_pids)
        write_atomic(self.base + ".ready", json.dumps(info))
        if self.opts.ready_fd is not None:
            os.write(self.opts.ready_fd, b"1")
            os.close(self.opts.ready_fd)

    def finish(self, code):
        write_atomic(self.base + ".exit", str(code))
        os._exit(code)

    def run(self):
        o = self.opts
        if o.orphans:
            self.make_orphans("live", o.orphans)
        if o.zombie_orphans:
            self.make_orphans("zombie", o.zombie_orphans)
        if o.idle_orphans:
            n, *extra = o.idle_orphans.split(",")
            self.make_orphans("idle", int(n), [
                "setsid" if "setsid" in extra else "group", self.base + ".orphans-terminated",
                "stay" if "stubborn" in extra else "exit"])
        for spec in o.leftover:
            self.start_leftover(spec)
        self.install_handlers()
        self.ready()
        if o.exit is not None:
            self.finish(o.exit)
        while self.exit_code is None:
            # Handlers run when select is interrupted; the wakeup fd makes a
            # signal that came before select return it at once (no lost wakeup).
            select.select([self.wake_r], [], [])
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if o.term_delay:
            time.sleep(o.term_delay)  # the app's own shutdown work, not synchronisation
        self.finish(self.exit_code)


def main():
    # Before anything else opens a descriptor or touches a disposition.
    fds = open_fds()
    fields = proc_status_fields("SigBlk", "SigIgn", "SigCgt", "NSpid")
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--name", default="app")
    ap.add_argument("--on", action="append", default=[])
    ap.add_argument("--on-term")
    ap.add_argument("--term-delay", type=float, default=0.0)
    ap.add_argument("--exit", type=int)
    ap.add_argument("--orphans", type=int, default=0)
    ap.add_argument("--zombie-orphans", type=int, default=0)
    ap.add_argument("--idle-orphans")
    ap.add_argument("--orphan-helper")
    ap.add_argument("--leftover", action="append", default=[])
    ap.add_argument("--ready-fd", type=int)
    opts = ap.parse_args()
    if opts.on_term:
        opts.on.append(f"TERM={opts.on_term}")
    ppid = os.getppid()
    try:
        parent_pgid = os.getpgid(ppid)
    except OSError:
        parent_pgid = None
    inherited = [fd for fd in fds if fd != opts.ready_fd]
    status = {
        "pid": os.getpid(), "ppid": ppid, "pgid": os.getpgid(0), "sid": os.getsid(0),
        "parent_pgid": parent_pgid, "fds": inherited,
        "fd_targets": {fd: fd_target(fd) for fd in inherited},
        "sigblk": fields.get("SigBlk"), "sigign": fields.get("SigIgn"),
        "sigcgt": fields.get("SigCgt"), "nspid": fields.get("NSpid"), "argv": sys.argv,
    }
    write_atomic(os.path.join(opts.dir, opts.name + ".status.json"), json.dumps(status))
    App(opts, status).run()


if __name__ == "__main__":
    main()
