/* bandage: the phases in order, and the exit code that each outcome maps to. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "config.h"
#include "exitcodes.h"
#include "log.h"
#include "pid1/memtrim.h"
#include "report/report.h"
#include "db/reset.h"
#include "pid1/supervise.h"
#include "db/wait.h"
#include "report/webhook.h"

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

/* Logs one event line and, with --webhook-url, starts posting it; returns
 * the sender's pid, or 0 when there is none. */
static pid_t announce(const struct config *cfg, const char *summary, struct jbuf *json)
{
    pid_t sender = 0;
    log_event(summary, json->failed ? NULL : json->data);
    if (cfg->webhook_url && !json->failed) {
        struct jbuf slack;
        jbuf_init(&slack);
        if (cfg->webhook_format == WEBHOOK_SLACK)
            report_slack_json(&slack, summary, cfg);
        const struct jbuf *body = cfg->webhook_format == WEBHOOK_SLACK ? &slack : json;
        if (!body->failed)
            sender = webhook_post_async(cfg, body->data, body->len);
        jbuf_free(&slack);
    }
    jbuf_free(json);
    return sender > 0 ? sender : 0;
}

static pid_t announce_deploy(const struct config *cfg, const struct deploy_report *r,
                             long total_ms)
{
    char summary[1024];
    struct jbuf json;
    jbuf_init(&json);
    report_deploy_summary(summary, sizeof summary, r, total_ms);
    report_deploy_json(&json, r, cfg, total_ms);
    return announce(cfg, summary, &json);
}

/* The exit event is posted before bandage exits, within --webhook-timeout. */
static void announce_exit(const struct config *cfg, int status, int code, long uptime_ms)
{
    struct app_exit e = {.exit_code = code, .signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                         .uptime_ms = uptime_ms};
    char summary[256];
    struct jbuf json;
    jbuf_init(&json);
    report_exit_summary(summary, sizeof summary, &e);
    report_exit_json(&json, &e, cfg);
    /* Waits for this sender and for the deploy report's, if still posting:
     * both have their own --webhook-timeout deadlines, running side by side. */
    if (announce(cfg, summary, &json))
        supervise_wait_all(0, cfg->webhook_timeout_ms + 1000);
}

static int run_app(const struct config *cfg, pid_t deploy_sender)
{
    struct supervise_options opt = {.forward_to = cfg->forward_to, .grace_ms = cfg->grace_ms,
                                    .cleanup = 1, .spare = deploy_sender};
    long started = monotonic_ms();
    int status = 0;
    pid_t pid = supervise_spawn(cfg->command);
    if (pid < 0) {
        log_error("cannot start '%s': fork: %s", cfg->command[0], strerror(errno));
        return EXIT_INTERNAL;
    }
    log_debug("started '%s' as pid %d", cfg->command[0], (int)pid);
    memtrim_release_code();
    int code = supervise_child_status(pid, &opt, NULL, &status);
    announce_exit(cfg, status, code, monotonic_ms() - started);
    return code;
}

/* Is there a database to connect to? Every start that has one configured
 * connects (--wait-timeout 0: exactly once), so that an interrupted reset is
 * settled before the app runs on a half-built schema. */
static int needs_database(const struct config *cfg)
{
    static const char *const pg_vars[] = {"PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE",
                                          "PGPORT", NULL};
    int configured = cfg->conninfo != NULL;
    for (int i = 0; pg_vars[i] && !configured; i++)
        configured = getenv(pg_vars[i]) != NULL;
    return cfg->reset != RESET_NEVER || configured;
}

/* The worker process: libpq, OpenSSL and their memory live and die here. */
static int worker_main(const struct config *cfg, int report_fd)
{
    struct deploy_report report;
    PGconn *conn = NULL;
    int sfd = supervise_signalfd();
    int code;

    report_init(&report);
    if (sfd < 0) {
        report_add_error(&report, "internal", "signalfd", "%s", strerror(errno));
        code = EXIT_INTERNAL;
    } else {
        code = wait_for_database(cfg, sfd, &conn, &report);
        if (code == EXIT_OK)
            code = reset_database(conn, sfd, cfg, &report);
    }
    PQfinish(conn);
    report.exit_code = code;
    if (code != EXIT_OK)
        report.outcome = OUTCOME_FAILED;
    else if (cfg->reset != RESET_NEVER && !report.reset_ran)
        report.outcome = OUTCOME_SKIPPED;
    if (write(report_fd, &report, sizeof report) != (ssize_t)sizeof report)
        code = code ? code : EXIT_INTERNAL;
    close(report_fd);
    if (sfd >= 0)
        close(sfd);
    return code;
}

/* Runs the database phases in a forked worker that PID 1 forwards signals to. */
static int run_phases(const struct config *cfg, struct deploy_report *report)
{
    int fds[2];
    report_init(report);
    if (!needs_database(cfg))
        return EXIT_OK;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        log_error("pipe: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        exit(worker_main(cfg, fds[1]));
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        log_error("fork: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    struct supervise_options opt = {.forward_to = FORWARD_CHILD, .grace_ms = cfg->grace_ms,
                                    .cleanup = 0};
    int code = supervise_child(pid, &opt, NULL);
    ssize_t n = read(fds[0], report, sizeof *report);
    close(fds[0]);
    if (n != (ssize_t)sizeof *report) {
        report_init(report);
        report->outcome = OUTCOME_FAILED;
        report_add_error(report, "internal", "worker", "the database worker exited with %d", code);
        log_error("the database worker ended without a report (exit code %d)", code);
        return code ? code : EXIT_INTERNAL;
    }
    return report->exit_code;
}

int main(int argc, char **argv)
{
    long started = monotonic_ms();
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
    struct deploy_report report;
    code = run_phases(&cfg, &report);
    pid_t sender = announce_deploy(&cfg, &report, monotonic_ms() - started);
    if (code == EXIT_OK && report.reset_ran && setenv("LAST_DB_RESET", report.reset_at, 1) != 0)
        code = EXIT_INTERNAL;
    if (code == EXIT_OK && cfg.command)
        return run_app(&cfg, sender); /* the sender runs beside the app, never before it */
    if (sender) /* nothing to run: the report still goes out, bounded */
        supervise_wait_all(0, cfg.webhook_timeout_ms + 1000);
    return code;
}
