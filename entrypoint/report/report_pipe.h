/* The deploy report's way from the worker to PID 1: one pipe, exactly one
 * whole report or none. PID 1 reads it once the worker has exited. */
#ifndef BANDAGE_REPORT_PIPE_H
#define BANDAGE_REPORT_PIPE_H

#include "report/report.h"

/* pipe2(O_CLOEXEC), with room for one whole report so that the worker's
 * write never waits for a reader (PID 1 reads only after the worker exits),
 * and a read end that does not block. 0, or -1 with errno. */
int report_pipe_open(int fds[2]);

/* Writes the whole report, through partial writes and EINTR; 0 or -1. */
int report_pipe_send(int fd, const struct deploy_report *r);

/* Reads what the writer left: 1 when exactly one whole report came (into
 * *r), 0 when nothing came, -1 when a part of one or more than one came (a
 * writer killed mid-write) or reading failed. */
int report_pipe_receive(int fd, struct deploy_report *r);

#endif
