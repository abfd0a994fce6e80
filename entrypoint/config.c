/* The settings table and its parser: flags win over the environment, the
 * environment over the default. The same table drives --help and the README. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#ifndef BANDAGE_VERSION
#define BANDAGE_VERSION "0.0.0-dev"
#endif
const char bandage_version[] = BANDAGE_VERSION;

enum setting_kind { KIND_STRING, KIND_DURATION, KIND_CHOICE, KIND_BOOL };

struct setting {
    const char *flag;          /* long flag, without "--" */
    const char *env;           /* environment variable */
    const char *fallback_env;  /* consulted when env is unset (or NULL) */
    const char *default_value; /* parsed like a value; NULL: unset */
    const char *default_doc;   /* the default as documented */
    enum setting_kind kind;
    const char *const *choices; /* KIND_CHOICE: NULL-terminated, index = value */
    long min_ms, max_ms;        /* KIND_DURATION bounds */
    size_t offset;              /* into struct config */
    const char *help;
    /* Optional: 0 if value is acceptable, else -1 with why filled (the
     * setting's name is prefixed by the caller). */
    int (*check)(const char *value, char *why, size_t len);
};

static int check_conninfo(const char *value, char *why, size_t len);
static int check_schemas(const char *value, char *why, size_t len);
static int check_webhook_url(const char *value, char *why, size_t len);
static int check_readable_file(const char *value, char *why, size_t len);
static int check_shell_exists(const char *value, char *why, size_t len);

static const char *const reset_choices[] = {"never", "once", "always", NULL};
static const char *const forward_choices[] = {"group", "child", NULL};
static const char *const webhook_format_choices[] = {"json", "slack", NULL};
static const char *const log_format_choices[] = {"text", "json", NULL};
static const char *const log_level_choices[] = {"error", "warn", "info", "debug", NULL};
/* KIND_BOOL: index 0 is off, 1 is on. */
static const char *const bool_choices[] = {"false", "true", NULL};

#define DAY_MS (86400L * 1000L)
#define FIELD(name) offsetof(struct config, name)

static const struct setting settings[] = {
    {"database-url", "DATABASE_URL", NULL, NULL, "(libpq's PG* variables)",
     KIND_STRING, NULL, 0, 0, FIELD(database_url),
     "libpq URI or key=value conninfo", check_conninfo},
    {"direct-url", "DIRECT_URL", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(direct_url),
     "Prisma's directUrl: an unpooled URL that bandage uses instead of --database-url",
     check_conninfo},
    {"wait-timeout", "BANDAGE_WAIT_TIMEOUT", NULL, "60", "60 (s)",
     KIND_DURATION, NULL, 0, DAY_MS, FIELD(wait_timeout_ms),
     "give up waiting for the database after this; 0 = skip waiting", NULL},
    {"connect-timeout", "BANDAGE_CONNECT_TIMEOUT", NULL, "10", "10 (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(connect_timeout_ms),
     "one connection attempt's limit", NULL},
    {"reset", "BANDAGE_RESET", NULL, "never", "never",
     KIND_CHOICE, reset_choices, 0, 0, FIELD(reset),
     "never, once (per deployment id), always", NULL},
    {"confirm-database", "BANDAGE_CONFIRM_DATABASE", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(confirm_database),
     "a reset runs only if this equals the connected database's name", NULL},
    {"schemas", "BANDAGE_SCHEMAS", NULL, "public", "public",
     KIND_STRING, NULL, 0, 0, FIELD(schemas),
     "comma-separated schemas to drop and recreate", check_schemas},
    {"create-schemas", "BANDAGE_CREATE_SCHEMAS", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(create_schemas),
     "a --schemas entry that does not exist yet may be created (else: refused)", NULL},
    {"drop-dependents", "BANDAGE_DROP_DEPENDENTS", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(drop_dependents),
     "objects in other schemas that depend on a reset schema may be dropped (else: refused)",
     NULL},
    {"lock-wait", "BANDAGE_LOCK_WAIT", NULL, "10", "10 (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(lock_wait_ms),
     "how long a reset keeps trying to lock the tables it drops (then exit 69)", NULL},
    {"schema-file", "BANDAGE_SCHEMA_FILE", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(schema_file),
     "SQL applied by the reset, all-or-nothing (file of plain SQL statements)",
     check_readable_file},
    {"allow-empty-schema", "BANDAGE_ALLOW_EMPTY_SCHEMA", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(allow_empty_schema),
     "a --schema-file with no statements may reset the schemas to empty (else: refused)", NULL},
    {"schema-command", "BANDAGE_SCHEMA_COMMAND", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(schema_command),
     "command run after the reset commits (e.g. npx prisma db push --skip-generate)",
     check_shell_exists},
    {"before-reset", "BANDAGE_BEFORE_RESET", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(before_reset),
     "command run before the reset (e.g. a pg_dump backup); failure aborts the reset",
     check_shell_exists},
    {"migrations", "BANDAGE_MIGRATIONS", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(migrations),
     "a Prisma migrations directory: apply what is pending (with --reset: rebuild from all of it)",
     NULL},
    {"migrations-strict", "BANDAGE_MIGRATIONS_STRICT", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(migrations_strict),
     "an applied migration whose file changed is an error, not a warning", NULL},
    {"plan", "BANDAGE_PLAN", NULL, "false", "false",
     KIND_BOOL, bool_choices, 0, 0, FIELD(plan),
     "print what this start would do to the database, change nothing, exit 0", NULL},
    {"deployment-id", "BANDAGE_DEPLOYMENT_ID", "RAILWAY_DEPLOYMENT_ID", NULL,
     "RAILWAY_DEPLOYMENT_ID", KIND_STRING, NULL, 0, 0, FIELD(deployment_id),
     "identifies one deploy for --reset once", NULL},
    {"webhook-url", "BANDAGE_WEBHOOK_URL", NULL, NULL, "(none)",
     KIND_STRING, NULL, 0, 0, FIELD(webhook_url),
     "POST the deploy report here", check_webhook_url},
    {"webhook-timeout", "BANDAGE_WEBHOOK_TIMEOUT", NULL, "5", "5 (s)",
     KIND_DURATION, NULL, 1, DAY_MS, FIELD(webhook_timeout_ms),
     "whole-request limit, retries included", NULL},
    {"webhook-format", "BANDAGE_WEBHOOK_FORMAT", NULL, "json", "json",
     KIND_CHOICE, webhook_format_choices, 0, 0, FIELD(webhook_format),
     "json (the full report) or slack ({\"text\": ...}, also Discord and Mattermost)", NULL},
    {"webhook-ca-file", "BANDAGE_WEBHOOK_CA_FILE", NULL, NULL,
     "(SSL_CERT_FILE, system bundle)", KIND_STRING, NULL, 0, 0,
     FIELD(webhook_ca_file), "CA bundle for an https:// webhook", check_readable_file},
    {"forward-to", "BANDAGE_FORWARD_TO", NULL, "group", "group",
     KIND_CHOICE, forward_choices, 0, 0, FIELD(forward_to),
     "group: signals go to the app's whole process group; child: to the app alone", NULL},
    {"grace", "BANDAGE_GRACE", NULL, "10", "10 (s)",
     KIND_DURATION, NULL, 0, DAY_MS, FIELD(grace_ms),
     "after forwarding SIGTERM/SIGINT, SIGKILL the app's group this much later", NULL},
    {"log-format", "BANDAGE_LOG_FORMAT", NULL, "text", "text",
     KIND_CHOICE, log_format_choices, 0, 0, FIELD(log_format),
     "text or json (one object per line)", NULL},
    {"log-level", "BANDAGE_LOG_LEVEL", NULL, "info", "info",
     KIND_CHOICE, log_level_choices, 0, 0, FIELD(log_level),
     "error, warn, info, debug", NULL},
};

#define N_SETTINGS (sizeof settings / sizeof settings[0])

const char *config_reset_mode_name(int mode)
{
    return (mode >= RESET_NEVER && mode <= RESET_ALWAYS) ? reset_choices[mode] : "?";
}

/* "1", "0.25", "1.5s", "500ms": a non-negative duration, to milliseconds. */
static int parse_duration_ms(const char *text, long *out_ms)
{
    const char *p = text;
    long whole = 0, frac = 0, frac_scale = 1000;

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
            }
        }
    }
    if (*p == 's')
        p++;
    if (*p != '\0' || whole > DAY_MS / 1000)
        return -1;
    *out_ms = whole * 1000 + frac;
    return 0;
}

static void origin_name(const struct setting *s, const char *origin,
                        char *buf, size_t len)
{
    if (strcmp(origin, "flag") == 0)
        snprintf(buf, len, "--%s", s->flag);
    else if (strcmp(origin, "fallback") == 0)
        snprintf(buf, len, "%s", s->fallback_env);
    else if (strcmp(origin, "env") == 0)
        snprintf(buf, len, "%s", s->env);
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
        if (parse_duration_ms(value, &ms) != 0 || ms < s->min_ms || ms > s->max_ms) {
            snprintf(err, errlen,
                     "%s: '%s' is not a valid duration; use seconds like 30, 2.5 or 500ms, "
                     "%s to %ld s",
                     name, value, s->min_ms > 0 ? "more than 0" : "0", s->max_ms / 1000);
            return -1;
        }
        *(long *)(void *)field = ms;
        return 0;
    }
    case KIND_CHOICE:
    case KIND_BOOL:
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

/* The value a setting gets from the environment or its default, and where from. */
static const char *env_or_default(const struct setting *s, const char **origin)
{
    const char *v = getenv(s->env);
    if (v && v[0]) {
        *origin = "env";
        return v;
    }
    if (s->fallback_env) {
        v = getenv(s->fallback_env);
        if (v && v[0]) {
            *origin = "fallback";
            return v;
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

/* Is the n-byte name at p also named earlier in list (which starts at list)? */
static int named_before(const char *list, const char *p, size_t n)
{
    for (const char *q = list; q < p;) {
        const char *comma = strchr(q, ',');
        size_t m = (size_t)(comma - q);
        if (m == n && strncmp(q, p, n) == 0)
            return 1;
        q = comma + 1;
    }
    return 0;
}

static int check_schemas(const char *value, char *why, size_t len)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (named_before(value, p, n)) {
            /* A schema moved aside twice cannot be put back right. */
            snprintf(why, len, "'%.*s' is listed twice; name each schema once", (int)n, p);
            return -1;
        }
        if (!is_valid_schema_name(p, n)) {
            snprintf(why, len,
                     "'%.*s' is not a schema bandage may reset; list 1-63 character names "
                     "separated by commas, not bandage, bandage_aside_*, pg_* or "
                     "information_schema", (int)n, p);
            return -1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int check_conninfo(const char *value, char *why, size_t len)
{
    char *perr = NULL;
    if (!value[0])
        return 0;
    PQconninfoOption *opts = PQconninfoParse(value, &perr);
    /* libpq's message may quote part of the string, password included: not shown. */
    PQfreemem(perr);
    if (opts) {
        /* libpq checks connect_timeout only on its blocking path; bandage
         * connects asynchronously, so check it here, as psql would. */
        int bad_timeout = 0;
        for (PQconninfoOption *o = opts; o->keyword; o++) {
            if (strcmp(o->keyword, "connect_timeout") == 0 && o->val && o->val[0]) {
                char *end;
                errno = 0;
                long v = strtol(o->val, &end, 10);
                bad_timeout = errno != 0 || *end != '\0' || v > 86400;
            }
        }
        PQconninfoFree(opts);
        if (!bad_timeout)
            return 0;
        snprintf(why, len, "connect_timeout must be a whole number of seconds");
        return -1;
    }
    snprintf(why, len, "libpq cannot parse it; use postgresql://user:password@host:port/dbname "
                       "or key=value pairs like 'host=db dbname=app'");
    return -1;
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
    FILE *f = value[0] ? fopen(value, "r") : NULL;
    if (f || !value[0]) {
        if (f)
            fclose(f);
        return 0;
    }
    snprintf(why, len, "cannot read '%s': %s; give the path of a readable file", value,
             strerror(errno));
    return -1;
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

/* Rules that join two settings. */
static int validate(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->reset == RESET_ONCE && !cfg->deployment_id) {
        snprintf(err, errlen,
                 "--reset once needs a deployment id; set --deployment-id or BANDAGE_DEPLOYMENT_ID "
                 "(Railway sets RAILWAY_DEPLOYMENT_ID)");
        return -1;
    }
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
        opts[i] = (struct option){settings[i].flag, required_argument, NULL, (int)(i + 256)};
    opts[i++] = (struct option){"help", no_argument, NULL, 'h'};
    opts[i++] = (struct option){"version", no_argument, NULL, 'V'};
    opts[i++] = (struct option){"help-markdown", no_argument, NULL, 'M'};
    opts[i] = (struct option){NULL, 0, NULL, 0};
}

enum config_result config_load(struct config *cfg, int argc, char **argv,
                               char *err, size_t errlen)
{
    struct option long_opts[N_SETTINGS + 4];
    const char *flag_values[N_SETTINGS] = {0};
    int c;

    memset(cfg, 0, sizeof *cfg);
    build_long_options(long_opts);
    opterr = 0;
    optind = 0; /* 0 fully re-initialises glibc's getopt (tests call this repeatedly) */
    /* "+": stop at the first non-option, so the app's own flags stay its own. */
    for (;;) {
        int token_index = optind > 0 ? optind : 1; /* long options never sit mid-cluster */
        if ((c = getopt_long(argc, argv, "+hV", long_opts, NULL)) == -1)
            break;
        if (c == 'h')
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
            flag_values[c - 256] = optarg;
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
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *origin = "flag";
        const char *value = flag_values[i];
        if (!value)
            value = env_or_default(s, &origin);
        if (value && apply_value(cfg, s, value, origin, err, errlen) != 0)
            return CONFIG_ERROR;
    }
    cfg->command = optind < argc ? &argv[optind] : NULL;
    cfg->conninfo = cfg->direct_url ? cfg->direct_url : cfg->database_url;
    return validate(cfg, err, errlen) == 0 ? CONFIG_OK : CONFIG_ERROR;
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "usage: bandage [OPTIONS] [-- COMMAND [ARGS...]]\n\n"
            "Waits for PostgreSQL, resets it when asked, reports the deploy, then runs\n"
            "COMMAND as PID 1. Without COMMAND, does the phases and exits.\n\n"
            "Options (each also an environment variable; a flag wins):\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  --%-18s %s\n  %-20s %s; default: %s\n", s->flag, s->help, "",
                s->env, s->default_doc);
    }
    fprintf(out, "  -h, --help           show this help\n"
                 "  -V, --version        show the version\n\n"
                 "Exit codes: the app's own; 128+N if it died of signal N; 64 usage error;\n"
                 "65 schema file failed (database unchanged); 69 database unavailable;\n"
                 "70 internal error; 73 hook command failed; 77 refused (authentication,\n"
                 "or reset without a matching --confirm-database); 126/127 command not\n"
                 "executable / not found.\n");
}

void config_print_markdown(FILE *out)
{
    fprintf(out, "| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "| `--%s` | `%s` | %s | %s |\n", s->flag, s->env, s->default_doc, s->help);
    }
}
