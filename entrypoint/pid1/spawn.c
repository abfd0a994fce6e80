#include "spawn.h"

#include "config.h"
#include "exitcodes.h"
#include "supervise.h"

int spawn_command(const char *command, long grace_ms, int *stop_signal)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    struct supervise_options opt = {.forward_to = FORWARD_GROUP, .grace_ms = grace_ms,
                                     .cleanup = 0};
    /* The hook's group borrows the terminal (a prompt of `prisma db push`
     * can be answered); only the app's group keeps it, so it comes back. */
    int had_terminal = supervise_holds_terminal();
    pid_t pid = supervise_spawn(argv);
    if (pid < 0)
        return EXIT_INTERNAL;
    int code = supervise_child(pid, &opt, stop_signal);
    if (had_terminal)
        supervise_take_terminal();
    return code;
}
