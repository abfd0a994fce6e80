#include "report_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* PID 1 reads only after the worker exited: a report larger than the pipe
 * would block the worker's write forever, and PID 1 with it. A new pipe
 * holds 64 KiB, or a single page when the user is over its pipe quota. */
static int make_room(int fd, size_t bytes)
{
    int room = fcntl(fd, F_GETPIPE_SZ);
    if (room >= 0 && (size_t)room >= bytes)
        return 0;
    room = fcntl(fd, F_SETPIPE_SZ, (int)bytes);
    return room >= 0 && (size_t)room >= bytes ? 0 : -1;
}

int report_pipe_open(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    /* Non-blocking read end: a stray holder of the write end (a hook's
     * child between fork and exec) cannot keep PID 1 waiting. */
    if (make_room(fds[1], sizeof(struct deploy_report)) != 0 ||
        fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        errno = err;
        return -1;
    }
    return 0;
}

int report_pipe_send(int fd, const struct deploy_report *r)
{
    const char *p = (const char *)r;
    size_t left = sizeof *r;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

int report_pipe_receive(int fd, struct deploy_report *r)
{
    char *p = (char *)r;
    size_t got = 0;
    for (;;) {
        char extra;
        /* Past one whole report, read one byte more: there must be none. */
        ssize_t n = got < sizeof *r ? read(fd, p + got, sizeof *r - got) : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (n < 0 && errno == EAGAIN))
            break; /* everything the writer left has been read */
        if (n < 0 || got == sizeof *r)
            return -1;
        got += (size_t)n;
    }
    return got == sizeof *r ? 1 : got == 0 ? 0 : -1;
}
