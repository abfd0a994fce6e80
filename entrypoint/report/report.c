#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void report_init(struct deploy_report *r)
{
    memset(r, 0, sizeof *r);
    r->outcome = OUTCOME_OK;
}

void report_add_error(struct deploy_report *r, const char *phase, const char *code,
                      const char *fmt, ...)
{
    if (r->n_errors < REPORT_MAX_ERRORS) {
        struct report_error *e = &r->errors[r->n_errors];
        va_list ap;
        snprintf(e->phase, sizeof e->phase, "%s", phase);
        snprintf(e->code, sizeof e->code, "%s", code ? code : "");
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
        /* libpq messages end in newlines; a report line should not. */
        size_t n = strlen(e->message);
        while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
            e->message[--n] = '\0';
    }
    r->n_errors++;
}

int report_refusal(struct deploy_report *r, char *kept, size_t keptlen, int rc,
                   const char *phase, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kept, keptlen, fmt, ap);
    va_end(ap);
    report_add_error(r, phase, code, "%s", kept);
    return rc;
}

void report_add_migration(struct deploy_report *r, const char *name, int failed, long ms)
{
    struct report_migration *m;
    if (failed)
        r->migrations_failed++;
    else
        r->migrations_applied++;
    if (r->n_migrations < REPORT_MAX_MIGRATIONS) {
        m = &r->migrations[r->n_migrations++];
    } else {
        r->migrations_omitted++;
        if (!failed)
            return;
        m = &r->migrations[REPORT_MAX_MIGRATIONS - 1]; /* the applied one there is counted */
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->failed = failed;
    m->ms = ms;
}

void report_add_finding(struct deploy_report *r, const struct report_finding *f)
{
    r->checks_breaking += strcmp(f->cls, "breaking") == 0;
    r->checks_long_lock += strcmp(f->cls, "long-lock") == 0;
    r->checks_not_checked += strcmp(f->cls, "not-checked") == 0;
    r->checks_acknowledged += f->acknowledged;
    if (r->n_findings < REPORT_MAX_FINDINGS)
        r->findings[r->n_findings++] = *f;
}

void report_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static const char *outcome_name(int outcome)
{
    static const char *const names[] = {"ok", "skipped", "failed"};
    return outcome >= OUTCOME_OK && outcome <= OUTCOME_FAILED ? names[outcome] : "failed";
}

/* "key": value pairs shared by both events: who, where, when. */
static void common_fields(struct jbuf *out, const char *event, const struct config *cfg)
{
    static const char *const railway[][2] = {
        {"service", "RAILWAY_SERVICE_NAME"},
        {"environment", "RAILWAY_ENVIRONMENT_NAME"},
        {"git_commit_sha", "RAILWAY_GIT_COMMIT_SHA"},
    };
    char host[256] = "", now[40];

    gethostname(host, sizeof host - 1);
    report_timestamp(now, sizeof now);
    jbuf_puts(out, "{\"event\":");
    jbuf_string(out, event);
    jbuf_puts(out, ",\"timestamp\":");
    jbuf_string(out, now);
    jbuf_puts(out, ",\"bandage_version\":");
    jbuf_string(out, bandage_version);
    jbuf_puts(out, ",\"deployment_id\":");
    jbuf_string(out, cfg->deployment_id);
    for (size_t i = 0; i < sizeof railway / sizeof railway[0]; i++) {
        const char *v = getenv(railway[i][1]);
        if (v && v[0]) {
            jbuf_printf(out, ",\"%s\":", railway[i][0]);
            jbuf_string(out, v);
        }
    }
    jbuf_puts(out, ",\"host\":");
    jbuf_string(out, host);
}

static void errors_array(struct jbuf *out, const struct deploy_report *r)
{
    int stored = r->n_errors < REPORT_MAX_ERRORS ? r->n_errors : REPORT_MAX_ERRORS;
    jbuf_puts(out, "[");
    for (int i = 0; i < stored; i++) {
        const struct report_error *e = &r->errors[i];
        jbuf_puts(out, i ? ",{\"phase\":" : "{\"phase\":");
        jbuf_string(out, e->phase);
        jbuf_puts(out, ",\"code\":");
        jbuf_string(out, e->code);
        jbuf_puts(out, ",\"message\":");
        jbuf_string(out, e->message);
        jbuf_puts(out, "}");
    }
    jbuf_puts(out, "]");
}

static void findings_array(struct jbuf *out, const struct deploy_report *r)
{
    jbuf_puts(out, "[");
    for (int i = 0; i < r->n_findings && i < REPORT_MAX_FINDINGS; i++) {
        const struct report_finding *f = &r->findings[i];
        jbuf_puts(out, i ? ",{\"migration\":" : "{\"migration\":");
        jbuf_string(out, f->migration);
        jbuf_printf(out, ",\"line\":%d,\"rule\":", f->line);
        jbuf_string(out, f->rule);
        jbuf_puts(out, ",\"class\":");
        jbuf_string(out, f->cls);
        jbuf_puts(out, ",\"table\":");
        jbuf_string(out, f->table[0] ? f->table : NULL);
        jbuf_printf(out, ",\"rows\":%lld,\"bytes\":%lld,\"acknowledged\":%s}", f->rows,
                    f->bytes, f->acknowledged ? "true" : "false");
    }
    jbuf_puts(out, "]");
}

/* The statement checks' counts and first findings; null when they did not run. */
static void checks_object(struct jbuf *out, const struct deploy_report *r)
{
    if (!r->checks_ran) {
        jbuf_puts(out, "null");
        return;
    }
    jbuf_printf(out, "{\"breaking\":%d,\"long_lock\":%d,\"acknowledged\":%d,"
                "\"not_checked\":%d,\"findings\":", r->checks_breaking, r->checks_long_lock,
                r->checks_acknowledged, r->checks_not_checked);
    findings_array(out, r);
    jbuf_puts(out, "}");
}

static void migrations_object(struct jbuf *out, const struct deploy_report *r)
{
    if (!r->migrations_ran && !r->migrations_failed) {
        jbuf_puts(out, "null");
        return;
    }
    jbuf_printf(out, "{\"applied\":%d,\"skipped\":%d,\"failed\":%d,\"pending\":%d,"
                "\"omitted\":%d,\"ms\":%ld,\"last\":", r->migrations_applied,
                r->migrations_skipped, r->migrations_failed, r->migrations_pending,
                r->migrations_omitted, r->migrate_ms);
    jbuf_string(out, r->last_migration[0] ? r->last_migration : NULL);
    jbuf_puts(out, ",\"items\":[");
    for (int i = 0; i < r->n_migrations && i < REPORT_MAX_MIGRATIONS; i++) {
        jbuf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        jbuf_string(out, r->migrations[i].name);
        jbuf_printf(out, ",\"status\":\"%s\",\"ms\":%ld}",
                    r->migrations[i].failed ? "failed" : "applied", r->migrations[i].ms);
    }
    jbuf_puts(out, "],\"checks\":");
    checks_object(out, r);
    jbuf_puts(out, "}");
}

void report_deploy_json(struct jbuf *out, const struct deploy_report *r,
                        const struct config *cfg, long total_ms)
{
    common_fields(out, "deploy", cfg);
    jbuf_puts(out, ",\"outcome\":");
    jbuf_string(out, outcome_name(r->outcome));
    jbuf_printf(out, ",\"exit_code\":%d,\"reset_mode\":", r->exit_code);
    jbuf_string(out, config_reset_mode_name(cfg->reset));
    jbuf_printf(out, ",\"reset_ran\":%s,\"reset_at\":", r->reset_ran ? "true" : "false");
    jbuf_string(out, r->reset_ran ? r->reset_at : NULL);
    jbuf_puts(out, ",\"skip_reason\":");
    jbuf_string(out, r->skip_reason[0] ? r->skip_reason : NULL);
    jbuf_puts(out, ",\"database\":");
    jbuf_string(out, r->database[0] ? r->database : NULL);
    jbuf_puts(out, ",\"schemas\":");
    jbuf_string(out, cfg->schemas);
    jbuf_printf(out,
                ",\"wait_attempts\":%d,\"wait_ms\":%ld,\"reset_ms\":%ld,"
                "\"statements\":%ld,\"bytes\":%ld,\"total_ms\":%ld,\"error_count\":%d,"
                "\"errors\":",
                r->wait_attempts, r->wait_ms, r->reset_ms, r->statements, r->bytes, total_ms,
                r->n_errors);
    errors_array(out, r);
    jbuf_printf(out, ",\"restored\":%d,\"kept_schemas\":%d,\"kept_bytes\":%lld", r->restored,
                r->kept_schemas, r->kept_bytes);
    jbuf_printf(out, ",\"dependents_dropped\":%d,\"first_dependent\":", r->dependents_dropped);
    jbuf_string(out, r->first_dependent[0] ? r->first_dependent : NULL);
    jbuf_puts(out, ",\"migrations\":");
    migrations_object(out, r);
    jbuf_puts(out, "}");
}

void report_exit_json(struct jbuf *out, const struct app_exit *e, const struct config *cfg)
{
    common_fields(out, "exit", cfg);
    jbuf_puts(out, ",\"command\":");
    jbuf_string(out, cfg->command ? cfg->command[0] : NULL);
    jbuf_printf(out, ",\"exit_code\":%d,\"signal\":", e->exit_code);
    if (e->signal)
        jbuf_printf(out, "%d", e->signal);
    else
        jbuf_puts(out, "null");
    jbuf_printf(out, ",\"uptime_ms\":%ld}", e->uptime_ms);
}

/* ", migrations: 2 applied in 120 ms (last X), 5 already applied", or
 * ", migrations: up to date (5 applied)", or ", migration X failed ...". */
static int migrations_summary(char *buf, size_t len, const struct deploy_report *r)
{
    if (r->migrations_failed) {
        const struct report_migration *f = &r->migrations[r->n_migrations - 1];
        return snprintf(buf, len, ", migration %s failed after %ld ms (%d applied before it, "
                        "%d not tried)", f->name, f->ms, r->migrations_applied,
                        r->migrations_pending);
    }
    if (!r->migrations_ran)
        return 0;
    if (r->migrations_applied == 0 && r->migrations_pending > 0)
        return snprintf(buf, len, ", migrations: %d pending, %d applied", r->migrations_pending,
                        r->migrations_skipped);
    if (r->migrations_applied == 0)
        return snprintf(buf, len, ", migrations: up to date (%d applied)", r->migrations_skipped);
    return snprintf(buf, len, ", migrations: %d applied in %ld ms (last %s), %d already applied",
                    r->migrations_applied, r->migrate_ms, r->last_migration,
                    r->migrations_skipped);
}

/* Was this error's message logged when it happened? Every error is, but a
 * stop by signal (the stop is the news) and the worker's own. */
static int logged_before(const struct report_error *e)
{
    return strcmp(e->code, "signal") != 0 && strcmp(e->phase, "worker") != 0 &&
           strcmp(e->phase, "internal") != 0;
}

/* ", checks: 1 breaking, 2 long-lock (1 acknowledged)" when they found anything. */
static int checks_summary(char *buf, size_t len, const struct deploy_report *r)
{
    if (!r->checks_ran || r->checks_breaking + r->checks_long_lock + r->checks_not_checked == 0)
        return 0;
    return snprintf(buf, len, ", checks: %d breaking, %d long-lock (%d acknowledged), %d not "
                    "checked", r->checks_breaking, r->checks_long_lock, r->checks_acknowledged,
                    r->checks_not_checked);
}

void report_deploy_summary(char *buf, size_t len, const struct deploy_report *r, long total_ms)
{
    /* The worker died before its report (main.c filled in this one error):
     * nothing else is known, so say only that. */
    if (r->n_errors > 0 && strcmp(r->errors[0].phase, "worker") == 0) {
        snprintf(buf, len, "deploy %s in %ld ms: %s", outcome_name(r->outcome), total_ms,
                 r->errors[0].message);
        return;
    }
    int n = r->wait_attempts == 0
                ? snprintf(buf, len, "deploy %s in %ld ms: no database phase",
                           outcome_name(r->outcome), total_ms)
                : snprintf(buf, len, "deploy %s in %ld ms: waited %ld ms (%d attempt%s)",
                           outcome_name(r->outcome), total_ms, r->wait_ms, r->wait_attempts,
                           r->wait_attempts == 1 ? "" : "s");
    if (n < 0 || (size_t)n >= len)
        return;
    if (r->reset_ran)
        n += snprintf(buf + n, len - (size_t)n, ", reset in %ld ms (%ld statements)",
                      r->reset_ms, r->statements);
    else if (r->restored)
        n += snprintf(buf + n, len - (size_t)n, ", restored %d schema%s in %ld ms", r->restored,
                      r->restored == 1 ? "" : "s", r->reset_ms);
    else if (r->skip_reason[0])
        n += snprintf(buf + n, len - (size_t)n, ", reset skipped: %s", r->skip_reason);
    if (r->kept_schemas > 0 && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", %d kept schema%s (%lld MB)", r->kept_schemas,
                      r->kept_schemas == 1 ? "" : "s", (r->kept_bytes + 512 * 1024) / (1024 * 1024));
    if (r->dependents_dropped > 0 && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", %d object(s) outside --schemas dropped",
                      r->dependents_dropped);
    if (n >= 0 && (size_t)n < len)
        n += migrations_summary(buf + n, len - (size_t)n, r);
    if (n >= 0 && (size_t)n < len)
        n += checks_summary(buf + n, len - (size_t)n, r);
    if (n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, ", %d error%s", r->n_errors,
                      r->n_errors == 1 ? "" : "s");
    /* A message logged in full already (a libpq error can fill a screen)
     * is not repeated: the line names its phase and code only. */
    if (r->n_errors > 0 && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " (%s %s%s%s)", r->errors[0].phase,
                 r->errors[0].code, logged_before(&r->errors[0]) ? "" : ": ",
                 logged_before(&r->errors[0]) ? "" : r->errors[0].message);
}

const char *report_deploy_detail(const struct deploy_report *r)
{
    if (r->n_errors == 0 || !logged_before(&r->errors[0]))
        return ""; /* none, or the summary holds it */
    return r->errors[0].message;
}

void report_exit_summary(char *buf, size_t len, const struct app_exit *e)
{
    if (e->signal)
        snprintf(buf, len, "app killed by signal %d (%s) after %ld ms; exit code %d", e->signal,
                 strsignal(e->signal), e->uptime_ms, e->exit_code);
    else
        snprintf(buf, len, "app exited with code %d after %ld ms", e->exit_code, e->uptime_ms);
}

void report_slack_json(struct jbuf *out, const char *summary, const struct config *cfg)
{
    char text[1700];
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    snprintf(text, sizeof text, "bandage %s on %s%s%s: %s", bandage_version, host,
             cfg->deployment_id ? ", deployment " : "",
             cfg->deployment_id ? cfg->deployment_id : "", summary);
    jbuf_puts(out, "{\"text\":");
    jbuf_string(out, text);
    jbuf_puts(out, "}");
}
