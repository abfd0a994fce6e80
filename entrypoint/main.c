/* bandage: the phases in order, and the exit code that each outcome maps to. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
#include "db/kept.h"
#include "db/migrate.h"
#include "db/query.h"
#include "report/report_pipe.h"
#include "db/reset.h"
#include "pid1/supervise.h"
#include "db/wait.h"
#include "report/webhook.h"

/* --version's second line: the licence, and where the notices of the
 * libraries a release binary contains travel (static.mk's notices rules). */
static const char licence_line[] =
    "MIT licence. Notices of the libraries it contains: THIRD_PARTY_NOTICES "
    "(beside it in dist/ and the image, at the npm package's root)";

static int handle_config(enum config_result r, const char *err)
{
    switch (r) {
    case CONFIG_HELP:
        config_print_help(stdout);
        return EXIT_OK;
    case CONFIG_SHORT_HELP:
        config_print_short_help(stdout);
        return EXIT_OK;
    case CONFIG_VERSION:
        printf("bandage %s\n%s\n", bandage_version, licence_line);
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

/* Logs one event line and, with --webhook-url, starts posting it (Slack's
 * text adds detail, which the log has before the line); returns the
 * sender's pid, or 0 when there is none. */
static pid_t announce(const struct config *cfg, const char *summary, const char *detail,
                      struct jbuf *json)
{
    pid_t sender = 0;
    log_event(summary, json->failed ? NULL : json->data);
    if (cfg->webhook_url && !json->failed) {
        struct jbuf slack;
        char text[1500];
        jbuf_init(&slack);
        snprintf(text, sizeof text, "%s%s%s", summary, detail[0] ? ": " : "", detail);
        if (cfg->webhook_format == WEBHOOK_SLACK)
            report_slack_json(&slack, text, cfg);
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
    return announce(cfg, summary, report_deploy_detail(r), &json);
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
    if (announce(cfg, summary, "", &json))
        supervise_wait_all(0, cfg->webhook_timeout_ms + 1000);
}

/* The code of the phases goes once the app has run this long: an app that
 * is done sooner (a one-off command) is not slowed by it. */
#define TRIM_AFTER_MS 100

static void release_code(void)
{
    long bytes = memtrim_release_code();
    log_debug("gave back the pages of code and constant data (%ld KiB mapped)",
              bytes > 0 ? bytes / 1024 : 0);
}

/* dropper: the process dropping the old schema(s) beside the app (0: none).
 * When the app exits by itself (a one-shot job, a crash), the drop is not
 * stopped with what the app left but gets --grace to finish (each batch it
 * commits stays dropped; the next start resumes the rest). */
static int run_app(const struct config *cfg, pid_t deploy_sender, pid_t dropper)
{
    struct supervise_options opt = {.forward_to = cfg->forward_to, .grace_ms = cfg->grace_ms,
                                    .cleanup = 1, .spare = deploy_sender,
                                    .settled = release_code, .settle_ms = TRIM_AFTER_MS,
                                    .finisher = dropper,
                                    .finisher_name = "the drop of the old schema(s)"};
    long started = monotonic_ms();
    int status = 0;
    pid_t pid = supervise_spawn(cfg->command);
    if (pid < 0) {
        log_error("cannot start '%s': fork: %s", cfg->command[0], strerror(errno));
        return EXIT_INTERNAL;
    }
    log_debug("started '%s' as pid %d", cfg->command[0], (int)pid);
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
    return cfg->reset != RESET_NEVER || cfg->migrations || cfg->restore_previous ||
           cfg->history || configured;
}

/* The database phases in order: a bad --migrations directory fails before
 * connecting; the reset (rebuilt from the migrations when both are given)
 * comes first, then what is pending. */
/* How many times a start connects again when its session was ended before it
 * took the reset lock. */
#define RECONNECTS 5

static int database_phases(const struct config *cfg, int sfd, PGconn **conn,
                           struct deploy_report *report)
{
    struct migration_dir migrations = {0};
    if (cfg->history) { /* reads only: no reset, no migration */
        int code = wait_for_database(cfg, sfd, conn, report);
        return code == EXIT_OK ? kept_history(*conn, sfd, cfg, report) : code;
    }
    int code = cfg->migrations ? migrate_load(cfg, &migrations, report) : EXIT_OK;
    for (int attempt = 1; code == EXIT_OK; attempt++) {
        code = wait_for_database(cfg, sfd, conn, report);
        if (code == EXIT_OK)
            code = reset_database(*conn, sfd, cfg, &migrations, report);
        if (code != RESET_RECONNECT)
            break;
        code = attempt < RECONNECTS ? EXIT_OK : EXIT_UNAVAILABLE;
        log_warn("the connection was ended before bandage took its lock (another start's "
                 "reset ends the sessions it finds)%s", code ? "; giving up" : "; connecting again");
        if (code)
            report_add_error(report, "reset", "connection", "ended before the lock, %d times",
                             attempt);
        PQfinish(*conn);
        *conn = NULL;
    }
    /* After a reset from migrations this finds everything applied (one round
     * trip); after a skipped one it applies what a later deploy added. */
    if (code == EXIT_OK && cfg->migrations)
        code = migrate_database(*conn, sfd, cfg, &migrations, report);
    migration_dir_free(&migrations);
    return code;
}

/* The kernel sends a process's death signal each time its parent changes,
 * not only once: set in the dropper at once, it would come when the worker
 * exits and hands the dropper over to bandage (its subreaper, or PID 1).
 * So a harmless one comes first, and its arrival is the cue that bandage is
 * the parent now; nothing else sends SIGCHLD to a process without children. */
#define REPARENT_CUE SIGCHLD
#define REPARENT_WAIT_S 5 /* the worker exits right after the fork */

/* In the dropper, first thing: die with bandage, as the worker does. Not
 * tied when bandage died first (the dropper was handed to someone else),
 * or when the worker did not exit in time. */
static int dropper_tied_to(pid_t bandage, pid_t worker)
{
    sigset_t cue;
    struct timespec limit = {REPARENT_WAIT_S, 0};
    sigemptyset(&cue);
    sigaddset(&cue, REPARENT_CUE); /* blocked since supervise_init(): it waits, pending */
    if (prctl(PR_SET_PDEATHSIG, REPARENT_CUE) != 0)
        return 0;
    if (getppid() == worker)
        sigtimedwait(&cue, NULL, &limit);
    return prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() == bandage;
}

/* A large reset's old schemas go beside the app: a child of the worker
 * keeps the worker's connection and drops them while the worker exits, so
 * PID 1 starts the app at once. The dropper is reparented to PID 1, which
 * reaps it and, told its pid through drop_fd, lets it finish when the app
 * exits by itself (run_app); it dies with bandage (the next start then
 * finishes the drop). Its pid when it runs, else 0. */
static pid_t drop_beside_app(PGconn *conn, int sfd, struct deploy_report *report, pid_t bandage,
                             int drop_fd)
{
    pid_t worker = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (drop_fd >= 0)
            close(drop_fd);
        if (!dropper_tied_to(bandage, worker)) {
            log_warn("bandage is gone or did not take the dropper over; the next start drops "
                     "the old schema(s)");
            PQfinish(conn);
            _exit(EXIT_INTERNAL);
        }
        int code = reset_drop_old_schemas(conn, sfd, report);
        PQfinish(conn);
        _exit(code);
    }
    if (pid < 0)
        log_warn("cannot start dropping the old schema(s) beside the app (fork: %s); the next "
                 "start drops them", strerror(errno));
    return pid > 0 ? pid : 0;
}

/* The dropper's pid, from the worker to bandage, its parent once the worker
 * has exited: a pipe of its own, as the report goes before the fork. A pid
 * that does not arrive only costs the grace: the dropper is then stopped
 * with the rest when the app exits. */
static void tell_dropper(int drop_fd, pid_t dropper)
{
    if (drop_fd >= 0 && write(drop_fd, &dropper, sizeof dropper) != (ssize_t)sizeof dropper)
        log_warn("cannot tell bandage the dropper's pid (%s); it is stopped when the app exits",
                 strerror(errno));
}

/* Read once the worker has exited (never blocks: O_NONBLOCK); 0 when none.
 * A dropper that ended at once may have been reaped with the worker: its
 * pid could be anyone's later, so only a child not yet reaped (alive, or a
 * zombie) counts. */
static pid_t dropper_told(int fd)
{
    pid_t pid = 0;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (fd >= 0 && read(fd, &pid, sizeof pid) != (ssize_t)sizeof pid)
        pid = 0;
    if (fd >= 0)
        close(fd);
    if (pid > 0 && waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        pid = 0;
    return pid;
}

/* The worker process: libpq, OpenSSL and their memory live and die here.
 * bandage: the pid of its parent, bandage's main process; drop_fd: where
 * the dropper's pid goes (-1: nowhere). */
static int worker_main(const struct config *cfg, int report_fd, int drop_fd, pid_t bandage)
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
        code = database_phases(cfg, sfd, &conn, &report);
    }
    report.exit_code = code;
    if (code != EXIT_OK)
        report.outcome = OUTCOME_FAILED;
    else if ((cfg->reset != RESET_NEVER || cfg->restore_previous) && !report.reset_ran &&
             !report.restored)
        report.outcome = OUTCOME_SKIPPED;
    if (report_pipe_send(report_fd, &report) != 0)
        code = code ? code : EXIT_INTERNAL;
    close(report_fd);
    pid_t dropper = 0;
    if (code == EXIT_OK && report.old_schemas_pending)
        dropper = drop_beside_app(conn, sfd, &report, bandage, drop_fd);
    if (dropper > 0) {
        tell_dropper(drop_fd, dropper);
        _exit(code); /* the connection is the dropper's now: not PQfinish()ed here */
    }
    db_release_locks(conn, sfd, report.relayed); /* every way out */
    PQfinish(conn);
    if (sfd >= 0)
        close(sfd);
    return code;
}

/* In the worker, first thing: die with bandage. Outside a container
 * (subreaper mode) nothing else would stop a worker whose bandage was
 * SIGKILLed, and it would go on resetting. The parent may have died before
 * the prctl: then the worker has been re-parented already. */
static int worker_tied_to(pid_t parent)
{
    return prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() == parent;
}

/* The worker ended without its report: say how, in the log and the report;
 * returns bandage's exit code. */
static int worker_lost(struct deploy_report *report, int status, int stop_signal, int received)
{
    const char *report_state = received < 0 ? "its report cut short" : "without a report";
    char how[200];
    int code;
    if (WIFSIGNALED(status)) {
        snprintf(how, sizeof how, "the database worker was killed by signal %d (%s), %s",
                 WTERMSIG(status), strsignal(WTERMSIG(status)), report_state);
        /* After a stop signal it was bandage's own SIGKILL, at --grace. */
        code = stop_signal ? 128 + stop_signal : EXIT_INTERNAL;
    } else {
        code = exit_code_from_status(status);
        snprintf(how, sizeof how, "the database worker exited with code %d, %s", code,
                 report_state);
        code = code ? code : EXIT_INTERNAL;
    }
    report_init(report);
    report->outcome = OUTCOME_FAILED;
    report->exit_code = code;
    report_add_error(report, "worker", WIFSIGNALED(status) ? "signal" : "exit", "%s", how);
    log_error("%s", how);
    return code;
}

/* Runs the database phases in a forked worker that PID 1 forwards signals
 * to; *dropper: the process it left dropping old schemas beside the app. */
static int run_phases(const struct config *cfg, struct deploy_report *report, pid_t *dropper)
{
    int fds[2], drop_fds[2] = {-1, -1};
    report_init(report);
    if (!needs_database(cfg))
        return EXIT_OK;
    if (report_pipe_open(fds) != 0) {
        log_error("cannot open the report pipe: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    if (pipe2(drop_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        drop_fds[0] = drop_fds[1] = -1; /* the dropper, if any, then gets no grace */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (drop_fds[0] >= 0)
            close(drop_fds[0]);
        if (!worker_tied_to(parent))
            _exit(EXIT_INTERNAL); /* bandage is gone: nobody to report to */
        exit(worker_main(cfg, fds[1], drop_fds[1], parent));
    }
    close(fds[1]);
    if (drop_fds[1] >= 0)
        close(drop_fds[1]);
    if (pid < 0) {
        dropper_told(drop_fds[0]);
        close(fds[0]);
        log_error("fork: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    struct supervise_options opt = {.forward_to = FORWARD_CHILD, .grace_ms = cfg->grace_ms,
                                    .cleanup = 0, .name = "the database worker"};
    int status = 0, stop_signal = 0;
    supervise_child_status(pid, &opt, &stop_signal, &status);
    int received = report_pipe_receive(fds[0], report);
    close(fds[0]);
    *dropper = dropper_told(drop_fds[0]);
    if (received != 1)
        return worker_lost(report, status, stop_signal, received);
    return report->exit_code;
}

/* --plan with neither --reset nor --migrations: nothing to change, so the
 * plan is what a start would do. */
static void plan_without_changes(const struct config *cfg)
{
    printf("bandage --plan: no --reset, no --migrations: nothing to change; a start would\n");
    if (needs_database(cfg))
        printf("  wait for the database (up to --wait-timeout; it is ready now)\n");
    else
        printf("  not wait: no database is configured (DATABASE_URL, PG* variables)\n");
    if (!cfg->command) {
        printf("  then exit 0 (no COMMAND after --)\n");
    } else {
        printf("  then run as PID 1:");
        for (char **arg = cfg->command; *arg; arg++)
            printf(" %s", *arg);
        printf("\n");
    }
    printf("nothing was changed (--plan)\n");
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
    if (cfg.start_warnings[0])
        log_warn("%s", cfg.start_warnings);
    if (cfg.url_note[0])
        log_warn("%s", cfg.url_note);
    if (supervise_init() != 0) {
        log_error("cannot set up signal handling: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    struct deploy_report report;
    pid_t dropper = 0;
    code = run_phases(&cfg, &report, &dropper);
    if (code == EXIT_OK && cfg.plan && cfg.reset == RESET_NEVER && !cfg.migrations)
        plan_without_changes(&cfg);
    pid_t sender = announce_deploy(&cfg, &report, monotonic_ms() - started);
    if (code == EXIT_OK && report.reset_ran && setenv("LAST_DB_RESET", report.reset_at, 1) != 0)
        code = EXIT_INTERNAL;
    if (code == EXIT_OK && report.last_migration[0] &&
        setenv("LAST_DB_MIGRATION", report.last_migration, 1) != 0)
        code = EXIT_INTERNAL;
    /* --plan and --history change nothing, start nothing */
    if (code == EXIT_OK && cfg.command && !cfg.plan && !cfg.history)
        return run_app(&cfg, sender, dropper); /* the sender runs beside the app, never
                                                  before it */
    if (sender) /* nothing to run: the report still goes out, bounded */
        supervise_wait_all(0, cfg.webhook_timeout_ms + 1000);
    return code;
}
