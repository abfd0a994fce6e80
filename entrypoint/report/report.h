/* The deploy report: what the phases did, passed from the worker process to
 * PID 1 through a pipe, logged as one summary line and sent to the webhook. */
#ifndef BANDAGE_REPORT_H
#define BANDAGE_REPORT_H

#include <stddef.h>

#include "config.h"
#include "json.h"

#define REPORT_MAX_ERRORS 8
#define REPORT_MAX_MIGRATIONS 32 /* per-migration entries kept; later ones are counted */
#define REPORT_MIGRATION_NAME 128
#define REPORT_MAX_FINDINGS 8    /* statement-check findings kept; all are counted */

enum report_outcome { OUTCOME_OK, OUTCOME_SKIPPED, OUTCOME_FAILED };

struct report_error {
    char phase[16];    /* "config", "wait", "reset", "schema-file", "hook", ... */
    char code[16];     /* SQLSTATE, or a short code like "timeout" */
    char message[400]; /* never a password: libpq/server text, redacted input */
};

/* A migration this start applied, or the one that failed. */
struct report_migration {
    char name[REPORT_MIGRATION_NAME]; /* truncated past 127 bytes */
    int failed;
    long ms;
};

/* A finding of the statement checks (db/checks.c) on a pending statement. */
struct report_finding {
    char migration[REPORT_MIGRATION_NAME];
    int line;
    char rule[24];
    char cls[12];        /* "breaking", "long-lock", "not-checked" */
    char table[64];      /* "" when none */
    long long rows;      /* the catalog's estimate; -1 unknown (never analyzed, or no table) */
    long long bytes;     /* pg_total_relation_size; -1 unknown */
    int acknowledged;    /* a "-- bandage:allow" comment names its rule */
};

/* Fixed size and flat so that it can cross a pipe as bytes (same binary). */
struct deploy_report {
    int outcome;            /* enum report_outcome */
    int exit_code;          /* the phases' exit code, 0 when they succeeded */
    int reset_ran;          /* 1 when this start reset the database */
    char reset_at[40];      /* RFC 3339, when reset_ran */
    char skip_reason[96];   /* why a requested reset did not run */
    char database[64];      /* current_database(), when connected */
    int wait_attempts;
    long wait_ms;
    long reset_ms;
    long statements;        /* schema-file statements applied */
    long bytes;             /* schema-file bytes applied */
    int dependents_dropped; /* objects outside --schemas dropped (--drop-dependents) */
    int old_schemas_pending; /* a large reset's old schemas are left to drop beside the app */
    int restored;           /* schemas swapped back by --restore-previous in this start */
    int kept_schemas;       /* kept by --keep-previous after this start (bandage.kept_schemas) */
    long long kept_bytes;   /* their size on disk when kept */
    int relayed;            /* a pooler relays the connection (not sent: for db_release_locks) */
    int may_drop_dependents; /* --drop-dependents, for the old schemas' drop (not sent) */
    char first_dependent[160]; /* the first of them, described */
    int n_errors;
    struct report_error errors[REPORT_MAX_ERRORS];
    int migrations_ran;     /* 1 when --migrations was compared with the database */
    int migrations_applied; /* by this start */
    int migrations_skipped; /* applied before this start */
    int migrations_failed;  /* 0 or 1: the first failure stops the run */
    int migrations_pending; /* still not applied (--plan, or after a failure) */
    long migrate_ms;
    char last_migration[256]; /* the newest applied migration, "" if none (LAST_DB_MIGRATION) */
    int n_migrations;         /* entries stored in migrations[] */
    int migrations_omitted;   /* applied ones past REPORT_MAX_MIGRATIONS, not stored */
    struct report_migration migrations[REPORT_MAX_MIGRATIONS];
    int checks_ran;           /* the pending statements were checked (--migration-checks) */
    int checks_breaking, checks_long_lock, checks_acknowledged, checks_not_checked;
    int n_findings;           /* entries stored in findings[] (unacknowledged ones first) */
    struct report_finding findings[REPORT_MAX_FINDINGS];
};

void report_init(struct deploy_report *r);

/* Adds an error (truncated to fit; further ones past the limit are counted
 * by n_errors but not stored). */
void report_add_error(struct deploy_report *r, const char *phase, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An error that stops the start before anything is applied: reported as
 * report_add_error does, and its text kept in kept (what --plan's last line
 * says). Returns rc, so that `return report_refusal(...)` ends the step. */
int report_refusal(struct deploy_report *r, char *kept, size_t keptlen, int rc,
                   const char *phase, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Counts a migration applied (failed 0) or failed (1) in ms, and keeps its
 * entry while there is room (a failure always gets the last slot). */
void report_add_migration(struct deploy_report *r, const char *name, int failed, long ms);

/* Counts a finding and keeps it while there is room. */
void report_add_finding(struct deploy_report *r, const struct report_finding *f);

/* The current time as RFC 3339 UTC with milliseconds. */
void report_timestamp(char *buf, size_t len);

/* How the app ended, for the "exit" event. */
struct app_exit {
    int exit_code;   /* bandage's exit code: the app's, or 128+N */
    int signal;      /* N when the app died of signal N, else 0 */
    long uptime_ms;  /* from spawn to exit */
};

/* The deploy event as JSON (the webhook's "json" format). total_ms: from
 * bandage's start to the app's spawn (or to the end of the phases). */
void report_deploy_json(struct jbuf *out, const struct deploy_report *r,
                        const struct config *cfg, long total_ms);

/* The exit event as JSON. */
void report_exit_json(struct jbuf *out, const struct app_exit *e, const struct config *cfg);

/* One human line: "deploy ok: reset in 120 ms, ..." (no "bandage:" prefix). */
void report_deploy_summary(char *buf, size_t len, const struct deploy_report *r, long total_ms);
/* The first error's message, which the summary leaves to the log lines
 * before it; "" when there is none. The webhook's text adds it. */
const char *report_deploy_detail(const struct deploy_report *r);
void report_exit_summary(char *buf, size_t len, const struct app_exit *e);

/* {"text": "<summary>"} for Slack, Discord (/slack) and Mattermost. */
void report_slack_json(struct jbuf *out, const char *summary, const struct config *cfg);

#endif
