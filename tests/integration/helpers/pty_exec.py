#!/usr/bin/python3
"""pty_exec: exec a command with a fresh pseudo-terminal as its controlling
terminal and as its stdin, stdout and stderr.

    pty_exec.py OUTFILE [--input FIFO] -- CMD [ARGS...]

Becomes a session leader if it is not one already, opens a pty and makes it
the controlling terminal (its process group is then the terminal's foreground
group), forks a relay that holds the master side and appends everything
written to the terminal to OUTFILE, and execs CMD in place, so CMD keeps this
process's pid (PID 1 under unshare). The relay stays CMD's child: it exits
when the terminal closes or when it is signalled.

With ``--input FIFO`` (a named pipe the caller made), the relay also copies
whatever is written to FIFO onto the master side: it is typed on the terminal,
as a user at the keyboard would.
"""
import fcntl
import os
import select
import sys
import termios


def parse(argv):
    if len(argv) < 3:
        sys.exit("usage: pty_exec.py OUTFILE [--input FIFO] -- CMD [ARGS...]")
    out, rest, fifo = argv[0], argv[1:], None
    if rest[0] == "--input":
        fifo, rest = rest[1], rest[2:]
    if not rest or rest[0] != "--" or len(rest) < 2:
        sys.exit("usage: pty_exec.py OUTFILE [--input FIFO] -- CMD [ARGS...]")
    return out, fifo, rest[1:]


def relay(master, out, fifo):
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # O_RDWR: the FIFO never reports end-of-file when a writer closes it.
    typed = os.open(fifo, os.O_RDWR) if fifo else None
    watched = [master] + ([typed] if typed is not None else [])
    while True:
        ready, _, _ = select.select(watched, [], [])
        if typed in ready:
            os.write(master, os.read(typed, 4096))
        if master in ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last slave descriptor closed
                break
            if not data:
                break
            os.write(fd, data)


def main(argv):
    out, fifo, cmd = parse(argv)
    if os.getsid(0) != os.getpid():
        os.setsid()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    if os.fork() == 0:
        os.close(slave)
        try:
            relay(master, out, fifo)
        finally:
            os._exit(0)  # never run CMD twice, whatever the relay raised
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
