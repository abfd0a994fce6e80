/* bandage: the phases in order, and the exit code that each outcome maps to. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "exitcodes.h"
#include "log.h"
#include "supervise.h"

static int handle_config(enum config_result r, const char *err)
{
    switch (r) {
    case CONFIG_HELP:
        config_print_help(stdout);
        return EXIT_OK;
    case CONFIG_VERSION:
        printf("bandage %s\n", bandage_version);
        return EXIT_OK;
    case CONFIG_MARKDOWN:
        config_print_markdown(stdout);
        return EXIT_OK;
    case CONFIG_ERROR:
        fprintf(stderr, "bandage: %s\n", err);
        return EXIT_USAGE;
    case CONFIG_OK:
        break;
    }
    return -1;
}

static int run_app(const struct config *cfg)
{
    struct supervise_options opt = {.forward_to = cfg->forward_to,
                                    .grace_ms = cfg->grace_ms, .cleanup = 1};
    pid_t pid = supervise_spawn(cfg->command);
    if (pid < 0) {
        log_error("cannot start '%s': fork: %s", cfg->command[0], strerror(errno));
        return EXIT_INTERNAL;
    }
    log_debug("started '%s' as pid %d", cfg->command[0], (int)pid);
    return supervise_child(pid, &opt, NULL);
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    int code = handle_config(config_load(&cfg, argc, argv, err, sizeof err), err);
    if (code >= 0)
        return code;
    log_init(cfg.log_format, cfg.log_level);
    if (supervise_init() != 0) {
        log_error("cannot set up signal handling: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    if (!cfg.command)
        return EXIT_OK;
    return run_app(&cfg);
}
