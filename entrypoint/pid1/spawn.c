#include "spawn.h"

#include "config.h"
#include "supervise.h"

int spawn_command(const char *command, long grace_ms, int *stop_signal)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    struct supervise_options opt = {.forward_to = FORWARD_GROUP, .grace_ms = grace_ms,
                                     .cleanup = 0};
    pid_t pid = supervise_spawn(argv);
    if (pid < 0)
        return 70;
    return supervise_child(pid, &opt, stop_signal);
}
