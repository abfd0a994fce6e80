/* A hook's keeper: a small process that stops the hook's process group when
 * the process that ran the hook dies, by any means, SIGKILL included.
 *
 * Outside a PID namespace nothing else would: PR_SET_PDEATHSIG is not
 * inherited across fork, so what the hook's shell started would outlive
 * bandage and go on against a database that bandage no longer guards. */
#ifndef BANDAGE_KEEPER_H
#define BANDAGE_KEEPER_H

#include <sys/types.h>

struct keeper {
    pid_t pid;    /* the keeper process, a child of the caller */
    int lifeline; /* write end of the keeper's pipe (close-on-exec), the caller's alone */
};

/* Forks a keeper for the process group that the caller's next child names
 * on k->lifeline (supervise_spawn_announced). The keeper waits for the
 * lifeline to close, which happens when the caller dies: the kernel closes
 * a dead process's descriptors, also after SIGKILL. It then sends the group
 * SIGTERM, and SIGKILL once grace_ms pass with a member left, and exits.
 * Returns 0, or -1 with errno. */
int keeper_start(struct keeper *k, long grace_ms);

/* The child ended and the caller lives: the keeper goes without touching
 * the group (SIGKILL, reaped) and the lifeline is closed. */
void keeper_dismiss(struct keeper *k);

#endif
