#!/usr/bin/python3
"""pty_exec: exec a command with a fresh pseudo-terminal as its controlling
terminal and as its stdin, stdout and stderr.

    pty_exec.py OUTFILE -- CMD [ARGS...]

Becomes a session leader if it is not one already, opens a pty and makes it
the controlling terminal (its process group is then the terminal's foreground
group), forks a relay that holds the master side and appends everything
written to the terminal to OUTFILE, and execs CMD in place, so CMD keeps this
process's pid (PID 1 under unshare). The relay stays CMD's child: it exits
when the terminal closes or when it is signalled.
"""
import fcntl
import os
import sys
import termios


def main(argv):
    out, sep, cmd = argv[0], argv[1], argv[2:]
    if sep != "--" or not cmd:
        sys.exit("usage: pty_exec.py OUTFILE -- CMD [ARGS...]")
    if os.getsid(0) != os.getpid():
        os.setsid()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    if os.fork() == 0:
        os.close(slave)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last slave descriptor closed
                break
            if not data:
                break
            os.write(fd, data)
        os._exit(0)
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
