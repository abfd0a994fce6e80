/* Run a hook command (a shell string) and wait for it, forwarding signals. */
#ifndef BANDAGE_SPAWN_H
#define BANDAGE_SPAWN_H

/* Runs `/bin/sh -c command` with stdout/stderr passed through and signals
 * forwarded to its process group. When the caller's group holds the
 * terminal, the command's group has it while it runs and the caller's group
 * gets it back when it ends. If the caller dies while the command runs
 * (SIGKILL included), a keeper (keeper.h) sends the command's group SIGTERM,
 * then SIGKILL after grace_ms. Returns its exit code (128+N if killed), 70
 * if it could not be started; stop_signal (may be NULL) receives a
 * SIGTERM/SIGINT that arrived meanwhile. */
int spawn_command(const char *command, long grace_ms, int *stop_signal);

#endif
