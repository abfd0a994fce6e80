"""The terminal under ``docker run -it``: hooks borrow it, the app keeps it.

bandage runs with a real pseudo-terminal as its controlling terminal and
stdio (helpers/pty_exec.py). A hook (``--before-reset``, ``--schema-command``)
runs in its own process group, which gets the terminal while it runs; after
it, the terminal must come back to bandage's group, so that the app's group
can be made the foreground group. Otherwise the app, in a background group,
is stopped by SIGTTIN (state T) the moment it reads the terminal, and never
runs (issue 9, item 3).
"""
import json
import os

import pytest

from helpers import PYTHON, scaled, wait_until
from helpers.apps import PTY_EXEC, python_cmd
from helpers import procs

#: Reads one line typed on the terminal; writes it, with who held the
#: terminal, to argv[2]. Its pid goes to argv[1] before it reads.
LINE_READER = r"""
import json, os, sys
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
line = sys.stdin.readline()
info = {"line": line, "fg": os.tcgetpgrp(0), "pgrp": os.getpgrp()}
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump(info, f)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
"""


def pty_with_input_prefix(outfile, fifo):
    """bandage on a new pty; bytes written to ``fifo`` are typed on it."""
    return python_cmd(PTY_EXEC, outfile, "--input", fifo, "--")


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("hook", ["--before-reset", "--schema-command"])
def test_app_reads_the_terminal_after_a_hook(run_bandage, pid1, db, app_dir, tmp_path, hook):
    """A hook runs during the reset; then the app reads a line typed on the
    terminal. The line arrives within a bounded time, the app is never seen
    stopped, and the app's group is the terminal's foreground group."""
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE typed (line text);\n")
    hook_mark = os.path.join(app_dir, "hook.ran")
    pid_file = os.path.join(app_dir, "app.pid")
    out_file = os.path.join(app_dir, "app.json")
    terminal_log = os.path.join(app_dir, "tty.out")
    fifo = os.path.join(app_dir, "keyboard")
    os.mkfifo(fifo)
    args = ["--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
            "--schema-file", str(schema), hook, f"echo hook on the terminal; touch {hook_mark}",
            "--", PYTHON, "-I", "-S", "-c", LINE_READER, pid_file, out_file]
    run = run_bandage(args, pid1=pid1, exec_prefix=pty_with_input_prefix(terminal_log, fifo))

    def app_pid():
        if not run.running:
            raise AssertionError(f"bandage exited {run.poll()} before the app started:\n"
                                 f"{read_text(terminal_log)}")
        text = read_text(pid_file)
        return int(text) if text else None

    ns_pid = wait_until(app_pid, scaled(20), "the app to start")
    assert os.path.exists(hook_mark), "the hook did not run before the app"
    host_pid = run.host_pid(ns_pid)
    with open(fifo, "w") as keyboard:
        keyboard.write("typed at the keyboard\n")

    def line_arrived():
        if os.path.exists(out_file):
            return True
        st = procs.proc_stat(host_pid)
        assert st is None or st.state != "T", (
            f"the app was stopped (state T: SIGTTIN, not in the foreground group); "
            f"terminal:\n{read_text(terminal_log)}\nprocesses:\n{run.describe_tree()}")
        return False

    wait_until(line_arrived, scaled(10), lambda: f"the app to read the typed line; terminal:\n"
               f"{read_text(terminal_log)}\nprocesses:\n{run.describe_tree()}")
    code = run.wait()
    assert code == 0, f"bandage exited {code}; terminal:\n{read_text(terminal_log)}"
    with open(out_file) as f:
        info = json.load(f)
    assert info["line"] == "typed at the keyboard\n"
    assert info["fg"] == info["pgrp"], f"the app's group is not the foreground group: {info}"
    assert "hook on the terminal" in read_text(terminal_log)


def test_a_hook_borrows_the_terminal_then_the_app_gets_it(run_bandage, db, app_dir, tmp_path):
    """While a hook runs, its group holds the terminal, so a hook that asks a
    question (``prisma db push`` prompting) reads the answer instead of
    stopping; the next line typed goes to the app."""
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE typed (line text);\n")
    answer = os.path.join(app_dir, "hook.answer")
    pid_file = os.path.join(app_dir, "app.pid")
    out_file = os.path.join(app_dir, "app.json")
    terminal_log = os.path.join(app_dir, "tty.out")
    fifo = os.path.join(app_dir, "keyboard")
    os.mkfifo(fifo)
    args = ["--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
            "--schema-file", str(schema), "--before-reset", f"read reply; echo \"$reply\" > {answer}",
            "--", PYTHON, "-I", "-S", "-c", LINE_READER, pid_file, out_file]
    run = run_bandage(args, exec_prefix=pty_with_input_prefix(terminal_log, fifo))
    with open(fifo, "w") as keyboard:  # canonical mode: each read() gets one line
        keyboard.write("yes\nfor the app\n")
    wait_until(lambda: os.path.exists(out_file) or not run.running, scaled(20),
               lambda: f"the app to read its line; terminal:\n{read_text(terminal_log)}\n"
               f"processes:\n{run.describe_tree()}")
    assert run.wait() == 0, read_text(terminal_log)
    assert read_text(answer) == "yes\n"
    with open(out_file) as f:
        assert json.load(f)["line"] == "for the app\n"
