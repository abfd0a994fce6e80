#!/usr/bin/python3
"""dirty_exec: exec a command with a dirty signal state, as a careless parent
(nohup, a shell's background job, a runtime) would leave it.

    dirty_exec.py [--ignore SIG,SIG...] [--block SIG,SIG...] -- CMD [ARGS...]

Sets each --ignore signal to SIG_IGN and adds each --block signal to the
signal mask, then execs CMD (which inherits both: exec keeps SIG_IGN and the
mask). Python adds SIGPIPE and SIGXFSZ to the ignored set on its own.
"""
import os
import signal
import sys


def sigs(text):
    out = []
    for name in filter(None, text.split(",")):
        name = name.upper()
        name = name[3:] if name.startswith("SIG") else name
        if name.startswith("RTMIN"):
            out.append(signal.SIGRTMIN + int(name[5:] or 0))
        else:
            out.append(getattr(signal, "SIG" + name))
    return out


def main(argv):
    ignore, block = [], []
    while argv and argv[0] != "--":
        opt, value = argv[0], argv[1]
        argv = argv[2:]
        if opt == "--ignore":
            ignore += sigs(value)
        elif opt == "--block":
            block += sigs(value)
        else:
            sys.exit(f"dirty_exec: unknown option {opt}")
    cmd = argv[1:]
    for s in ignore:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, block)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
