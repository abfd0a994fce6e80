/* config_load(): flag > environment > default, value parsing, validation and
 * the messages of every usage error (DESIGN.md, "Configuration contract").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "assert_text.h"

#include "config.h"

extern char **environ;

#define DAY_MS (86400L * 1000L)

/* ---- helpers ------------------------------------------------------------ */

#define MAX_ARGS 64

static char *g_argv[MAX_ARGS + 1];
static int g_argc;
static char g_err[1024];
static struct config g_cfg;

static void free_args(void)
{
    for (int i = 0; i < g_argc; i++)
        free(g_argv[i]);
    g_argc = 0;
    g_argv[0] = NULL;
}

/* config_load on a fresh, writable copy of args (NULL-terminated). The copy
 * stays alive until the next call, so cfg.command can be inspected. */
static enum config_result load_v(const char *const *args)
{
    free_args();
    while (args[g_argc]) {
        assert_true(g_argc < MAX_ARGS);
        g_argv[g_argc] = strdup(args[g_argc]);
        assert_non_null(g_argv[g_argc]);
        g_argc++;
    }
    g_argv[g_argc] = NULL;
    memset(g_err, 0, sizeof g_err);
    /* Poison cfg so that "field left unset" cannot pass by accident. */
    memset(&g_cfg, 0xA5, sizeof g_cfg);
    return config_load(&g_cfg, g_argc, g_argv, g_err, sizeof g_err);
}

#define LOAD(...) load_v((const char *const[]){"bandage", __VA_ARGS__, NULL})
#define LOAD0() load_v((const char *const[]){"bandage", NULL})

#define assert_ok(call)                                                              \
    do {                                                                              \
        enum config_result r_ = (call);                                               \
        if (r_ != CONFIG_OK)                                                          \
            fail_msg("expected CONFIG_OK, got %d: %s", (int)r_, g_err);               \
    } while (0)

#define assert_config_error(call)                                                    \
    do {                                                                              \
        enum config_result r_ = (call);                                               \
        if (r_ != CONFIG_ERROR)                                                       \
            fail_msg("expected CONFIG_ERROR, got %d", (int)r_);                       \
        if (g_err[0] == '\0')                                                         \
            fail_msg("CONFIG_ERROR without a message");                               \
    } while (0)

static void unset_all(void)
{
    /* Collect first: unsetenv changes environ while we walk it. */
    char *names[512];
    size_t n = 0;
    for (char **e = environ; e && *e && n < sizeof names / sizeof names[0]; e++) {
        if (strncmp(*e, "BANDAGE_", 8) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        names[n] = strndup(*e, len);
        assert_non_null(names[n]);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    unsetenv("DATABASE_URL");
    unsetenv("DIRECT_URL");
    unsetenv("PGCONNECT_TIMEOUT");
    unsetenv("RAILWAY_DEPLOYMENT_ID");
    unsetenv("RAILWAY_DEPLOYMENT_DRAINING_SECONDS");
    unsetenv("POSIXLY_CORRECT");
}

static int setup(void **state)
{
    (void)state;
    unset_all();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free_args();
    unset_all();
    config_release();
    return 0;
}

static void set(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0);
}

/* ---- defaults and precedence --------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    assert_ok(LOAD0());
    assert_null(g_cfg.database_url);
    assert_int_equal(g_cfg.wait_timeout_ms, 60000);
    assert_int_equal(g_cfg.connect_timeout_ms, 10000);
    assert_int_equal(g_cfg.dead_connection_timeout_ms, 30000);
    assert_int_equal(g_cfg.reset, RESET_NEVER);
    assert_null(g_cfg.confirm_database);
    assert_string_equal(g_cfg.schemas, "public");
    assert_null(g_cfg.schema_file);
    assert_null(g_cfg.schema_command);
    assert_null(g_cfg.before_reset);
    assert_null(g_cfg.deployment_id);
    assert_null(g_cfg.webhook_url);
    assert_int_equal(g_cfg.webhook_timeout_ms, 5000);
    assert_int_equal(g_cfg.webhook_format, WEBHOOK_JSON);
    assert_null(g_cfg.webhook_ca_file);
    assert_int_equal(g_cfg.forward_to, FORWARD_GROUP);
    assert_int_equal(g_cfg.grace_ms, 10000);
    assert_int_equal(g_cfg.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(g_cfg.log_level, LOG_INFO);
    assert_null(g_cfg.command);
}

static void test_precedence_string(void **state)
{
    (void)state;
    assert_ok(LOAD0());
    assert_null(g_cfg.confirm_database);

    set("BANDAGE_CONFIRM_DATABASE", "from_env");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.confirm_database, "from_env");

    assert_ok(LOAD("--confirm-database", "from_flag"));
    assert_string_equal(g_cfg.confirm_database, "from_flag");

    /* every string setting reads its own variable */
    set("DATABASE_URL", "host=envdb dbname=app");
    /* a regular file (a device or a directory is refused: see below) */
    char schema_path[] = "/tmp/bandage-precedence-XXXXXX";
    int schema_fd = mkstemp(schema_path);
    assert_true(schema_fd >= 0);
    close(schema_fd);
    set("BANDAGE_SCHEMA_FILE", schema_path);
    set("BANDAGE_SCHEMA_COMMAND", "npx prisma db push --skip-generate");
    set("BANDAGE_BEFORE_RESET", "pg_dump -f /backup.sql");
    set("BANDAGE_WEBHOOK_URL", "https://hooks.example.com/x");
    set("BANDAGE_WEBHOOK_CA_FILE", "/proc/self/status");
    set("BANDAGE_SCHEMAS", "public,app");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.database_url, "host=envdb dbname=app");
    assert_string_equal(g_cfg.schema_file, schema_path);
    assert_string_equal(g_cfg.schema_command, "npx prisma db push --skip-generate");
    assert_string_equal(g_cfg.before_reset, "pg_dump -f /backup.sql");
    assert_string_equal(g_cfg.webhook_url, "https://hooks.example.com/x");
    assert_string_equal(g_cfg.webhook_ca_file, "/proc/self/status");
    assert_string_equal(g_cfg.schemas, "public,app");

    assert_ok(LOAD("--database-url", "postgresql://u@flagdb/app", "--schemas", "other"));
    assert_string_equal(g_cfg.database_url, "postgresql://u@flagdb/app");
    assert_string_equal(g_cfg.schemas, "other");
    unlink(schema_path);
}

static void test_precedence_duration(void **state)
{
    (void)state;
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.wait_timeout_ms, 60000);

    set("BANDAGE_WAIT_TIMEOUT", "7");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.wait_timeout_ms, 7000);

    assert_ok(LOAD("--wait-timeout", "3"));
    assert_int_equal(g_cfg.wait_timeout_ms, 3000);

    /* a flag wins even over an invalid environment value */
    set("BANDAGE_WAIT_TIMEOUT", "garbage");
    assert_ok(LOAD("--wait-timeout=4"));
    assert_int_equal(g_cfg.wait_timeout_ms, 4000);

    set("BANDAGE_CONNECT_TIMEOUT", "2");
    set("BANDAGE_WEBHOOK_TIMEOUT", "250ms");
    set("BANDAGE_GRACE", "1.5");
    assert_ok(LOAD("--wait-timeout=4"));
    assert_int_equal(g_cfg.connect_timeout_ms, 2000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 250);
    assert_int_equal(g_cfg.grace_ms, 1500);
}

static void test_precedence_choice(void **state)
{
    (void)state;
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.log_level, LOG_INFO);

    set("BANDAGE_LOG_LEVEL", "debug");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.log_level, LOG_DEBUG);

    assert_ok(LOAD("--log-level", "error"));
    assert_int_equal(g_cfg.log_level, LOG_ERROR);

    set("BANDAGE_LOG_LEVEL", "nonsense");
    assert_ok(LOAD("--log-level=warn"));
    assert_int_equal(g_cfg.log_level, LOG_WARN);

    set("BANDAGE_RESET", "always");
    set("BANDAGE_FORWARD_TO", "child");
    set("BANDAGE_WEBHOOK_FORMAT", "slack");
    set("BANDAGE_LOG_FORMAT", "json");
    assert_ok(LOAD("--log-level=warn"));
    assert_int_equal(g_cfg.reset, RESET_ALWAYS);
    assert_int_equal(g_cfg.forward_to, FORWARD_CHILD);
    assert_int_equal(g_cfg.webhook_format, WEBHOOK_SLACK);
    assert_int_equal(g_cfg.log_format, LOG_FORMAT_JSON);

    assert_ok(LOAD("--log-level=warn", "--reset=never", "--forward-to=group",
                   "--webhook-format=json", "--log-format=text"));
    assert_int_equal(g_cfg.reset, RESET_NEVER);
    assert_int_equal(g_cfg.forward_to, FORWARD_GROUP);
    assert_int_equal(g_cfg.webhook_format, WEBHOOK_JSON);
    assert_int_equal(g_cfg.log_format, LOG_FORMAT_TEXT);
}

static void test_every_choice_value(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value;
        size_t offset;
        int expected;
    } cases[] = {
        {"--reset", "never", offsetof(struct config, reset), RESET_NEVER},
        {"--reset", "always", offsetof(struct config, reset), RESET_ALWAYS},
        {"--forward-to", "group", offsetof(struct config, forward_to), FORWARD_GROUP},
        {"--forward-to", "child", offsetof(struct config, forward_to), FORWARD_CHILD},
        {"--webhook-format", "json", offsetof(struct config, webhook_format), WEBHOOK_JSON},
        {"--webhook-format", "slack", offsetof(struct config, webhook_format), WEBHOOK_SLACK},
        {"--log-format", "text", offsetof(struct config, log_format), LOG_FORMAT_TEXT},
        {"--log-format", "json", offsetof(struct config, log_format), LOG_FORMAT_JSON},
        {"--log-level", "error", offsetof(struct config, log_level), LOG_ERROR},
        {"--log-level", "warn", offsetof(struct config, log_level), LOG_WARN},
        {"--log-level", "info", offsetof(struct config, log_level), LOG_INFO},
        {"--log-level", "debug", offsetof(struct config, log_level), LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_ok(LOAD(cases[i].flag, cases[i].value));
        int got;
        memcpy(&got, (const char *)&g_cfg + cases[i].offset, sizeof got);
        if (got != cases[i].expected)
            fail_msg("%s %s: got %d, want %d", cases[i].flag, cases[i].value, got,
                     cases[i].expected);
    }
    /* --reset once, with a deployment id */
    assert_ok(LOAD("--reset", "once", "--deployment-id", "d1"));
    assert_int_equal(g_cfg.reset, RESET_ONCE);
    assert_string_equal(config_reset_mode_name(RESET_ONCE), "once");
    assert_string_equal(config_reset_mode_name(RESET_NEVER), "never");
    assert_string_equal(config_reset_mode_name(RESET_ALWAYS), "always");
    assert_string_equal(config_reset_mode_name(42), "?");
    assert_string_equal(config_reset_mode_name(-1), "?");
}

static void test_deployment_id_fallback(void **state)
{
    (void)state;
    set("RAILWAY_DEPLOYMENT_ID", "railway-1");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.deployment_id, "railway-1");

    set("BANDAGE_DEPLOYMENT_ID", "bandage-1");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.deployment_id, "bandage-1");

    assert_ok(LOAD("--deployment-id", "flag-1"));
    assert_string_equal(g_cfg.deployment_id, "flag-1");

    /* an empty BANDAGE_DEPLOYMENT_ID is unset: the fallback applies */
    set("BANDAGE_DEPLOYMENT_ID", "");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.deployment_id, "railway-1");

    /* both empty: no id */
    set("RAILWAY_DEPLOYMENT_ID", "");
    assert_ok(LOAD0());
    assert_null(g_cfg.deployment_id);

    /* --reset once is satisfied by the fallback alone */
    unsetenv("BANDAGE_DEPLOYMENT_ID");
    set("RAILWAY_DEPLOYMENT_ID", "railway-2");
    assert_ok(LOAD("--reset=once"));
    assert_int_equal(g_cfg.reset, RESET_ONCE);
    assert_string_equal(g_cfg.deployment_id, "railway-2");
}

static void test_empty_env_is_unset(void **state)
{
    (void)state;
    set("DATABASE_URL", "");
    set("BANDAGE_WAIT_TIMEOUT", "");
    set("BANDAGE_CONNECT_TIMEOUT", "");
    set("BANDAGE_RESET", "");
    set("BANDAGE_CONFIRM_DATABASE", "");
    set("BANDAGE_SCHEMAS", "");
    set("BANDAGE_WEBHOOK_URL", "");
    set("BANDAGE_WEBHOOK_FORMAT", "");
    set("BANDAGE_GRACE", "");
    set("BANDAGE_LOG_LEVEL", "");
    assert_ok(LOAD0());
    assert_null(g_cfg.database_url);
    assert_int_equal(g_cfg.wait_timeout_ms, 60000);
    assert_int_equal(g_cfg.connect_timeout_ms, 10000);
    assert_int_equal(g_cfg.reset, RESET_NEVER);
    assert_null(g_cfg.confirm_database);
    assert_string_equal(g_cfg.schemas, "public");
    assert_null(g_cfg.webhook_url);
    assert_int_equal(g_cfg.webhook_format, WEBHOOK_JSON);
    assert_int_equal(g_cfg.grace_ms, 10000);
    assert_int_equal(g_cfg.log_level, LOG_INFO);
}

/* ---- durations ------------------------------------------------------------ */

static const struct {
    const char *text;
    long ms;
} good_durations[] = {
    {"30", 30000},   {"2.5", 2500},   {"500ms", 500},     {"1.5s", 1500},
    {"0", 0},        {"0ms", 0},      {"0.0", 0},         {"1s", 1000},
    {"0.25", 250},   {"0.001", 1},    {"1ms", 1},         {"007", 7000},
    {"86400", DAY_MS}, {"86400s", DAY_MS}, {"86400000ms", DAY_MS}, {"1.0005", 1000},
};

static void test_duration_valid(void **state)
{
    (void)state;
    char flagarg[64];
    for (size_t i = 0; i < sizeof good_durations / sizeof good_durations[0]; i++) {
        const char *t = good_durations[i].text;

        /* --flag value */
        if (LOAD("--wait-timeout", t) != CONFIG_OK)
            fail_msg("--wait-timeout %s: %s", t, g_err);
        if (g_cfg.wait_timeout_ms != good_durations[i].ms)
            fail_msg("--wait-timeout %s: got %ld ms, want %ld", t, g_cfg.wait_timeout_ms,
                     good_durations[i].ms);

        /* --flag=value */
        snprintf(flagarg, sizeof flagarg, "--grace=%s", t);
        if (LOAD(flagarg) != CONFIG_OK)
            fail_msg("%s: %s", flagarg, g_err);
        if (g_cfg.grace_ms != good_durations[i].ms)
            fail_msg("%s: got %ld ms, want %ld", flagarg, g_cfg.grace_ms, good_durations[i].ms);

        /* environment */
        set("BANDAGE_WAIT_TIMEOUT", t);
        if (LOAD0() != CONFIG_OK)
            fail_msg("BANDAGE_WAIT_TIMEOUT=%s: %s", t, g_err);
        if (g_cfg.wait_timeout_ms != good_durations[i].ms)
            fail_msg("BANDAGE_WAIT_TIMEOUT=%s: got %ld ms, want %ld", t, g_cfg.wait_timeout_ms,
                     good_durations[i].ms);
        unsetenv("BANDAGE_WAIT_TIMEOUT");
    }
}

static const char *const bad_durations[] = {
    "x", "-1", "1.", ".5", "10m", "5h", "1.5ms", "1e3", "0x10", "+5", " 5", "5 ", "5s ",
    "5ss", "1,5", "", "s", "ms", "1..5", "86401", "86400.001", "86400001ms",
    "99999999999999999999", "99999999999999999999ms", "9223372036854775808",
    "184467440737095516160",
};

static void test_duration_invalid_flag(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++) {
        const char *t = bad_durations[i];
        enum config_result r = LOAD("--wait-timeout", t);
        if (r != CONFIG_ERROR)
            fail_msg("--wait-timeout '%s': got %d (%ld ms), want CONFIG_ERROR", t, (int)r,
                     g_cfg.wait_timeout_ms);
        assert_contains(g_err, "--wait-timeout");
        if (t[0]) {
            char quoted[64];
            snprintf(quoted, sizeof quoted, "'%s'", t);
            assert_contains(g_err, quoted);
        }
        assert_not_contains(g_err, "BANDAGE_WAIT_TIMEOUT");

        char flagarg[64];
        snprintf(flagarg, sizeof flagarg, "--grace=%s", t);
        r = LOAD(flagarg);
        if (r != CONFIG_ERROR)
            fail_msg("%s: got %d (%ld ms), want CONFIG_ERROR", flagarg, (int)r, g_cfg.grace_ms);
        assert_contains(g_err, "--grace");
    }
}

static void test_duration_invalid_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++) {
        const char *t = bad_durations[i];
        if (!t[0])
            continue; /* empty means unset in the environment */
        set("BANDAGE_GRACE", t);
        enum config_result r = LOAD0();
        if (r != CONFIG_ERROR)
            fail_msg("BANDAGE_GRACE='%s': got %d (%ld ms), want CONFIG_ERROR", t, (int)r,
                     g_cfg.grace_ms);
        assert_contains(g_err, "BANDAGE_GRACE");
        assert_not_contains(g_err, "--grace");
        unsetenv("BANDAGE_GRACE");
    }
}

static void test_duration_zero_not_allowed(void **state)
{
    (void)state;
    static const char *const zeros[] = {"0", "0ms", "0.0", "0s", "0.0004"};
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0]; i++) {
        if (LOAD("--connect-timeout", zeros[i]) != CONFIG_ERROR)
            fail_msg("--connect-timeout %s accepted (%ld ms)", zeros[i], g_cfg.connect_timeout_ms);
        assert_contains(g_err, "--connect-timeout");
        assert_contains(g_err, "more than 0");

        if (LOAD("--webhook-timeout", zeros[i]) != CONFIG_ERROR)
            fail_msg("--webhook-timeout %s accepted", zeros[i]);
        assert_contains(g_err, "--webhook-timeout");
    }
    set("BANDAGE_CONNECT_TIMEOUT", "0");
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_CONNECT_TIMEOUT");
    unsetenv("BANDAGE_CONNECT_TIMEOUT");

    /* the smallest positive value is fine; 0 is fine where it means "skip" */
    assert_ok(LOAD("--connect-timeout", "1ms", "--wait-timeout", "0", "--grace", "0"));
    assert_int_equal(g_cfg.connect_timeout_ms, 1);
    assert_int_equal(g_cfg.wait_timeout_ms, 0);
    assert_int_equal(g_cfg.grace_ms, 0);
}

/* ---- choices ---------------------------------------------------------------- */

static void test_choice_invalid(void **state)
{
    (void)state;
    assert_config_error(LOAD("--reset", "sometimes"));
    assert_contains(g_err, "--reset");
    assert_contains(g_err, "'sometimes'");
    assert_contains(g_err, "never, once, always");

    assert_config_error(LOAD("--forward-to=parent"));
    assert_contains(g_err, "--forward-to");
    assert_contains(g_err, "group, child");

    assert_config_error(LOAD("--webhook-format", "xml"));
    assert_contains(g_err, "--webhook-format");
    assert_contains(g_err, "json, slack");

    assert_config_error(LOAD("--log-format", "yaml"));
    assert_contains(g_err, "--log-format");
    assert_contains(g_err, "text, json");

    /* no prefix or case folding: exactly one of the listed words */
    assert_config_error(LOAD("--reset", "alway"));
    assert_config_error(LOAD("--reset", "always "));
    assert_config_error(LOAD("--reset="));
    assert_contains(g_err, "--reset");

    set("BANDAGE_LOG_LEVEL", "verbose");
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_LOG_LEVEL");
    assert_contains(g_err, "'verbose'");
    assert_contains(g_err, "error, warn, info, debug");
    assert_not_contains(g_err, "--log-level");
}

/* ---- argv shapes ------------------------------------------------------------ */

static void test_unknown_flag(void **state)
{
    (void)state;
    assert_config_error(LOAD("--bogus"));
    assert_contains(g_err, "--bogus");

    assert_config_error(LOAD("--wait-timeout=5", "--bogus=1"));
    assert_contains(g_err, "--bogus");

    assert_config_error(LOAD("-x"));
    assert_contains(g_err, "'-x'");

    /* a value-taking flag does not become a boolean */
    assert_config_error(LOAD("--help=yes"));
    assert_contains(g_err, "--help");
}

static void test_flag_missing_value(void **state)
{
    (void)state;
    assert_config_error(LOAD("--wait-timeout"));
    assert_contains(g_err, "--wait-timeout");
    assert_contains(g_err, "needs a value");

    assert_config_error(LOAD("--grace=1", "--database-url"));
    assert_contains(g_err, "--database-url");
    assert_contains(g_err, "needs a value");

    assert_config_error(LOAD("--reset"));
    assert_contains(g_err, "--reset");
    assert_contains(g_err, "needs a value");
}

static void test_flag_value_forms(void **state)
{
    (void)state;
    assert_ok(LOAD("--wait-timeout=5", "--connect-timeout", "6"));
    assert_int_equal(g_cfg.wait_timeout_ms, 5000);
    assert_int_equal(g_cfg.connect_timeout_ms, 6000);

    /* only the first '=' separates; the value keeps the rest */
    assert_ok(LOAD("--database-url=host=db dbname=app", "--confirm-database", "a=b"));
    assert_string_equal(g_cfg.database_url, "host=db dbname=app");
    assert_string_equal(g_cfg.confirm_database, "a=b");

    /* the separate form takes the next word even when it looks like a flag */
    assert_ok(LOAD("--schema-command", "--weird", "--grace", "2"));
    assert_string_equal(g_cfg.schema_command, "--weird");
    assert_int_equal(g_cfg.grace_ms, 2000);
    assert_null(g_cfg.command);

    /* the last occurrence wins */
    assert_ok(LOAD("--grace=1", "--grace=2"));
    assert_int_equal(g_cfg.grace_ms, 2000);

    /* an empty flag value clears a string setting (and hides the environment) */
    set("BANDAGE_CONFIRM_DATABASE", "from_env");
    assert_ok(LOAD("--confirm-database="));
    assert_null(g_cfg.confirm_database);
}

static void test_command_after_double_dash(void **state)
{
    (void)state;
    assert_ok(LOAD("--grace", "3", "--", "node", "app.js", "--port", "3"));
    assert_int_equal(g_cfg.grace_ms, 3000);
    assert_non_null(g_cfg.command);
    assert_ptr_equal(g_cfg.command, &g_argv[4]);
    assert_string_equal(g_cfg.command[0], "node");
    assert_string_equal(g_cfg.command[1], "app.js");
    assert_string_equal(g_cfg.command[2], "--port");
    assert_string_equal(g_cfg.command[3], "3");
    assert_null(g_cfg.command[4]);

    /* bandage's own flags after "--" belong to the command */
    assert_ok(LOAD("--", "--wait-timeout", "1", "--help"));
    assert_int_equal(g_cfg.wait_timeout_ms, 60000);
    assert_non_null(g_cfg.command);
    assert_string_equal(g_cfg.command[0], "--wait-timeout");
    assert_string_equal(g_cfg.command[2], "--help");
    assert_null(g_cfg.command[3]);

    /* a second "--" is the command's */
    assert_ok(LOAD("--", "--", "x"));
    assert_non_null(g_cfg.command);
    assert_string_equal(g_cfg.command[0], "--");
    assert_string_equal(g_cfg.command[1], "x");
}

static void test_command_at_first_non_option(void **state)
{
    (void)state;
    assert_ok(LOAD("node", "app.js", "--port", "3"));
    assert_non_null(g_cfg.command);
    assert_ptr_equal(g_cfg.command, &g_argv[1]);
    assert_string_equal(g_cfg.command[0], "node");
    assert_string_equal(g_cfg.command[2], "--port");
    assert_string_equal(g_cfg.command[3], "3");
    assert_null(g_cfg.command[4]);

    /* bandage's flags before the command are bandage's, after it the app's */
    assert_ok(LOAD("--grace=3", "node", "app.js", "--wait-timeout", "1", "--version"));
    assert_int_equal(g_cfg.grace_ms, 3000);
    assert_int_equal(g_cfg.wait_timeout_ms, 60000);
    assert_non_null(g_cfg.command);
    assert_ptr_equal(g_cfg.command, &g_argv[2]);
    assert_string_equal(g_cfg.command[0], "node");
    assert_string_equal(g_cfg.command[2], "--wait-timeout");
    assert_string_equal(g_cfg.command[4], "--version");
    assert_null(g_cfg.command[5]);
    /* "+" mode must not permute argv */
    assert_string_equal(g_argv[1], "--grace=3");
    assert_string_equal(g_argv[2], "node");

    /* POSIXLY_CORRECT or not, the behaviour is the same */
    set("POSIXLY_CORRECT", "1");
    assert_ok(LOAD("sh", "-c", "--grace"));
    unsetenv("POSIXLY_CORRECT");
    assert_non_null(g_cfg.command);
    assert_string_equal(g_cfg.command[0], "sh");
    assert_int_equal(g_cfg.grace_ms, 10000);
}

static void test_no_command(void **state)
{
    (void)state;
    assert_ok(LOAD0());
    assert_null(g_cfg.command);
    assert_ok(LOAD("--grace", "1"));
    assert_null(g_cfg.command);
    assert_ok(LOAD("--"));
    assert_null(g_cfg.command);
    assert_ok(LOAD("--grace=1", "--"));
    assert_null(g_cfg.command);
}

static void test_help_version_markdown(void **state)
{
    (void)state;
    assert_int_equal(LOAD("--help"), CONFIG_HELP);
    assert_int_equal(LOAD("-h"), CONFIG_SHORT_HELP);
    assert_int_equal(LOAD("--version"), CONFIG_VERSION);
    assert_int_equal(LOAD("-V"), CONFIG_VERSION);
    assert_int_equal(LOAD("--help-markdown"), CONFIG_MARKDOWN);
    assert_int_equal(LOAD("--grace=1", "--help"), CONFIG_HELP);

    /* --help works whatever the environment holds */
    set("BANDAGE_RESET", "bogus");
    set("BANDAGE_GRACE", "bogus");
    assert_int_equal(LOAD("--help"), CONFIG_HELP);
    assert_int_equal(LOAD("--version"), CONFIG_VERSION);
    assert_int_equal(LOAD("--help-markdown"), CONFIG_MARKDOWN);
    unsetenv("BANDAGE_RESET");
    unsetenv("BANDAGE_GRACE");

    /* after the command they are the command's */
    assert_ok(LOAD("--", "app", "--help"));
    assert_ok(LOAD("app", "--version"));

    /* getopt state is reset between calls: a "-hV" cluster stopped at 'h'
     * must not leave 'V' pending for the next call */
    assert_int_equal(LOAD("-hV"), CONFIG_SHORT_HELP);
    assert_ok(LOAD("--grace=1"));
    assert_int_equal(g_cfg.grace_ms, 1000);
    assert_int_equal(LOAD("-Vh"), CONFIG_VERSION);
    assert_int_equal(LOAD("-h"), CONFIG_SHORT_HELP);
}

/* Every setting of DESIGN.md's table, with its variable, in --help and in the
 * README's markdown table. */
static const char *const design_settings[][2] = {
    {"database-url", "DATABASE_URL"},
    {"wait-timeout", "BANDAGE_WAIT_TIMEOUT"},
    {"connect-timeout", "BANDAGE_CONNECT_TIMEOUT"},
    {"dead-connection-timeout", "BANDAGE_DEAD_CONNECTION_TIMEOUT"},
    {"reset", "BANDAGE_RESET"},
    {"confirm-database", "BANDAGE_CONFIRM_DATABASE"},
    {"schemas", "BANDAGE_SCHEMAS"},
    {"schema-file", "BANDAGE_SCHEMA_FILE"},
    {"schema-command", "BANDAGE_SCHEMA_COMMAND"},
    {"before-reset", "BANDAGE_BEFORE_RESET"},
    {"deployment-id", "BANDAGE_DEPLOYMENT_ID"},
    {"webhook-url", "BANDAGE_WEBHOOK_URL"},
    {"webhook-timeout", "BANDAGE_WEBHOOK_TIMEOUT"},
    {"webhook-format", "BANDAGE_WEBHOOK_FORMAT"},
    {"webhook-ca-file", "BANDAGE_WEBHOOK_CA_FILE"},
    {"forward-to", "BANDAGE_FORWARD_TO"},
    {"grace", "BANDAGE_GRACE"},
    {"log-format", "BANDAGE_LOG_FORMAT"},
    {"log-level", "BANDAGE_LOG_LEVEL"},
};

static void test_help_output(void **state)
{
    (void)state;
    char *help = NULL, *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    f = open_memstream(&md, &len);
    assert_non_null(f);
    config_print_markdown(f);
    fclose(f);

    assert_contains(help, "usage: bandage");
    assert_contains(md, "| flag | value | environment | default | meaning |");
    for (size_t i = 0; i < sizeof design_settings / sizeof design_settings[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "--%s ", design_settings[i][0]);
        assert_contains(help, want);
        assert_contains(help, design_settings[i][1]);
        snprintf(want, sizeof want, "| `--%s` | `", design_settings[i][0]);
        assert_contains(md, want);
        snprintf(want, sizeof want, "` | `%s` |", design_settings[i][1]);
        assert_contains(md, want);

        /* and config_load knows the flag and the variable */
        snprintf(want, sizeof want, "--%s", design_settings[i][0]);
        assert_config_error(LOAD(want));
        assert_contains(g_err, "needs a value");
    }
    free(help);
    free(md);
}

/* --help (and -h) fit an 80-column terminal, and each setting's line shows
 * the value it takes before its variable: "  --reset never|once|always   BANDAGE_RESET". */
static void check_help_text(const char *help)
{
    int settings_seen = 0;
    for (const char *line = help, *next; *line; line = next) {
        size_t n = strcspn(line, "\n");
        next = line + n + (line[n] == '\n');
        if (n > 80)
            fail_msg("help line of %zu columns: %.*s", n, (int)n, line);
        if (strncmp(line, "  --", 4) != 0 || strncmp(line, "  --help", 8) == 0)
            continue;
        char flag[64] = "", value[64] = "", env[64] = "";
        char text[128];
        snprintf(text, sizeof text, "%.*s", (int)n, line);
        if (sscanf(text, "%63s %63s %63s", flag, value, env) != 3 ||
            strspn(env, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(env))
            fail_msg("no value placeholder before the variable: %s", text);
        if (strcmp(env, "BANDAGE_RESET") == 0)
            assert_string_equal(value, "never|once|always");
        if (strcmp(env, "BANDAGE_WAIT_TIMEOUT") == 0)
            assert_string_equal(value, "SECS");
        if (strcmp(env, "BANDAGE_SCHEMA_FILE") == 0)
            assert_string_equal(value, "PATH");
        if (strcmp(env, "BANDAGE_PLAN") == 0)
            assert_string_equal(value, "[true|false]");
        settings_seen++;
    }
    /* every setting has a line (DESIGN.md's and the others) */
    assert_true(settings_seen >= (int)(sizeof design_settings / sizeof design_settings[0]));
}

static void test_help_fits_and_shows_values(void **state)
{
    (void)state;
    char *full = NULL, *brief = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&full, &len);
    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    f = open_memstream(&brief, &len);
    assert_non_null(f);
    config_print_short_help(f);
    fclose(f);
    check_help_text(full);
    check_help_text(brief);
    assert_contains(full, "Examples:");
    assert_contains(brief, "Run 'bandage --help'");
    free(full);
    free(brief);
}

/* ---- validation ------------------------------------------------------------- */

static void test_reset_once_needs_deployment_id(void **state)
{
    (void)state;
    assert_config_error(LOAD("--reset", "once"));
    assert_contains(g_err, "--reset once");
    assert_contains(g_err, "deployment");

    set("BANDAGE_RESET", "once");
    assert_config_error(LOAD0());
    assert_contains(g_err, "deployment");

    set("BANDAGE_DEPLOYMENT_ID", "d-42");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.reset, RESET_ONCE);
    assert_string_equal(g_cfg.deployment_id, "d-42");

    /* always and never need no id */
    unsetenv("BANDAGE_DEPLOYMENT_ID");
    assert_ok(LOAD("--reset", "always"));
    assert_ok(LOAD("--reset", "never"));
}

static void test_schemas_invalid(void **state)
{
    (void)state;
    char name64[65], name63[64], list[200];
    memset(name64, 'a', 64);
    name64[64] = '\0';
    memset(name63, 'b', 63);
    name63[63] = '\0';

    const char *const bad[] = {
        ",",        "public,,app", ",public", "public,", "bandage", "public,bandage",
        "pg_catalog", "app,pg_catalog", "pg_toast", "pg_", "information_schema", name64,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (LOAD("--schemas", bad[i]) != CONFIG_ERROR)
            fail_msg("--schemas '%s' accepted", bad[i]);
        assert_contains(g_err, "--schemas");
    }
    /* the message quotes the offending element */
    assert_config_error(LOAD("--schemas", "public,pg_catalog,app"));
    assert_contains(g_err, "'pg_catalog'");
    assert_config_error(LOAD("--schemas", "bandage"));
    assert_contains(g_err, "'bandage'");
    assert_config_error(LOAD("--schemas", "public,,app"));
    assert_contains(g_err, "''");
    snprintf(list, sizeof list, "public,%s", name64);
    assert_config_error(LOAD("--schemas", list));
    assert_contains(g_err, name64);

    /* from the environment too (the message names the setting) */
    set("BANDAGE_SCHEMAS", "pg_catalog");
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_SCHEMAS:");
    assert_contains(g_err, "pg_catalog");
    unsetenv("BANDAGE_SCHEMAS");

    /* what is allowed */
    const char *const good[] = {
        "public", "public,app", "bandage2", "bandag", "pgx", "pg", "my_bandage", "information",
        name63,
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (LOAD("--schemas", good[i]) != CONFIG_OK)
            fail_msg("--schemas '%s' rejected: %s", good[i], g_err);
        assert_string_equal(g_cfg.schemas, good[i]);
    }
}

static void test_webhook_url_scheme(void **state)
{
    (void)state;
    const char *const bad[] = {
        "ftp://hooks.example.com/x", "hooks.example.com/x", "file:///etc/passwd",
        "http:/x", "https:x", "mailto:a@b", "//hooks.example.com/x", "httpx://h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (LOAD("--webhook-url", bad[i]) != CONFIG_ERROR)
            fail_msg("--webhook-url '%s' accepted", bad[i]);
        assert_contains(g_err, "--webhook-url");
        assert_contains(g_err, "http");
    }
    set("BANDAGE_WEBHOOK_URL", "ftp://x");
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_WEBHOOK_URL:");
    unsetenv("BANDAGE_WEBHOOK_URL");

    assert_ok(LOAD("--webhook-url", "http://127.0.0.1:8080/hook"));
    assert_string_equal(g_cfg.webhook_url, "http://127.0.0.1:8080/hook");
    assert_ok(LOAD("--webhook-url", "https://hooks.slack.com/services/T0/B0/X"));
    assert_string_equal(g_cfg.webhook_url, "https://hooks.slack.com/services/T0/B0/X");
}

static void test_database_url_unparsable(void **state)
{
    (void)state;
    const char *const bad[] = {
        "postgresql://u:s3cret@h/db?bogus=1",
        "postgres://u:s3cret@h/db?sslmode=require&nonsense=s3cret",
        "host=h password=s3cret junk",
        "host=h password='s3cret",
        "host=h bogus_keyword=s3cret",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (LOAD("--database-url", bad[i]) != CONFIG_ERROR)
            fail_msg("--database-url '%s' accepted", bad[i]);
        assert_contains(g_err, "--database-url");
        assert_not_contains(g_err, "s3cret");

        set("DATABASE_URL", bad[i]);
        if (LOAD0() != CONFIG_ERROR)
            fail_msg("DATABASE_URL='%s' accepted", bad[i]);
        assert_contains(g_err, "DATABASE_URL:");
        assert_not_contains(g_err, "s3cret");
        unsetenv("DATABASE_URL");
    }

    const char *const good[] = {
        "postgresql://u:s3cret@h:5432/db",
        "postgres://h/db?sslmode=require&connect_timeout=3",
        "postgresql:///db?host=/var/run/postgresql",
        "host=db dbname=app user=app password='with space'",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (LOAD("--database-url", good[i]) != CONFIG_OK)
            fail_msg("--database-url '%s' rejected: %s", good[i], g_err);
        assert_string_equal(g_cfg.database_url, good[i]);
    }
}

/* libpq's reason for a key=value string, on one line naming the setting it
 * came from; key=value advice, not the URL form's. */
static void test_bad_keyword_is_named_with_its_setting(void **state)
{
    (void)state;
    static const char *const flags[][2] = {{"--database-url", "--database-url: "},
                                           {"--direct-url", "--direct-url: "}};
    static const char *const vars[] = {"DATABASE_URL", "DIRECT_URL"};
    const char *bad = "host=127.0.0.1 password=s3cret sslmode=require sslmdoe=require";
    for (int i = 0; i < 4; i++) {
        if (i < 2) {
            assert_config_error(LOAD(flags[i][0], bad));
        } else {
            set(vars[i - 2], bad);
            assert_config_error(LOAD0());
            unsetenv(vars[i - 2]);
        }
        char want[64];
        snprintf(want, sizeof want, "%s%s", i < 2 ? flags[i][1] : vars[i - 2],
                 i < 2 ? "" : ": ");
        if (strncmp(g_err, want, strlen(want)) != 0)
            fail_msg("expected \"%s\" to start with \"%s\"", g_err, want);
        assert_contains(g_err, "invalid connection option \"sslmdoe\"");
        assert_not_contains(g_err, "cannot parse");
        assert_not_contains(g_err, "postgresql://");
        assert_not_contains(g_err, "s3cret");
        assert_null(strchr(g_err, '\n'));
    }
}

static void test_error_message_fits_buffer(void **state)
{
    (void)state;
    /* a tiny error buffer is truncated, never overrun (ASan checks the bound) */
    char *argv0 = strdup("bandage"), *argv1 = strdup("--reset"), *argv2 = strdup("sometimes");
    char *argv[] = {argv0, argv1, argv2, NULL};
    char *err = malloc(8);
    struct config cfg;
    assert_non_null(err);
    assert_int_equal(config_load(&cfg, 3, argv, err, 8), CONFIG_ERROR);
    assert_int_equal(strlen(err), 7);
    assert_memory_equal(err, "--reset", 7);
    free(err);
    free(argv0);
    free(argv1);
    free(argv2);
}

/* ---- regressions: an empty --schemas crashed; "-xy" named the wrong word ---- */

/* config_load in a child; returns its wait status. */
static int load_in_child(const char *const *args, enum config_result *result)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* cmocka's handlers would longjmp into the parent's test runner */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        int r = (int)load_v(args);
        if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    int r = -1;
    ssize_t n = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    *result = n == (ssize_t)sizeof r ? (enum config_result)r : (enum config_result)-1;
    return status;
}

/* `bandage --schemas=` (or `--schemas ""`) stores NULL in cfg->schemas and
 * validate_schemas() then calls strchr(NULL, ','): SIGSEGV instead of a
 * usage error. */
static void test_bug_empty_schemas_flag(void **state)
{
    (void)state;
    enum config_result r;
    int status = load_in_child((const char *const[]){"bandage", "--schemas=", NULL}, &r);
    if (!WIFEXITED(status))
        fail_msg("config_load(--schemas=) crashed (signal %d)",
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    assert_int_equal(r, CONFIG_ERROR);
    status = load_in_child((const char *const[]){"bandage", "--schemas", "", NULL}, &r);
    assert_true(WIFEXITED(status));
    assert_int_equal(r, CONFIG_ERROR);
}

/* An unknown short option inside a cluster ("-xy") is reported as
 * argv[optind - 1], which is the previous word ("bandage") because getopt has
 * not advanced optind yet. */
static void test_bug_short_option_cluster_message(void **state)
{
    (void)state;
    assert_config_error(LOAD("-xy"));
    assert_contains(g_err, "-x");
    assert_config_error(LOAD("--grace=1", "-qz"));
    assert_contains(g_err, "-q");
    assert_not_contains(g_err, "--grace");
}

/* Files are checked up front: a typo fails before anything is touched. */
static void test_unreadable_files(void **state)
{
    (void)state;
    assert_config_error(LOAD("--schema-file", "/nonexistent/schema.sql"));
    assert_contains(g_err, "--schema-file");
    assert_contains(g_err, "/nonexistent/schema.sql");
    assert_contains(g_err, "No such file");
    set("BANDAGE_WEBHOOK_CA_FILE", "/nonexistent/ca.pem");
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_WEBHOOK_CA_FILE:");
    unsetenv("BANDAGE_WEBHOOK_CA_FILE");
}

/* Only whole flag names: getopt_long's prefixes would change meaning as
 * flags are added. */
static void test_abbreviated_flag_rejected(void **state)
{
    (void)state;
    assert_config_error(LOAD("--wait=5"));
    assert_contains(g_err, "--wait");
    assert_contains(g_err, "--wait-timeout");
    assert_config_error(LOAD("--grac", "1"));
    assert_ok(LOAD("--grace", "1"));
    assert_int_equal(g_cfg.grace_ms, 1000);
}


/* ---- Prisma's DATABASE_URL (issue 9 item 1) ---------------------------------- */

/* The URL `prisma init` writes, with every parameter users add. */
static void test_prisma_url_accepted(void **state)
{
    (void)state;
    static const char *const params[] = {
        "schema=public", "connection_limit=5", "pool_timeout=10", "pgbouncer=true",
        "pgbouncer=false", "socket_timeout=30", "statement_cache_size=0",
        "max_connection_lifetime=60", "max_idle_connection_lifetime=300",
        "sslaccept=strict", "sslaccept=accept_invalid_certs", "sslmode=require",
        "sslmode=prefer", "sslmode=disable", "sslcert=/etc/ca.pem", "sslpassword=kpw",
        "connect_timeout=5", "application_name=web", "options=-c%20statement_timeout%3D5s",
        "channel_binding=prefer", "host=%2Fvar%2Frun%2Fpostgresql",
    };
    char url[512];
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        snprintf(url, sizeof url, "postgresql://USER:PASSWORD@HOST:5432/DB?%s", params[i]);
        if (LOAD("--database-url", url) != CONFIG_OK)
            fail_msg("%s refused: %s", url, g_err);
        assert_string_equal(g_cfg.database_url, url); /* hooks get it unchanged */
        assert_non_null(g_cfg.conninfo);
    }
    /* all at once, as one user's URL */
    const char *all = "postgresql://USER:PASSWORD@HOST:5432/DB?schema=public&connection_limit=5"
                      "&pool_timeout=10&pgbouncer=true&sslaccept=strict&socket_timeout=30"
                      "&statement_cache_size=100&sslmode=require&connect_timeout=5";
    set("DATABASE_URL", all);
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.database_url, all);
    assert_string_equal(g_cfg.url_schema, "public");
    assert_int_equal(g_cfg.url_pgbouncer, 1);
    /* Prisma's parameters are gone from what libpq sees; libpq's stay */
    static const char *const gone[] = {"schema", "connection_limit", "pool_timeout",
                                       "pgbouncer", "sslaccept", "socket_timeout",
                                       "statement_cache_size"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        assert_not_contains(g_cfg.conninfo, gone[i]);
    assert_contains(g_cfg.conninfo, "connect_timeout='5'");
    assert_contains(g_cfg.conninfo, "host='HOST'");
    assert_contains(g_cfg.conninfo, "dbname='DB'");
    /* sslaccept=strict: Prisma verifies the chain and the host name */
    assert_contains(g_cfg.conninfo, "sslmode='verify-full'");
}

static void test_prisma_url_unknown_parameter(void **state)
{
    (void)state;
    assert_config_error(LOAD("--database-url", "postgresql://u:s3cret@h/db?shema=public"));
    assert_contains(g_err, "--database-url");
    assert_contains(g_err, "'shema'");
    assert_not_contains(g_err, "cannot parse");
    assert_not_contains(g_err, "s3cret");

    set("DIRECT_URL", "postgresql://u:s3cret@h/db?connection_limits=1");
    assert_config_error(LOAD0());
    assert_contains(g_err, "DIRECT_URL:");
    assert_contains(g_err, "'connection_limits'");
    unsetenv("DIRECT_URL");

    /* bad values of Prisma's own parameters name the parameter, never the value */
    static const char *const bad[] = {
        "pgbouncer=yes", "connection_limit=-1", "pool_timeout=ten", "sslaccept=maybe",
        "statement_cache_size=", "socket_timeout=1.5",
    };
    char url[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(url, sizeof url, "postgresql://u:s3cret@h/db?%s", bad[i]);
        if (LOAD("--database-url", url) != CONFIG_ERROR)
            fail_msg("%s accepted", url);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(bad[i], "="), bad[i]);
        assert_contains(g_err, name);
        assert_not_contains(g_err, "s3cret");
    }
}

/* sslidentity is a PKCS#12 bundle: libpq reads PEM only, so it is refused
 * with what to do instead; sslcert is Prisma's CA file (libpq's sslrootcert). */
static void test_prisma_tls_parameters(void **state)
{
    (void)state;
    assert_config_error(LOAD("--database-url",
                             "postgresql://u:p@h/db?sslidentity=/id.p12&sslpassword=s3cret"));
    assert_contains(g_err, "sslidentity");
    assert_contains(g_err, "PGSSLCERT");
    assert_not_contains(g_err, "s3cret");

    assert_ok(LOAD("--database-url", "postgresql://u:p@h/db?sslcert=/etc/ca.pem&sslmode=require"));
    assert_contains(g_cfg.conninfo, "sslrootcert='/etc/ca.pem'");
    assert_not_contains(g_cfg.conninfo, "sslcert=");
    assert_contains(g_cfg.conninfo, "sslmode='require'");

    /* sslaccept=strict with sslmode=disable: no TLS, nothing to verify */
    assert_ok(LOAD("--database-url", "postgresql://u:p@h/db?sslaccept=strict&sslmode=disable"));
    assert_contains(g_cfg.conninfo, "sslmode='disable'");
    assert_ok(LOAD("--database-url", "postgresql://u:p@h/db?sslaccept=accept_invalid_certs"));
    assert_not_contains(g_cfg.conninfo, "verify");

    /* sslcert with sslkey: the client certificate, as libpq and node-postgres
     * (Prisma 7) read it; Prisma 6 never reads sslkey. With Prisma 6's
     * sslaccept too, it could be either: refused */
    assert_ok(LOAD("--database-url", "postgresql://u:p@h/db?sslcert=/c.crt&sslkey=/c.key"));
    assert_contains(g_cfg.conninfo, "sslcert='/c.crt'");
    assert_not_contains(g_cfg.conninfo, "sslrootcert");
    assert_config_error(LOAD("--database-url",
                             "postgresql://u:p@h/db?sslcert=/c.crt&sslkey=/c.key&sslaccept=strict"));
    assert_contains(g_err, "sslrootcert");

    /* key=value conninfo is libpq's alone: sslcert keeps libpq's meaning */
    assert_ok(LOAD("--database-url", "host=h sslcert=/c.crt sslkey=/c.key"));
    assert_contains(g_cfg.conninfo, "sslcert='/c.crt'");
}

/* An unescaped '@' in the password: Prisma (WHATWG URL rules) splits at the
 * last '@' of the authority; libpq at the first, making the password's tail
 * the host, which the log then showed. */
static void test_url_unescaped_at_in_password(void **state)
{
    (void)state;
    assert_ok(LOAD("--database-url", "postgresql://alice:p@ss@w0rd@db.example.com:5433/app"));
    assert_string_equal(g_cfg.database_url, "postgresql://alice:p@ss@w0rd@db.example.com:5433/app");
    assert_contains(g_cfg.conninfo, "host='db.example.com'");
    assert_contains(g_cfg.conninfo, "password='p@ss@w0rd'");
    assert_contains(g_cfg.conninfo, "user='alice'");
    /* Azure-style user names carry an '@' too */
    assert_ok(LOAD("--database-url", "postgresql://app@server:pw@server.example.com/app"));
    assert_contains(g_cfg.conninfo, "user='app@server'");
    assert_contains(g_cfg.conninfo, "host='server.example.com'");
    /* an '@' in a query value is not userinfo */
    assert_ok(LOAD("--database-url", "postgresql://u:pw@h?application_name=a@b"));
    assert_contains(g_cfg.conninfo, "host='h'");
}

/* schema=X is the default of --schemas; --schemas and BANDAGE_SCHEMAS win. */
static void test_url_schema_is_schemas_default(void **state)
{
    (void)state;
    set("DATABASE_URL", "postgresql://u:p@h/db?schema=audit");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.url_schema, "audit");
    assert_string_equal(g_cfg.schemas, "audit");

    set("BANDAGE_SCHEMAS", "public");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.schemas, "public");
    assert_string_equal(g_cfg.url_schema, "audit");

    assert_ok(LOAD("--schemas", "app"));
    assert_string_equal(g_cfg.schemas, "app");
    unsetenv("BANDAGE_SCHEMAS");

    /* no schema parameter: public, and url_schema NULL */
    set("DATABASE_URL", "postgresql://u:p@h/db");
    assert_ok(LOAD0());
    assert_null(g_cfg.url_schema);
    assert_string_equal(g_cfg.schemas, "public");

    /* a URL schema bandage may not reset is refused, naming where it came from */
    set("DATABASE_URL", "postgresql://u:p@h/db?schema=pg_catalog");
    assert_config_error(LOAD0());
    assert_contains(g_err, "schema");
    assert_contains(g_err, "DATABASE_URL");
    /* ... unless --schemas says what to reset */
    assert_ok(LOAD("--schemas", "public"));
}

/* DIRECT_URL (Prisma's directUrl) is what bandage uses; DATABASE_URL is the
 * app's and the hooks'. */
static void test_direct_url_precedence(void **state)
{
    (void)state;
    set("DATABASE_URL", "postgresql://u:p@pooler:6543/db?pgbouncer=true&schema=app");
    set("DIRECT_URL", "postgresql://u:p@direct:5432/db?schema=app");
    assert_ok(LOAD0());
    assert_contains(g_cfg.conninfo, "host='direct'");
    assert_string_equal(g_cfg.database_url,
                        "postgresql://u:p@pooler:6543/db?pgbouncer=true&schema=app");
    assert_string_equal(g_cfg.direct_url, "postgresql://u:p@direct:5432/db?schema=app");
    assert_int_equal(g_cfg.url_pgbouncer, 0);
    assert_string_equal(g_cfg.url_schema, "app");

    /* the flag wins over the variable */
    assert_ok(LOAD("--direct-url", "postgresql://u:p@flagdirect/db"));
    assert_contains(g_cfg.conninfo, "host='flagdirect'");
    /* the schema then comes from DATABASE_URL when DIRECT_URL names none */
    assert_string_equal(g_cfg.url_schema, "app");

    /* two different schemas: which one? refused */
    set("DIRECT_URL", "postgresql://u:p@direct:5432/db?schema=other");
    assert_config_error(LOAD0());
    assert_contains(g_err, "DIRECT_URL");
    assert_contains(g_err, "DATABASE_URL");

    /* DIRECT_URL alone */
    unsetenv("DATABASE_URL");
    set("DIRECT_URL", "postgresql://u:p@direct:5432/db");
    assert_ok(LOAD0());
    assert_null(g_cfg.database_url);
    assert_contains(g_cfg.conninfo, "host='direct'");

    /* neither: libpq's PG* variables */
    unsetenv("DIRECT_URL");
    assert_ok(LOAD0());
    assert_null(g_cfg.conninfo);
}

/* A reset or migrations through a transaction pooler (pgbouncer=true on the
 * URL bandage uses) is refused, naming DIRECT_URL; waiting alone is fine. */
static void test_pgbouncer_url_refuses_reset(void **state)
{
    (void)state;
    set("DATABASE_URL", "postgresql://u:p@pooler:6543/db?pgbouncer=true");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.url_pgbouncer, 1);

    assert_config_error(LOAD("--reset", "always", "--confirm-database", "db"));
    assert_contains(g_err, "pgbouncer=true");
    assert_contains(g_err, "DIRECT_URL");
    assert_config_error(LOAD("--migrations", "/tmp"));
    assert_contains(g_err, "DIRECT_URL");

    set("DIRECT_URL", "postgresql://u:p@direct:5432/db");
    assert_ok(LOAD("--reset", "always", "--confirm-database", "db"));
    assert_int_equal(g_cfg.url_pgbouncer, 0);

    /* a DIRECT_URL that is itself a pooler does not help */
    set("DIRECT_URL", "postgresql://u:p@direct:5432/db?pgbouncer=true");
    assert_config_error(LOAD("--reset", "always", "--confirm-database", "db"));
    assert_contains(g_err, "DIRECT_URL");
}

/* ---- --schemas: trimmed, case kept (issue 8 item 4) --------------------------- */

static void test_schemas_trimmed(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"public, audit", "public,audit"}, {" public", "public"},   {"public ", "public"},
        {" a , b ,c ", "a,b,c"},           {"PUBLIC", "PUBLIC"},    {"\tpublic\t", "public"},
        {"Public,public", "Public,public"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (LOAD("--schemas", cases[i].in) != CONFIG_OK)
            fail_msg("--schemas '%s' refused: %s", cases[i].in, g_err);
        assert_string_equal(g_cfg.schemas, cases[i].out);
    }
    set("BANDAGE_SCHEMAS", "public, audit");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.schemas, "public,audit");
    unsetenv("BANDAGE_SCHEMAS");

    static const char *const bad[] = {"public, public", "public,  ,audit", " ", "public, ",
                                      " bandage", "audit, pg_catalog "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (LOAD("--schemas", bad[i]) != CONFIG_ERROR)
            fail_msg("--schemas '%s' accepted as '%s'", bad[i], g_cfg.schemas);
    assert_config_error(LOAD("--schemas", "public, public"));
    assert_contains(g_err, "'public' is listed twice");
}

/* ---- --schema-file must be a regular file (issue 8 item 2) --------------------- */

static void test_schema_file_directory_refused(void **state)
{
    (void)state;
    char dir[] = "/tmp/bandage-schema-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_config_error(LOAD("--schema-file", dir));
    assert_contains(g_err, "--schema-file");
    assert_contains(g_err, "directory");
    assert_contains(g_err, "docker run -v");
    set("BANDAGE_SCHEMA_FILE", dir);
    assert_config_error(LOAD0());
    assert_contains(g_err, "BANDAGE_SCHEMA_FILE:");
    unsetenv("BANDAGE_SCHEMA_FILE");
    rmdir(dir);

    /* a device or a pipe is not a schema file either */
    assert_config_error(LOAD("--schema-file", "/dev/null"));
    assert_contains(g_err, "regular file");

    char path[] = "/tmp/bandage-schema-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "SELECT 1;\n", 10), 10);
    close(fd);
    assert_ok(LOAD("--schema-file", path));
    assert_string_equal(g_cfg.schema_file, path);
    /* unreadable: only when not root (root reads anything) */
    if (geteuid() != 0) {
        assert_int_equal(chmod(path, 0), 0);
        assert_config_error(LOAD("--schema-file", path));
        assert_contains(g_err, "cannot read");
    }
    unlink(path);
}

/* ---- booleans ---------------------------------------------------------------- */

static void test_bool_spellings(void **state)
{
    (void)state;
    static const char *const on[] = {"true", "TRUE", "True", "1", "yes", "YES", "on", "On"};
    static const char *const off[] = {"false", "FALSE", "0", "no", "No", "off", "OFF"};
    static const char *const bad[] = {"2", "y", "n", "enable", "truee", "t", " true", "-1"};
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        if (LOAD("--plan", on[i]) != CONFIG_OK)
            fail_msg("--plan %s: %s", on[i], g_err);
        assert_int_equal(g_cfg.plan, 1);
        set("BANDAGE_CREATE_SCHEMAS", on[i]);
        assert_ok(LOAD0());
        assert_int_equal(g_cfg.create_schemas, 1);
    }
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        if (LOAD("--plan", off[i]) != CONFIG_OK)
            fail_msg("--plan %s: %s", off[i], g_err);
        assert_int_equal(g_cfg.plan, 0);
        set("BANDAGE_DROP_DEPENDENTS", off[i]);
        assert_ok(LOAD0());
        assert_int_equal(g_cfg.drop_dependents, 0);
    }
    unsetenv("BANDAGE_CREATE_SCHEMAS");
    unsetenv("BANDAGE_DROP_DEPENDENTS");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--allow-empty-schema=%s", bad[i]);
        if (LOAD(flag) != CONFIG_ERROR)
            fail_msg("%s accepted", flag);
        assert_contains(g_err, "--allow-empty-schema");
        assert_contains(g_err, "yes/no");
    }
}

/* A bare boolean flag is on, as users of every CLI expect (`--plan`); the
 * word after it is its value only when it is a boolean: otherwise it is the
 * start of the command. */
static void test_bool_flag_without_value(void **state)
{
    (void)state;
    assert_ok(LOAD("--plan"));
    assert_int_equal(g_cfg.plan, 1);
    assert_null(g_cfg.command);
    assert_ok(LOAD("--plan", "--", "node", "app.js"));
    assert_int_equal(g_cfg.plan, 1);
    assert_string_equal(g_cfg.command[0], "node");
    assert_ok(LOAD("--drop-dependents", "--plan", "off"));
    assert_int_equal(g_cfg.drop_dependents, 1);
    assert_int_equal(g_cfg.plan, 0);
    assert_ok(LOAD("--plan=no", "--", "true"));
    assert_int_equal(g_cfg.plan, 0);
    assert_ok(LOAD("--create-schemas", "node", "app.js"));
    assert_int_equal(g_cfg.create_schemas, 1);
    assert_string_equal(g_cfg.command[0], "node");
}

/* ---- durations below 1 ms, webhook-timeout 0 (issue 9 item 7) ------------------ */

static void test_duration_below_one_ms_refused(void **state)
{
    (void)state;
    static const char *const tiny[] = {"0.0001", "0.0009", "0.00001", "0.0005s"};
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        /* 0 is allowed for --wait-timeout, but 0.0001 is not 0 */
        if (LOAD("--wait-timeout", tiny[i]) != CONFIG_ERROR)
            fail_msg("--wait-timeout %s accepted as %ld ms", tiny[i], g_cfg.wait_timeout_ms);
        assert_contains(g_err, "--wait-timeout");
        assert_contains(g_err, "1 ms");
    }
    assert_ok(LOAD("--wait-timeout", "0.001"));
    assert_int_equal(g_cfg.wait_timeout_ms, 1);
    assert_ok(LOAD("--wait-timeout", "0.0000"));
    assert_int_equal(g_cfg.wait_timeout_ms, 0);

    /* --webhook-timeout 0 would be "no limit" to libcurl: refused */
    assert_config_error(LOAD("--webhook-timeout", "0"));
    assert_contains(g_err, "--webhook-timeout");
    assert_config_error(LOAD("--webhook-timeout", "0.0001"));
    assert_ok(LOAD("--webhook-timeout", "1ms"));
    assert_int_equal(g_cfg.webhook_timeout_ms, 1);
}

/* --dead-connection-timeout: a duration, 0 (the kernel's defaults) or from
 * 1 s (keepalive probes count whole seconds) to a day. */
static void test_dead_connection_timeout(void **state)
{
    (void)state;
    set("BANDAGE_DEAD_CONNECTION_TIMEOUT", "7.5");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.dead_connection_timeout_ms, 7500);
    assert_ok(LOAD("--dead-connection-timeout", "2"));
    assert_int_equal(g_cfg.dead_connection_timeout_ms, 2000);
    unsetenv("BANDAGE_DEAD_CONNECTION_TIMEOUT");

    static const struct {
        const char *value;
        long ms;
    } good[] = {{"0", 0}, {"0ms", 0}, {"1", 1000}, {"1000ms", 1000}, {"86400", DAY_MS}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (LOAD("--dead-connection-timeout", good[i].value) != CONFIG_OK)
            fail_msg("--dead-connection-timeout %s: %s", good[i].value, g_err);
        assert_int_equal(g_cfg.dead_connection_timeout_ms, good[i].ms);
    }
    static const char *const below_1s[] = {"0.5", "999ms", "1ms", "0.001"};
    for (size_t i = 0; i < sizeof below_1s / sizeof below_1s[0]; i++) {
        if (LOAD("--dead-connection-timeout", below_1s[i]) != CONFIG_ERROR)
            fail_msg("--dead-connection-timeout %s accepted (%ld ms)", below_1s[i],
                     g_cfg.dead_connection_timeout_ms);
        assert_contains(g_err, "--dead-connection-timeout");
        assert_contains(g_err, "below 1 s");
        assert_contains(g_err, "use 0");
    }
    static const char *const bad[] = {"86401", "soon", "-1", "30m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("BANDAGE_DEAD_CONNECTION_TIMEOUT", bad[i]);
        if (LOAD0() != CONFIG_ERROR)
            fail_msg("BANDAGE_DEAD_CONNECTION_TIMEOUT=%s accepted", bad[i]);
        assert_contains(g_err, "BANDAGE_DEAD_CONNECTION_TIMEOUT");
        assert_contains(g_err, "not a valid duration");
    }
}

/* PGCONNECT_TIMEOUT is read by libpq and by bandage's attempt limit (x 1000). */
static void test_pgconnect_timeout_validated(void **state)
{
    (void)state;
    static const char *const bad[] = {"abc", "5s", "1.5", "99999999999999999999", "86401",
                                      "9223372036854775807"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("PGCONNECT_TIMEOUT", bad[i]);
        if (LOAD0() != CONFIG_ERROR)
            fail_msg("PGCONNECT_TIMEOUT=%s accepted", bad[i]);
        assert_contains(g_err, "PGCONNECT_TIMEOUT");
    }
    static const char *const good[] = {"0", "2", "86400", "-1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        set("PGCONNECT_TIMEOUT", good[i]);
        if (LOAD0() != CONFIG_OK)
            fail_msg("PGCONNECT_TIMEOUT=%s: %s", good[i], g_err);
    }
    unsetenv("PGCONNECT_TIMEOUT");
    /* the URL's connect_timeout has the same bound */
    assert_config_error(LOAD("--database-url", "postgresql://h/db?connect_timeout=99999999999"));
    assert_contains(g_err, "connect_timeout");
}

/* ---- secrets on the command line (issue 9 item 5) ------------------------------ */

static int argv_contains(const char *needle)
{
    for (int i = 0; i < g_argc; i++)
        if (strstr(g_argv[i], needle))
            return 1;
    return 0;
}

static void test_argv_secrets_blanked(void **state)
{
    (void)state;
    assert_ok(LOAD("--database-url", "postgresql://u:s3cretdb@h/db", "--direct-url=host=d "
                   "password=s3cretdirect", "--webhook-url", "https://hooks.example.com/T/s3crethook",
                   "--grace", "1", "--", "app", "--password", "s3cretapp"));
    assert_false(argv_contains("s3cretdb"));
    assert_false(argv_contains("s3cretdirect"));
    assert_false(argv_contains("s3crethook"));
    /* the flag names stay, so ps still shows what was given */
    assert_string_equal(g_argv[1], "--database-url");
    assert_int_equal(strncmp(g_argv[3], "--direct-url=", 13), 0);
    assert_string_equal(g_argv[4], "--webhook-url");
    assert_string_equal(g_argv[6], "--grace");
    assert_string_equal(g_argv[7], "1");
    /* bandage keeps the values */
    assert_string_equal(g_cfg.database_url, "postgresql://u:s3cretdb@h/db");
    assert_string_equal(g_cfg.direct_url, "host=d password=s3cretdirect");
    assert_string_equal(g_cfg.webhook_url, "https://hooks.example.com/T/s3crethook");
    assert_contains(g_cfg.conninfo, "s3cretdirect");
    /* the app's own arguments are the app's */
    assert_string_equal(g_cfg.command[0], "app");
    assert_string_equal(g_cfg.command[1], "--password");
    assert_string_equal(g_cfg.command[2], "s3cretapp");
    /* one warning, naming the flags and the fix, not the secret */
    assert_contains(g_cfg.start_warnings, "--database-url");
    assert_contains(g_cfg.start_warnings, "--webhook-url");
    assert_contains(g_cfg.start_warnings, "environment");
    assert_not_contains(g_cfg.start_warnings, "s3cret");

    /* nothing secret: nothing blanked, no warning */
    assert_ok(LOAD("--database-url", "postgresql://u@h/db", "--grace", "1"));
    assert_string_equal(g_argv[2], "postgresql://u@h/db");
    assert_string_equal(g_cfg.start_warnings, "");

    /* from the environment: no warning */
    set("DATABASE_URL", "postgresql://u:s3cretdb@h/db");
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.start_warnings, "");
    unsetenv("DATABASE_URL");
}

/* Railway SIGKILLs RAILWAY_DEPLOYMENT_DRAINING_SECONDS after SIGTERM: unless
 * --grace / BANDAGE_GRACE says otherwise, the grace ends 1 s before, and the
 * exit report (--webhook-timeout) gets that second. */
static void test_railway_draining_fits_grace(void **state)
{
    (void)state;
    assert_ok(LOAD("--", "app"));
    assert_int_equal(g_cfg.grace_ms, 10000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 5000);

    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "10");
    assert_ok(LOAD("--", "app"));
    assert_int_equal(g_cfg.grace_ms, 9000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 1000);
    assert_string_equal(g_cfg.start_warnings, "");

    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "60");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.grace_ms, 59000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 1000);

    /* shorter than the report's second: no grace, the report gets it all */
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "1");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.grace_ms, 0);
    assert_int_equal(g_cfg.webhook_timeout_ms, 1000);
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "0.4");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.grace_ms, 0);
    assert_int_equal(g_cfg.webhook_timeout_ms, 400);

    /* the user's own settings win */
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "10");
    assert_ok(LOAD("--grace", "3", "--webhook-timeout", "2"));
    assert_int_equal(g_cfg.grace_ms, 3000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 2000);
    set("BANDAGE_GRACE", "4");
    set("BANDAGE_WEBHOOK_TIMEOUT", "0.5");
    assert_ok(LOAD0());
    assert_int_equal(g_cfg.grace_ms, 4000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 500);
    unsetenv("BANDAGE_GRACE");
    unsetenv("BANDAGE_WEBHOOK_TIMEOUT");

    /* empty is unset */
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "");
    assert_ok(LOAD("--", "app"));
    assert_int_equal(g_cfg.grace_ms, 10000);
    assert_int_equal(g_cfg.webhook_timeout_ms, 5000);
    assert_string_equal(g_cfg.start_warnings, "");

    /* not a duration: refused, naming the variable */
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "ten");
    assert_config_error(LOAD("--", "app"));
    assert_contains(g_err, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS: 'ten'");
    assert_not_contains(g_err, "--grace:");
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "90000");
    assert_config_error(LOAD("--", "app"));
    assert_contains(g_err, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS");
}

/* A draining time of 0 (Railway's default) leaves no graceful shutdown: one
 * warning at start, when there is an app to stop. */
static void test_railway_draining_zero_warns(void **state)
{
    (void)state;
    set("RAILWAY_DEPLOYMENT_DRAINING_SECONDS", "0");
    assert_ok(LOAD("--", "app"));
    assert_int_equal(g_cfg.grace_ms, 0);
    assert_int_equal(g_cfg.webhook_timeout_ms, 5000); /* the deploy report keeps its time */
    assert_contains(g_cfg.start_warnings, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS is 0");
    assert_contains(g_cfg.start_warnings, "no graceful shutdown");

    /* no app: nothing to stop, no warning */
    assert_ok(LOAD0());
    assert_string_equal(g_cfg.start_warnings, "");

    /* an explicit grace does not make the time: still warned */
    assert_ok(LOAD("--grace", "5", "--", "app"));
    assert_int_equal(g_cfg.grace_ms, 5000);
    assert_contains(g_cfg.start_warnings, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS is 0");

    /* beside the argv-secret warning, both are said */
    assert_ok(LOAD("--webhook-url", "https://hooks.example.com/T/s3crethook", "--", "app"));
    assert_contains(g_cfg.start_warnings, "--webhook-url");
    assert_contains(g_cfg.start_warnings, "RAILWAY_DEPLOYMENT_DRAINING_SECONDS is 0");
    assert_not_contains(g_cfg.start_warnings, "s3cret");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_precedence_string),
        T(test_precedence_duration),
        T(test_precedence_choice),
        T(test_every_choice_value),
        T(test_deployment_id_fallback),
        T(test_empty_env_is_unset),
        T(test_duration_valid),
        T(test_duration_invalid_flag),
        T(test_duration_invalid_env),
        T(test_duration_zero_not_allowed),
        T(test_choice_invalid),
        T(test_unknown_flag),
        T(test_flag_missing_value),
        T(test_flag_value_forms),
        T(test_command_after_double_dash),
        T(test_command_at_first_non_option),
        T(test_no_command),
        T(test_help_version_markdown),
        T(test_help_output),
        T(test_help_fits_and_shows_values),
        T(test_reset_once_needs_deployment_id),
        T(test_schemas_invalid),
        T(test_webhook_url_scheme),
        T(test_database_url_unparsable),
        T(test_bad_keyword_is_named_with_its_setting),
        T(test_error_message_fits_buffer),
        T(test_bug_empty_schemas_flag),
        T(test_bug_short_option_cluster_message),
        T(test_abbreviated_flag_rejected),
        T(test_unreadable_files),
        T(test_prisma_url_accepted),
        T(test_prisma_url_unknown_parameter),
        T(test_prisma_tls_parameters),
        T(test_url_unescaped_at_in_password),
        T(test_url_schema_is_schemas_default),
        T(test_direct_url_precedence),
        T(test_pgbouncer_url_refuses_reset),
        T(test_schemas_trimmed),
        T(test_schema_file_directory_refused),
        T(test_bool_spellings),
        T(test_bool_flag_without_value),
        T(test_duration_below_one_ms_refused),
        T(test_pgconnect_timeout_validated),
        T(test_dead_connection_timeout),
        T(test_argv_secrets_blanked),
        T(test_railway_draining_fits_grace),
        T(test_railway_draining_zero_warns),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
