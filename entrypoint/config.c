/* The settings table and its parser: flags win over the environment, the
 * environment over the default. The same table drives --help and the README. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dburl.h"

#ifndef BANDAGE_VERSION
#define BANDAGE_VERSION "0.0.0-dev"
#endif
const char bandage_version[] = BANDAGE_VERSION;

enum setting_kind { KIND_STRING, KIND_DURATION, KIND_CHOICE, KIND_BOOL, KIND_COUNT };

/* --help's sections, in their order; the table lists each group's settings together. */
enum setting_group {
    GROUP_DATABASE, GROUP_RESET, GROUP_MIGRATIONS, GROUP_REPORT, GROUP_PROCESS, GROUP_LOGGING
};
static const char *const group_titles[] = {
    "Database", "Reset (deletes the data of --schemas)", "Migrations and --plan",
    "Report", "Process (PID 1)", "Logging",
};

/* A variable the platform sets, consulted when a setting's own is unset. */
struct fallback {
    const char *env;
    /* KIND_DURATION: the setting's value (ms) from the variable's duration;
     * < 0: the setting's default instead. NULL: the variable's value as is. */
    long (*derive_ms)(long fallback_ms);
};

struct setting {
    const char *flag;          /* long flag, without "--" */
    const char *env;           /* environment variable */
    const struct fallback *fallback; /* consulted when env is unset (or NULL) */
    const char *default_value; /* parsed like a value; NULL: unset */
    const char *default_doc;   /* the default as documented */
    enum setting_kind kind;
    const char *const *choices; /* KIND_CHOICE: NULL-terminated, index = value */
    long min_ms, max_ms;        /* KIND_DURATION bounds (ms); KIND_COUNT's (a number) */
    size_t offset;              /* into struct config */
    const char *help;
    /* Optional: 0 if value is acceptable, else -1 with why filled (the
     * setting's name is prefixed by the caller). */
    int (*check)(const char *value, char *why, size_t len);
    enum setting_group group;   /* where --help and the README list it */
    const char *placeholder;    /* the value's name in --help; NULL: from the kind
                                   (SECS, the choices, [true|false]) */
};

static int check_conninfo(const char *value, char *why, size_t len);
static int check_schemas(const char *value, char *why, size_t len);
static int check_webhook_url(const char *value, char *why, size_t len);
static int check_readable_file(const char *value, char *why, size_t len);
static int check_regular_file(const char *value, char *why, size_t len);
static int check_shell_exists(const char *value, char *why, size_t len);
static int check_dead_connection_timeout(const char *value, char *why, size_t len);

static long grace_within_draining(long draining_ms);
static long report_within_draining(long draining_ms);

/* Railway sends SIGTERM, then SIGKILL this long after (0 unless set). */
#define DRAINING_ENV "RAILWAY_DEPLOYMENT_DRAINING_SECONDS"

static const struct fallback railway_deployment_id = {"RAILWAY_DEPLOYMENT_ID", NULL};
static const struct fallback railway_draining_grace = {DRAINING_ENV, grace_within_draining};
static const struct fallback railway_draining_report = {DRAINING_ENV, report_within_draining};

static const char *const reset_choices[] = {"never", "once", "always", NULL};
static const char *const forward_choices[] = {"group", "child", NULL};
static const char *const webhook_format_choices[] = {"json", "slack", NULL};
static const char *const log_format_choices[] = {"text", "json", NULL};
static const char *const checks_choices[] = {"warn", "refuse", "off", NULL};
static const char *const log_level_choices[] = {"error", "warn", "info", "debug", NULL};
/* KIND_BOOL: index 0 is off, 1 is on; parse_bool also takes 0/1, no/yes, off/on. */
static const char *const bool_choices[] = {"false", "true", NULL};

#define DAY_MS (86400L * 1000L)
#define FIELD(name) offsetof(struct config, name)

static const struct setting settings[] = {
    /* database */
    {"database-url", "DATABASE_URL", NULL, NULL, "(libpq's PG* variables)",
     KIND_STRING, NULL, 0, 0, FIELD(database_url),
     "libpq URI or key=value conninfo; Prisma's URL parameters are understood (see DATABASE_URL "
     "from Prisma)", check_conninfo, GROUP_DATABASE, "URL"},
    {"direct-url", "DIRECT_URL", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(direct_url),
     "Prisma's directUrl: an unpooled URL that bandage's own connections use instead of "
     "--database-url (the app and the hooks keep DATABASE_URL); needed for a reset or "
     "--migrations when DATABASE_URL has pgbouncer=true",
     check_conninfo, GROUP_DATABASE, "URL"},
    {"wait-timeout", "BANDAGE_WAIT_TIMEOUT", NULL, "60", "60 (s)",
     KIND_DURATION, NULL, 0, DAY_MS, FIELD(wait_timeout_ms),
     "give up waiting for the database after this; 0 = one attempt, no retry", NULL,
     GROUP_DATABASE, NULL},
    {"connect-timeout", "BANDAGE_CONNECT_TIMEOUT", NULL, "10", "10 (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(connect_timeout_ms),
     "one connection attempt's limit", NULL, GROUP_DATABASE, NULL},
    {"dead-connection-timeout", "BANDAGE_DEAD_CONNECTION_TIMEOUT", NULL, "30", "30 (s)",
     KIND_DURATION, NULL, 0, DAY_MS, FIELD(dead_connection_timeout_ms),
     "once connected, a server that stops answering (host gone without a reset) is given up "
     "within about this long: exit 69. TCP keepalives and tcp_user_timeout, so a long statement "
     "is not cut; 0 = the kernel's defaults (hours); the URL's keepalives_* and "
     "tcp_user_timeout win",
     check_dead_connection_timeout, GROUP_DATABASE, NULL},
    /* reset */
    {"reset", "BANDAGE_RESET", NULL, "never", "never",
     KIND_CHOICE, reset_choices, 0, 0, FIELD(reset),
     "drop and rebuild the --schemas, deleting their data: never, once (per deployment id), "
     "always", NULL, GROUP_RESET, NULL},
    {"confirm-database", "BANDAGE_CONFIRM_DATABASE", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(confirm_database),
     "a reset runs only against the database this names: NAME, or NAME:IDENTIFIER with the "
     "server's system identifier (--plan shows it), which tells apart databases sharing a "
     "name", NULL, GROUP_RESET, "NAME[:IDENTIFIER]"},
    {"deployment-id", "BANDAGE_DEPLOYMENT_ID", &railway_deployment_id, NULL,
     "RAILWAY_DEPLOYMENT_ID", KIND_STRING, NULL, 0, 0, FIELD(deployment_id),
     "identifies one deploy: --reset once resets once per id. Needed for --reset once except "
     "on Railway, which sets RAILWAY_DEPLOYMENT_ID; elsewhere use e.g. the git commit",
     NULL, GROUP_RESET, "ID"},
    {"schemas", "BANDAGE_SCHEMAS", NULL, "public", "(the URL's schema parameter, else public)",
     KIND_STRING, NULL, 0, 0, FIELD(schemas),
     "comma-separated schemas to drop and recreate (spaces around names ignored, case kept)",
     check_schemas, GROUP_RESET, "NAME[,NAME...]"},
    {"create-schemas", "BANDAGE_CREATE_SCHEMAS", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(create_schemas),
     "a --schemas entry that does not exist yet may be created (else: refused)", NULL,
     GROUP_RESET, NULL},
    {"drop-dependents", "BANDAGE_DROP_DEPENDENTS", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(drop_dependents),
     "objects in other schemas that depend on a reset schema may be dropped (else: refused)",
     NULL, GROUP_RESET, NULL},
    {"lock-wait", "BANDAGE_LOCK_WAIT", NULL, "10", "10 (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(lock_wait_ms),
     "how long a reset keeps trying to lock the tables it drops, and a migration its locks "
     "(attempts of at most 200 ms; then exit 69, the migration rolled back)", NULL,
     GROUP_RESET, NULL},
    {"keep-previous", "BANDAGE_KEEP_PREVIOUS", NULL, "1", "1",
     KIND_COUNT, NULL, 0, 100, FIELD(keep_previous),
     "a reset renames the schemas it replaces aside (bandage_kept_N: data, sequences, grants "
     "as they were, at the cost of their disk) instead of dropping them, and keeps the newest "
     "N of each; older ones are dropped beside the app. 0 = drop at once (see Undo a reset)",
     NULL, GROUP_RESET, "N"},
    {"restore-previous", "BANDAGE_RESTORE_PREVIOUS", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(restore_previous),
     "instead of a reset: swap the newest kept schemas back under their names (the current "
     "ones are kept in turn, so a restore can be undone), once per deployment id; needs "
     "--confirm-database; then the app starts", NULL, GROUP_RESET, NULL},
    {"schema-file", "BANDAGE_SCHEMA_FILE", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(schema_file),
     "SQL applied by the reset, all-or-nothing (a regular file of plain SQL statements)",
     check_regular_file, GROUP_RESET, "PATH"},
    {"allow-empty-schema", "BANDAGE_ALLOW_EMPTY_SCHEMA", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(allow_empty_schema),
     "a --schema-file with no statements may reset the schemas to empty (else: refused)", NULL,
     GROUP_RESET, NULL},
    {"schema-command", "BANDAGE_SCHEMA_COMMAND", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(schema_command),
     "command run after the reset commits (e.g. npx prisma db push)",
     check_shell_exists, GROUP_RESET, "COMMAND"},
    {"before-reset", "BANDAGE_BEFORE_RESET", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(before_reset),
     "command run before the reset (e.g. a pg_dump backup); failure aborts the reset",
     check_shell_exists, GROUP_RESET, "COMMAND"},
    /* migrations */
    {"migrations", "BANDAGE_MIGRATIONS", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(migrations),
     "a Prisma migrations directory, Prisma 6/7's (prisma/migrations) or Prisma 8's (migrations, "
     "with app/): apply what is pending (with --reset: rebuild from all of it)",
     NULL, GROUP_MIGRATIONS, "DIR"},
    {"migrations-strict", "BANDAGE_MIGRATIONS_STRICT", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(migrations_strict),
     "an applied migration whose file changed is an error, not a warning", NULL,
     GROUP_MIGRATIONS, NULL},
    {"migration-checks", "BANDAGE_MIGRATION_CHECKS", NULL, "warn", "warn",
     KIND_CHOICE, checks_choices, 0, 0, FIELD(migration_checks),
     "pending statements that break the running deployment (drops, renames, type changes, NOT "
     "NULL) or take a long lock (index without CONCURRENTLY, constraint without NOT VALID, "
     "rewrites): warn, refuse (exit 65, nothing applied) or off; a \"-- bandage:allow RULE\" "
     "comment before a statement acknowledges it (see Statement checks)", NULL,
     GROUP_MIGRATIONS, NULL},
    {"plan", "BANDAGE_PLAN", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(plan),
     "print what this start would do to the database, change nothing; exit 0, or the code "
     "the start would exit with when it would be refused", NULL, GROUP_MIGRATIONS, NULL},
    {"history", "BANDAGE_HISTORY", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(history),
     "print the recent deploys (resets, restores, migrations applied) and the kept schemas "
     "with their sizes, change nothing, start nothing; JSON lines with --log-format json",
     NULL, GROUP_MIGRATIONS, NULL},
    /* report */
    {"webhook-url", "BANDAGE_WEBHOOK_URL", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(webhook_url),
     "POST the deploy report here", check_webhook_url, GROUP_REPORT, "URL"},
    {"webhook-timeout", "BANDAGE_WEBHOOK_TIMEOUT", &railway_draining_report, "5",
     "5, or 1 under " DRAINING_ENV " (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(webhook_timeout_ms),
     "limit for the whole webhook POST, retries included. Unset, with " DRAINING_ENV
     " above 0: 1 s, the second that --grace leaves before Railway's SIGKILL (or the whole "
     "draining time, if shorter)", NULL, GROUP_REPORT, NULL},
    {"webhook-format", "BANDAGE_WEBHOOK_FORMAT", NULL, "json", "json",
     KIND_CHOICE, webhook_format_choices, 0, 0, FIELD(webhook_format),
     "json (the full report) or slack ({\"text\": ...}, also Discord and Mattermost)", NULL,
     GROUP_REPORT, NULL},
    {"webhook-ca-file", "BANDAGE_WEBHOOK_CA_FILE", NULL, NULL,
     "(SSL_CERT_FILE, system bundle)", KIND_STRING, NULL, 0, 0,
     FIELD(webhook_ca_file), "CA bundle for an https:// webhook", check_readable_file,
     GROUP_REPORT, "PATH"},
    /* process */
    {"forward-to", "BANDAGE_FORWARD_TO", NULL, "group", "group",
     KIND_CHOICE, forward_choices, 0, 0, FIELD(forward_to),
     "group: signals go to the app's whole process group; child: to the app alone", NULL,
     GROUP_PROCESS, NULL},
    {"grace", "BANDAGE_GRACE", &railway_draining_grace, "10",
     "10, or " DRAINING_ENV " - 1 (s)",
     KIND_DURATION, NULL, 0, DAY_MS, FIELD(grace_ms),
     "after forwarding SIGTERM/SIGINT, SIGKILL the app's group this much later; under "
     "Railway's draining time, 1 s before Railway's SIGKILL (at least 0), leaving that second "
     "to the exit report", NULL, GROUP_PROCESS, NULL},
    /* logging */
    {"log-format", "BANDAGE_LOG_FORMAT", NULL, "text", "text",
     KIND_CHOICE, log_format_choices, 0, 0, FIELD(log_format),
     "text or json (one object per line)", NULL, GROUP_LOGGING, NULL},
    {"log-level", "BANDAGE_LOG_LEVEL", NULL, "info", "info",
     KIND_CHOICE, log_level_choices, 0, 0, FIELD(log_level),
     "error, warn, info, debug", NULL, GROUP_LOGGING, NULL},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

/* Copies config_load makes (argv secrets, the derived conninfo, the
 * normalised schema list) live here until the next config_load or
 * config_release: cfg's strings stay valid for the life of the process and
 * nothing is lost (valgrind). */
#define MAX_OWNED 16
static char *owned[MAX_OWNED];
static size_t n_owned;

static char *keep(char *p)
{
    if (p && n_owned == MAX_OWNED) {
        free(p);
        return NULL;
    }
    if (p)
        owned[n_owned++] = p;
    return p;
}

void config_release(void)
{
    while (n_owned > 0)
        free(owned[--n_owned]);
}

const char *config_reset_mode_name(int mode)
{
    return (mode >= RESET_NEVER && mode <= RESET_ALWAYS) ? reset_choices[mode] : "?";
}

/* "1", "0.25", "1.5s", "500ms": a non-negative duration, to milliseconds.
 * Whole milliseconds: digits past the third decimal are dropped, but a
 * non-zero value below 1 ms is -2 (it would silently become 0, which means
 * "skip" or "no limit" to some settings). Every product is bounded first:
 * digits stop being read past DAY_MS, seconds past DAY_MS / 1000, so
 * neither the accumulation nor seconds * 1000 can overflow a 32-bit long. */
static int parse_duration_ms(const char *text, long *out_ms)
{
    const char *p = text;
    long whole = 0, frac = 0, frac_scale = 1000;
    int below_ms = 0; /* a non-zero digit past the third decimal */

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > DAY_MS)
            return -1;
        whole = whole * 10 + (*p - '0');
    }
    if (strcmp(p, "ms") == 0) {
        *out_ms = whole;
        return 0;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++) {
            if (frac_scale > 1) {
                frac_scale /= 10;
                frac += (*p - '0') * frac_scale;
            } else if (*p != '0') {
                below_ms = 1;
            }
        }
    }
    if (*p == 's')
        p++;
    if (*p != '\0' || whole > DAY_MS / 1000)
        return -1;
    *out_ms = whole * 1000 + frac;
    return *out_ms == 0 && below_ms ? -2 : 0;
}

/* true/false, 1/0, yes/no, on/off, any case: 1 or 0; -1 if none. */
static int parse_bool(const char *text)
{
    static const char *const on[] = {"true", "1", "yes", "on"};
    static const char *const off[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        if (strcasecmp(text, on[i]) == 0)
            return 1;
        if (strcasecmp(text, off[i]) == 0)
            return 0;
    }
    return -1;
}

static void origin_name(const struct setting *s, const char *origin,
                        char *buf, size_t len)
{
    if (strcmp(origin, "flag") == 0)
        snprintf(buf, len, "--%s", s->flag);
    else if (strcmp(origin, "fallback") == 0)
        snprintf(buf, len, "%s", s->fallback->env);
    else if (strcmp(origin, "env") == 0)
        snprintf(buf, len, "%s", s->env);
    else if (strncmp(origin, "url:", 4) == 0)
        snprintf(buf, len, "%s's schema parameter (the default of --%s)", origin + 4, s->flag);
    else
        snprintf(buf, len, "the default of --%s", s->flag);
}

static void choices_list(const struct setting *s, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; s->choices[i] && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                 i ? ", " : "", s->choices[i]);
}

/* Store one value; origin ("flag", "env", "fallback", "default") is for the message. */
static int apply_value(struct config *cfg, const struct setting *s,
                       const char *value, const char *origin,
                       char *err, size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    char name[96];

    origin_name(s, origin, name, sizeof name);
    if (s->check) {
        char why[320];
        if (s->check(value, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s: %s", name, why);
            return -1;
        }
    }
    switch (s->kind) {
    case KIND_STRING:
        *(const char **)(void *)field = value[0] ? value : NULL;
        return 0;
    case KIND_DURATION: {
        long ms;
        int rc = parse_duration_ms(value, &ms);
        if (rc == -2) {
            snprintf(err, errlen,
                     "%s: '%s' is below 1 ms, the smallest duration bandage counts; use %s to "
                     "%ld s, like 30, 2.5 or 500ms",
                     name, value, s->min_ms > 0 ? "more than 0" : "0", s->max_ms / 1000);
            return -1;
        }
        if (rc != 0 || ms < s->min_ms || ms > s->max_ms) {
            snprintf(err, errlen,
                     "%s: '%s' is not a valid duration; use seconds like 30, 2.5 or 500ms, "
                     "%s to %ld s",
                     name, value, s->min_ms > 0 ? "more than 0" : "0", s->max_ms / 1000);
            return -1;
        }
        *(long *)(void *)field = ms;
        return 0;
    }
    case KIND_BOOL: {
        int on = parse_bool(value);
        if (on < 0) {
            snprintf(err, errlen, "%s: '%s' is not a boolean; use true/false, 1/0, yes/no or "
                                  "on/off", name, value);
            return -1;
        }
        *(int *)(void *)field = on;
        return 0;
    }
    case KIND_COUNT: {
        char *end;
        long n = strtol(value, &end, 10);
        if (!isdigit((unsigned char)value[0]) || *end || n < s->min_ms || n > s->max_ms) {
            snprintf(err, errlen, "%s: '%s' is not a whole number from %ld to %ld", name,
                     value, s->min_ms, s->max_ms);
            return -1;
        }
        *(long *)(void *)field = n;
        return 0;
    }
    case KIND_CHOICE:
        for (int i = 0; s->choices[i]; i++) {
            if (strcmp(value, s->choices[i]) == 0) {
                *(int *)(void *)field = i;
                return 0;
            }
        }
        char list[128];
        choices_list(s, list, sizeof list);
        snprintf(err, errlen, "%s: '%s' is not one of: %s", name, value, list);
        return -1;
    }
    return -1;
}

/* Railway SIGKILLs the whole container DRAINING_ENV after its SIGTERM: the
 * app's grace ends a second before, and the exit report (sent once the app
 * is gone, within --webhook-timeout) gets that second. */
#define REPORT_SHARE_MS 1000L

static long grace_within_draining(long draining_ms)
{
    return draining_ms > REPORT_SHARE_MS ? draining_ms - REPORT_SHARE_MS : 0;
}

static long report_within_draining(long draining_ms)
{
    if (draining_ms == 0)
        return -1; /* no exit report can go out: the deploy report keeps the default */
    return draining_ms < REPORT_SHARE_MS ? draining_ms : REPORT_SHARE_MS;
}

/* The value derive_ms makes from the fallback variable's text
 * (written into buf), the default, or the text itself when it is not a
 * duration, so that apply_value's error names the variable. */
static const char *derive_from_fallback(const struct setting *s, const char *text,
                                        const char **origin, char *buf, size_t len)
{
    long ms;
    if (parse_duration_ms(text, &ms) != 0)
        return text;
    long derived = s->fallback->derive_ms(ms);
    if (derived < 0) {
        *origin = "default";
        return s->default_value;
    }
    snprintf(buf, len, "%ldms", derived);
    return buf;
}

/* The value a setting gets from the environment or its default, and where
 * from; buf holds a value derived from a fallback. */
static const char *env_or_default(const struct setting *s, const char **origin,
                                  char *buf, size_t len)
{
    const char *v = getenv(s->env);
    if (v && v[0]) {
        *origin = "env";
        return v;
    }
    if (s->fallback) {
        v = getenv(s->fallback->env);
        if (v && v[0]) {
            *origin = "fallback";
            return s->fallback->derive_ms ? derive_from_fallback(s, v, origin, buf, len) : v;
        }
    }
    *origin = "default";
    return s->default_value;
}

static int is_valid_schema_name(const char *name, size_t len)
{
    if (len == 0 || len > 63)
        return 0;
    if ((len == 7 && strncmp(name, "bandage", 7) == 0) ||
        (len >= 3 && strncmp(name, "pg_", 3) == 0) ||
        (len == 18 && strncmp(name, "information_schema", 18) == 0))
        return 0;
    /* bandage_aside_N names the schemas a large reset moves aside. */
    return !(len >= 14 && strncmp(name, "bandage_aside_", 14) == 0);
}

/* Is the n-byte name at p one of the comma-separated names in list[0..used)? */
static int named_in(const char *list, size_t used, const char *p, size_t n)
{
    for (size_t i = 0; i < used;) {
        const char *comma = memchr(list + i, ',', used - i);
        size_t m = comma ? (size_t)(comma - (list + i)) : used - i;
        if (m == n && strncmp(list + i, p, n) == 0)
            return 1;
        i += m + 1;
    }
    return 0;
}

/* "public, audit" -> "public,audit": each item trimmed of spaces (a list
 * written after a comma-space style must not name ' audit'), case kept
 * (PUBLIC is another schema), none empty, reserved or named twice. Returns
 * the list in malloc'd storage, or NULL with why filled. */
static char *normalize_schemas(const char *value, char *why, size_t len)
{
    char *out = malloc(strlen(value) + 1);
    size_t used = 0;
    const char *p = value;

    if (!out) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        size_t n = (size_t)(end - p);
        if (n == 0) {
            snprintf(why, len, "'' (an empty item) is not a schema; list names separated by "
                               "single commas, like public,audit");
            break;
        }
        if (named_in(out, used, p, n)) {
            /* A schema moved aside twice cannot be put back right. */
            snprintf(why, len, "'%.*s' is listed twice; name each schema once", (int)n, p);
            break;
        }
        if (!is_valid_schema_name(p, n)) {
            snprintf(why, len,
                     "'%.*s' is not a schema bandage may reset; list 1-63 character names "
                     "separated by commas, not bandage, bandage_aside_*, pg_* or "
                     "information_schema", (int)n, p);
            break;
        }
        if (used)
            out[used++] = ',';
        memcpy(out + used, p, n);
        used += n;
        if (!comma) {
            out[used] = '\0';
            return out;
        }
        p = comma + 1;
    }
    free(out);
    return NULL;
}

static int check_schemas(const char *value, char *why, size_t len)
{
    char *list = normalize_schemas(value, why, len);
    free(list);
    return list ? 0 : -1;
}

static int check_conninfo(const char *value, char *why, size_t len)
{
    struct dburl url;
    if (!value[0])
        return 0;
    if (dburl_parse(value, &url, why, len) != 0)
        return -1;
    dburl_free(&url);
    return 0;
}

static int check_webhook_url(const char *value, char *why, size_t len)
{
    if (!value[0] || strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0)
        return 0;
    snprintf(why, len, "must start with http:// or https://");
    return -1;
}

static int check_readable_file(const char *value, char *why, size_t len)
{
    struct stat st;
    FILE *f;
    if (!value[0])
        return 0;
    /* fopen() opens a directory for reading; the read fails only later. */
    if (stat(value, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, len, "'%s' is a directory; give the path of a file", value);
        return -1;
    }
    if ((f = fopen(value, "r")) != NULL) {
        fclose(f);
        return 0;
    }
    snprintf(why, len, "cannot read '%s': %s; give the path of a readable file", value,
             strerror(errno));
    return -1;
}

/* The schema file decides what the reset leaves: a directory read as an
 * empty file reset the database to nothing. */
static int check_regular_file(const char *value, char *why, size_t len)
{
    struct stat st;
    if (value[0] && stat(value, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, len, "'%s' is a directory, not a file (docker run -v makes an empty "
                           "directory where the host file it names does not exist); give the "
                           "path of the schema file", value);
        return -1;
    }
    if (value[0] && stat(value, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(why, len, "'%s' is not a regular file; give the path of a plain file of SQL "
                           "statements", value);
        return -1;
    }
    return check_readable_file(value, why, len);
}

/* Hooks run through /bin/sh; a scratch image has none: say so up front,
 * not at reset time. */
static int check_shell_exists(const char *value, char *why, size_t len)
{
    if (!value[0] || access("/bin/sh", X_OK) == 0)
        return 0;
    snprintf(why, len, "runs through /bin/sh, which this system lacks; use an image with a shell "
                       "or drop the hook");
    return -1;
}

/* Keepalive probes are set in whole seconds: below 1 s the bound would not
 * mean what it says (and one lost packet would end the connection). */
static int check_dead_connection_timeout(const char *value, char *why, size_t len)
{
    long ms;
    if (parse_duration_ms(value, &ms) != 0 || ms == 0 || ms >= 1000)
        return 0; /* a bad duration: apply_value says so */
    snprintf(why, len, "'%s' is below 1 s; use 0 (the kernel's defaults) or 1 to %ld s, like 30",
             value, DAY_MS / 1000);
    return -1;
}

/* libpq reads PGCONNECT_TIMEOUT as connect_timeout, and bandage's attempt
 * limit multiplies it by 1000: a whole number of seconds, bounded. */
static int check_pgconnect_timeout(char *err, size_t errlen)
{
    const char *text = getenv("PGCONNECT_TIMEOUT");
    char *end;
    if (!text || !text[0])
        return 0;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno == 0 && *end == '\0' && v <= 86400)
        return 0;
    snprintf(err, errlen, "PGCONNECT_TIMEOUT: '%s' is not a whole number of seconds up to 86400 "
                          "(libpq's connect_timeout; 0 or less: no limit)", text);
    return -1;
}

/* One more line for main to log at start, after any already there. */
static void add_warning(struct config *cfg, const char *text)
{
    size_t n = strlen(cfg->start_warnings);
    snprintf(cfg->start_warnings + n, sizeof cfg->start_warnings - n, "%s%s", n ? "; " : "", text);
}

/* Railway's default draining time is 0: SIGKILL with the SIGTERM. */
static void warn_no_draining_time(struct config *cfg)
{
    const char *text = getenv(DRAINING_ENV);
    long ms;
    if (cfg->command && text && text[0] && parse_duration_ms(text, &ms) == 0 && ms == 0)
        add_warning(cfg, DRAINING_ENV " is 0: Railway SIGKILLs the app with its SIGTERM, so "
                                      "there is no graceful shutdown; set it (e.g. 10)");
}

/* Rules that join two settings. */
static int validate(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->restore_previous && cfg->reset == RESET_ALWAYS) {
        snprintf(err, errlen,
                 "--restore-previous with --reset always would reset right after restoring; "
                 "use --reset once or never with it");
        return -1;
    }
    if (cfg->restore_previous && !cfg->deployment_id) {
        snprintf(err, errlen,
                 "--restore-previous needs a deployment id, so that a restart does not swap "
                 "the schemas back again; set --deployment-id or BANDAGE_DEPLOYMENT_ID "
                 "(Railway sets RAILWAY_DEPLOYMENT_ID)");
        return -1;
    }
    if (cfg->reset == RESET_ONCE && !cfg->deployment_id) {
        snprintf(err, errlen,
                 "--reset once needs a deployment id; set --deployment-id or BANDAGE_DEPLOYMENT_ID "
                 "(Railway sets RAILWAY_DEPLOYMENT_ID)");
        return -1;
    }
    /* A transaction pooler hands each transaction to any server session: the
     * reset's advisory lock and session settings would not hold. */
    if (cfg->url_pgbouncer &&
        (cfg->reset != RESET_NEVER || cfg->migrations || cfg->restore_previous)) {
        snprintf(err, errlen,
                 "%s has pgbouncer=true (a transaction pooler), through which a %s cannot hold "
                 "its lock; set DIRECT_URL (or --direct-url) to the database's unpooled URL, "
                 "Prisma's directUrl",
                 cfg->direct_url ? "DIRECT_URL" : "DATABASE_URL",
                 cfg->restore_previous ? "restore" : cfg->reset != RESET_NEVER ? "reset"
                                                                       : "--migrations run");
        return -1;
    }
    return check_pgconnect_timeout(err, errlen);
}

/* cfg->conninfo, url_schema and url_pgbouncer from the URL bandage uses
 * (DIRECT_URL when set, else DATABASE_URL). Both were checked already. */
static int derive_connection(struct config *cfg, char *err, size_t errlen)
{
    struct dburl app = {0}, direct = {0};
    char why[320];
    int rc = -1;

    if ((cfg->database_url && dburl_parse(cfg->database_url, &app, why, sizeof why) != 0) ||
        (cfg->direct_url && dburl_parse(cfg->direct_url, &direct, why, sizeof why) != 0)) {
        snprintf(err, errlen, "%s: %s", cfg->direct_url ? "DIRECT_URL" : "DATABASE_URL", why);
        goto out;
    }
    if (app.schema && direct.schema && strcmp(app.schema, direct.schema) != 0) {
        snprintf(err, errlen, "DATABASE_URL and DIRECT_URL name different schema parameters; "
                              "they are one database: make them agree, or set --schemas");
        goto out;
    }
    const char *schema = direct.schema ? direct.schema : app.schema;
    struct dburl *used = cfg->direct_url ? &direct : cfg->database_url ? &app : NULL;
    if ((schema && !(cfg->url_schema = keep(strdup(schema)))) ||
        (used && !(cfg->conninfo = keep(used->conninfo)))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (used) {
        used->conninfo = NULL; /* kept */
        cfg->url_pgbouncer = used->pgbouncer;
    }
    if (used && used->note[0])
        snprintf(cfg->url_note, sizeof cfg->url_note, "%s: %s",
                 cfg->direct_url ? "DIRECT_URL" : "DATABASE_URL", used->note);
    rc = 0;
out:
    dburl_free(&app);
    dburl_free(&direct);
    return rc;
}

/* Does this flag's value hold a secret? A password in a URL (or what cannot
 * be parsed: it may hide one); the whole webhook URL (its path is a token). */
static int flag_holds_secret(const struct setting *s, const char *value)
{
    struct dburl url;
    char why[8];
    if (s->offset == FIELD(webhook_url))
        return value[0] != '\0';
    if (s->offset != FIELD(database_url) && s->offset != FIELD(direct_url))
        return 0;
    if (dburl_parse(value, &url, why, sizeof why) != 0)
        return 1;
    int secret = url.has_secret;
    dburl_free(&url);
    return secret;
}

/* Every user can read /proc/PID/cmdline (ps) for as long as PID 1 lives:
 * a secret given as a flag is copied for bandage's use and its argv bytes
 * overwritten, the flag name kept. cfg->start_warnings says which. */
static int hide_argv_secrets(struct config *cfg, char **flag_values)
{
    char flags[96] = "", vars[96] = "";
    for (size_t i = 0; i < N_SETTINGS; i++) {
        char *value = flag_values[i];
        if (!value || !flag_holds_secret(&settings[i], value))
            continue;
        if (!(flag_values[i] = keep(strdup(value))))
            return -1;
        memset(value, 'x', strlen(value));
        size_t n = strlen(flags), m = strlen(vars);
        snprintf(flags + n, sizeof flags - n, "%s--%s", n ? ", " : "", settings[i].flag);
        snprintf(vars + m, sizeof vars - m, "%s%s", m ? ", " : "", settings[i].env);
    }
    if (flags[0])
        snprintf(cfg->start_warnings, sizeof cfg->start_warnings,
                 "%s on the command line can be read by every user (ps, /proc/PID/cmdline): "
                 "bandage blanked it once read, but set %s in the environment instead",
                 flags, vars);
    return 0;
}

/* getopt_long accepts unique prefixes ("--wait" for --wait-timeout); a later
 * flag could change what a prefix means, so only whole names are taken. */
static int is_whole_flag(const char *token, const char *name)
{
    size_t n = strcspn(token + 2, "=");
    return strncmp(token, "--", 2) == 0 && strlen(name) == n && strncmp(token + 2, name, n) == 0;
}

static void build_long_options(struct option *opts)
{
    size_t i;
    for (i = 0; i < N_SETTINGS; i++)
        opts[i] = (struct option){settings[i].flag,
                                  settings[i].kind == KIND_BOOL ? optional_argument
                                                                : required_argument,
                                  NULL, (int)(i + 256)};
    opts[i++] = (struct option){"help", no_argument, NULL, 'H'};
    opts[i++] = (struct option){"version", no_argument, NULL, 'V'};
    opts[i++] = (struct option){"help-markdown", no_argument, NULL, 'M'};
    opts[i] = (struct option){NULL, 0, NULL, 0};
}

/* A bare boolean flag (`--plan`) is on; `--plan false` and `--plan=false`
 * take the value, which getopt leaves as the next word. */
static char *bool_flag_value(int argc, char **argv)
{
    static char on[] = "true";
    if (optind < argc && parse_bool(argv[optind]) >= 0)
        return argv[optind++];
    return on;
}

/* argv into flag_values (pointers into argv); CONFIG_OK when parsing may go on. */
static enum config_result read_flags(int argc, char **argv, char **flag_values,
                                     char *err, size_t errlen)
{
    struct option long_opts[N_SETTINGS + 4];
    int c;

    build_long_options(long_opts);
    opterr = 0;
    optind = 0; /* 0 fully re-initialises glibc's getopt (tests call this repeatedly) */
    /* "+": stop at the first non-option, so the app's own flags stay its own. */
    for (;;) {
        int token_index = optind > 0 ? optind : 1; /* long options never sit mid-cluster */
        if ((c = getopt_long(argc, argv, "+hV", long_opts, NULL)) == -1)
            return CONFIG_OK;
        if (c == 'h')
            return CONFIG_SHORT_HELP;
        if (c == 'H')
            return CONFIG_HELP;
        if (c == 'V')
            return CONFIG_VERSION;
        if (c == 'M')
            return CONFIG_MARKDOWN;
        if (c >= 256) {
            const char *token = argv[token_index];
            if (!is_whole_flag(token, settings[c - 256].flag)) {
                snprintf(err, errlen, "unknown option '%.*s'; did you mean '--%s'? see 'bandage --help'",
                         (int)strcspn(token, "="), token, settings[c - 256].flag);
                return CONFIG_ERROR;
            }
            flag_values[c - 256] = optarg ? optarg : bool_flag_value(argc, argv);
            continue;
        }
        if (c == '?' && optopt > 0 && optopt < 256)
            snprintf(err, errlen, "unknown option '-%c'; see 'bandage --help'", optopt);
        else if (c == '?' && optopt >= 256)
            snprintf(err, errlen, "option '--%s' needs a value; see 'bandage --help'",
                     settings[optopt - 256].flag);
        else
            snprintf(err, errlen, "unknown option '%s'; see 'bandage --help'", argv[optind - 1]);
        return CONFIG_ERROR;
    }
}

static const struct setting *setting_at(size_t offset)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].offset == offset)
            return &settings[i];
    return NULL;
}

/* --schemas: the URL's schema parameter is its default; the list is kept
 * in its normalised form. */
static int settle_schemas(struct config *cfg, const char *schemas_origin, char *err,
                          size_t errlen)
{
    const struct setting *s = setting_at(FIELD(schemas));
    char origin[32], why[320];
    if (strcmp(schemas_origin, "default") == 0 && cfg->url_schema) {
        snprintf(origin, sizeof origin, "url:%s", cfg->direct_url ? "DIRECT_URL" : "DATABASE_URL");
        if (apply_value(cfg, s, cfg->url_schema, origin, err, errlen) != 0)
            return -1;
    }
    if (cfg->schemas && !(cfg->schemas = keep(normalize_schemas(cfg->schemas, why, sizeof why)))) {
        snprintf(err, errlen, "--schemas: %s", why);
        return -1;
    }
    return 0;
}

enum config_result config_load(struct config *cfg, int argc, char **argv,
                               char *err, size_t errlen)
{
    char *flag_values[N_SETTINGS] = {0};
    const char *schemas_origin = "default";

    memset(cfg, 0, sizeof *cfg);
    config_release();
    enum config_result r = read_flags(argc, argv, flag_values, err, errlen);
    if (r != CONFIG_OK)
        return r;
    if (hide_argv_secrets(cfg, flag_values) != 0) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_ERROR;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *origin = "flag";
        const char *value = flag_values[i];
        char derived[32];
        if (!value)
            value = env_or_default(s, &origin, derived, sizeof derived);
        if (value && apply_value(cfg, s, value, origin, err, errlen) != 0)
            return CONFIG_ERROR;
        if (s->offset == FIELD(schemas))
            schemas_origin = origin;
    }
    cfg->command = optind < argc ? &argv[optind] : NULL;
    warn_no_draining_time(cfg);
    if (derive_connection(cfg, err, errlen) != 0 ||
        settle_schemas(cfg, schemas_origin, err, errlen) != 0)
        return CONFIG_ERROR;
    return validate(cfg, err, errlen) == 0 ? CONFIG_OK : CONFIG_ERROR;
}

#define HELP_WIDTH 80
#define HELP_INDENT 6
#define HELP_ENV_COLUMN 37

/* The value a flag takes, as --help and the README show it. */
static void value_placeholder(const struct setting *s, const char *sep, char *buf, size_t len)
{
    size_t used = 0;
    if (s->placeholder || s->kind == KIND_DURATION) {
        snprintf(buf, len, "%s", s->placeholder ? s->placeholder : "SECS");
        return;
    }
    /* A bare boolean flag is on; the value is optional (`--plan`, `--plan=false`). */
    if (s->kind == KIND_BOOL) {
        snprintf(buf, len, "[true%sfalse]", sep);
        return;
    }
    for (int i = 0; s->choices[i] && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? sep : "", s->choices[i]);
}

/* text's words on lines of at most HELP_WIDTH columns, each indented;
 * a word wider than a line gets one of its own. */
static void print_wrapped(FILE *out, int indent, const char *text)
{
    int column = 0;
    while (*text) {
        size_t word = strcspn(text, " ");
        if (word > 0) {
            if (column > indent && column + 1 + (int)word > HELP_WIDTH) {
                fputc('\n', out);
                column = 0;
            }
            if (column == 0)
                column = fprintf(out, "%*s", indent, "");
            else
                column += fprintf(out, " ");
            column += fprintf(out, "%.*s", (int)word, text);
        }
        text += word;
        text += strspn(text, " ");
    }
    if (column > 0)
        fputc('\n', out);
}

/* "60 (s)" -> "60": the placeholder SECS says the unit; "(none)" -> "". */
static void help_default(const struct setting *s, char *buf, size_t len)
{
    const char *d = s->default_doc;
    size_t n = strlen(d);
    if (strcmp(d, "(none)") == 0)
        n = 0;
    else if (d[0] == '(' && d[n - 1] == ')')
        d++, n -= 2;
    else if (n > 4 && strcmp(d + n - 4, " (s)") == 0)
        n -= 4;
    snprintf(buf, len, "%.*s", (int)n, d);
}

/* The setting's "--flag VALUE   VARIABLE" line; full: its text under it. */
static void print_setting_help(FILE *out, const struct setting *s, int full)
{
    char value[64], def[96], text[640];
    value_placeholder(s, "|", value, sizeof value);
    int column = fprintf(out, "  --%s %s", s->flag, value);
    column += fprintf(out, "%*s", column + 2 <= HELP_ENV_COLUMN ? HELP_ENV_COLUMN - column : 2,
                      "");
    if (column + (int)strlen(s->env) > HELP_WIDTH)
        fprintf(out, "\n%*s", HELP_INDENT, "");
    fprintf(out, "%s\n", s->env);
    if (!full)
        return;
    help_default(s, def, sizeof def);
    snprintf(text, sizeof text, "%s%s%s", s->help, def[0] ? "; default: " : "", def);
    print_wrapped(out, HELP_INDENT, text);
}

static void print_groups(FILE *out, int full)
{
    for (int g = GROUP_DATABASE; g <= GROUP_LOGGING; g++) {
        fprintf(out, "\n%s:\n", group_titles[g]);
        for (size_t i = 0; i < N_SETTINGS; i++)
            if ((int)settings[i].group == g)
                print_setting_help(out, &settings[i], full);
    }
}

void config_print_short_help(FILE *out)
{
    fprintf(out, "usage: bandage [OPTIONS] [-- COMMAND [ARGS...]]\n\n");
    print_wrapped(out, 0, "Waits for PostgreSQL, resets or migrates it when asked, reports the "
                          "deploy, then runs COMMAND as PID 1. Each option is also the "
                          "environment variable beside it:");
    print_groups(out, 0);
    fputc('\n', out);
    print_wrapped(out, 0, "Run 'bandage --help' for what each option does, the defaults, exit "
                          "codes and examples; 'bandage -V' for the version.");
}

void config_print_help(FILE *out)
{
    fprintf(out, "usage: bandage [OPTIONS] [-- COMMAND [ARGS...]]\n\n");
    print_wrapped(out, 0, "Waits for PostgreSQL (a real login), resets or migrates it when "
                          "asked, reports the deploy to a webhook, then runs COMMAND as PID 1: "
                          "signals forwarded, zombies reaped, its exit status returned. Without "
                          "COMMAND, bandage does the same database steps (wait, reset, "
                          "migrations, report) and exits: an init container or a pre-deploy "
                          "command.");
    fputc('\n', out);
    print_wrapped(out, 0, "Each option is also the environment variable shown beside it; a flag "
                          "wins over the environment, the environment over the default.");
    print_groups(out, 1);
    fprintf(out, "\nOther:\n"
                 "  -h                   the short help: each option's line only\n"
                 "  --help               show this help\n"
                 "  -V, --version        show the version\n"
                 "  --help-markdown      the settings as the README's markdown table\n\n");
    print_wrapped(out, 0, "Booleans: true/false, 1/0, yes/no, on/off (any case); a bare flag "
                          "(--plan) is true. Durations: seconds (30, 2.5, 1.5s) or 500ms, "
                          "counted in whole milliseconds: a value that is not 0 but below 1 ms "
                          "is refused.");
    fputc('\n', out);
    print_wrapped(out, 0, "Exit codes: the app's own; 128+N if it died of signal N; 64 usage "
                          "error; 65 schema file or migration failed (that reset or migration "
                          "rolled back); 69 database unavailable; 70 internal error; 73 hook "
                          "command failed; 77 refused (authentication, or reset without a "
                          "matching --confirm-database); 126/127 command not executable / not "
                          "found.");
    fprintf(out, "\nExamples:\n"
                 "  Wait for the database, then run the app:\n"
                 "    bandage -- node dist/index.js\n"
                 "  Show what a start would do, changing nothing:\n"
                 "    bandage --plan --migrations prisma/migrations\n"
                 "  Apply pending Prisma migrations, then run the app:\n"
                 "    bandage --migrations prisma/migrations -- node dist/index.js\n"
                 "  Reset once per deploy (deletes the data of --schemas), then run the app:\n"
                 "    BANDAGE_CONFIRM_DATABASE=app bandage --reset once \\\n"
                 "      --deployment-id \"$GIT_SHA\" --schema-file prisma/schema.sql \\\n"
                 "      -- node dist/index.js\n");
}

void config_print_markdown(FILE *out)
{
    for (int g = GROUP_DATABASE; g <= GROUP_LOGGING; g++) {
        fprintf(out, "%s**%s**\n\n| flag | value | environment | default | meaning |\n"
                     "|---|---|---|---|---|\n", g ? "\n" : "", group_titles[g]);
        for (size_t i = 0; i < N_SETTINGS; i++) {
            const struct setting *s = &settings[i];
            char value[64];
            if ((int)s->group != g)
                continue;
            value_placeholder(s, "\\|", value, sizeof value);
            fprintf(out, "| `--%s` | `%s` | `%s` | %s | %s |\n", s->flag, value, s->env,
                    s->default_doc, s->help);
        }
    }
    fprintf(out, "\nBooleans take `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`, in any case; "
                 "a bare boolean flag (`--plan`) is `true`. "
                 "Durations are counted in whole milliseconds: a value that is not 0 but below "
                 "1 ms (`0.0001`) is refused, not rounded to 0. A flag that carries a secret "
                 "(`--database-url` or `--direct-url` with a password, `--webhook-url`) is blanked "
                 "in bandage's command line once read, with a warning: prefer the environment.\n");
}
