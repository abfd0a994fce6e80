#include "spawn.h"

#include <errno.h>
#include <string.h>

#include "config.h"
#include "exitcodes.h"
#include "keeper.h"
#include "log.h"
#include "supervise.h"

int spawn_command(const char *command, long grace_ms, int *stop_signal)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    struct supervise_options opt = {.forward_to = FORWARD_GROUP, .grace_ms = grace_ms,
                                     .cleanup = 0};
    struct keeper keeper;
    /* The hook's group borrows the terminal (a prompt of `prisma db push`
     * can be answered); only the app's group keeps it, so it comes back. */
    int had_terminal = supervise_holds_terminal();
    /* First the keeper, then the hook: no moment when the hook runs unkept. */
    if (keeper_start(&keeper, grace_ms) != 0) {
        log_error("cannot start the hook's keeper: fork: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    pid_t pid = supervise_spawn_announced(argv, keeper.lifeline);
    if (pid < 0) {
        log_error("cannot start the hook: fork: %s", strerror(errno));
        keeper_dismiss(&keeper);
        return EXIT_INTERNAL;
    }
    int code = supervise_child(pid, &opt, stop_signal);
    keeper_dismiss(&keeper);
    if (had_terminal)
        supervise_take_terminal();
    return code;
}
