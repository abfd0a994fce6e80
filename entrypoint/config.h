/* The settings table: every setting of bandage is defined once, in config.c. */
#ifndef BANDAGE_CONFIG_H
#define BANDAGE_CONFIG_H

#include <stdio.h>

enum reset_mode { RESET_NEVER, RESET_ONCE, RESET_ALWAYS };
enum forward_mode { FORWARD_GROUP, FORWARD_CHILD };
enum webhook_format { WEBHOOK_JSON, WEBHOOK_SLACK };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum checks_mode { CHECKS_WARN, CHECKS_REFUSE, CHECKS_OFF };

struct config {
    const char *database_url;     /* NULL: libpq's PG* variables; passed to hooks as is */
    const char *direct_url;       /* Prisma's directUrl (DIRECT_URL): unpooled, preferred */
    const char *conninfo;         /* what bandage's own connections use: direct_url, else
                                     database_url, Prisma's parameters taken out; NULL: PG* */
    const char *url_schema;       /* the URL's Prisma `schema` parameter, NULL if none */
    int url_pgbouncer;            /* that URL says pgbouncer=true (Prisma: a transaction pooler) */
    long wait_timeout_ms;         /* 0: skip waiting */
    long connect_timeout_ms;
    long dead_connection_timeout_ms; /* a silent server ends the connection; 0: kernel's */
    int reset;                    /* enum reset_mode */
    const char *confirm_database;
    const char *schemas;          /* comma-separated, trimmed, each named once */
    int create_schemas;           /* a --schemas entry that does not exist may be created */
    int drop_dependents;          /* objects elsewhere that depend on a reset schema may go */
    int allow_empty_schema;       /* an empty --schema-file may reset to nothing */
    long lock_wait_ms;            /* how long the reset tries to take its table locks */
    long keep_previous;           /* a reset keeps this many replaced schemas of each name */
    int restore_previous;         /* swap the newest kept schemas back instead of a reset */
    const char *schema_file;
    const char *schema_command;
    const char *before_reset;
    const char *migrations;       /* a Prisma migrations directory, NULL if none */
    int migrations_strict;        /* a changed applied migration is an error */
    int migration_checks;         /* enum checks_mode: pending statements that break or lock */
    int plan;                     /* print what would be done, change nothing */
    int history;                  /* print the recent deploys and kept schemas, change nothing */
    const char *deployment_id;
    const char *webhook_url;
    long webhook_timeout_ms;
    int webhook_format;           /* enum webhook_format */
    const char *webhook_ca_file;
    int forward_to;               /* enum forward_mode */
    long grace_ms;
    int log_format;               /* enum log_format */
    int log_level;                /* enum log_level */
    char **command;               /* argv after "--", NULL when none */
    /* Warnings found while reading the settings (a secret given as a flag and
     * blanked in argv; a Railway draining time of 0), "; "-joined: main logs
     * them once the log is set up. */
    char start_warnings[640];
    /* Where the app's driver reads the database URL more strictly than libpq
     * (dburl's note), "" when nowhere: main logs it on its own line. */
    char url_note[360];
};

enum config_result {
    CONFIG_OK,       /* run */
    CONFIG_HELP,     /* --help was asked: print config_print_help() */
    CONFIG_SHORT_HELP, /* -h: print config_print_short_help() */
    CONFIG_VERSION,  /* --version was asked */
    CONFIG_MARKDOWN, /* --help-markdown: the settings table for the README */
    CONFIG_ERROR     /* usage error; the message is in the error buffer */
};

/* Fill cfg from argv, then the environment, then the defaults.
 * On CONFIG_ERROR, err holds one line naming the setting and the fix. */
enum config_result config_load(struct config *cfg, int argc, char **argv,
                               char *err, size_t errlen);

/* Frees what config_load allocated (copies it owns); cfg's strings go. */
void config_release(void);

void config_print_help(FILE *out);
/* -h: each setting's flag, value and variable, grouped; no texts. */
void config_print_short_help(FILE *out);

/* The settings table as a markdown table (README's settings section). */
void config_print_markdown(FILE *out);

const char *config_reset_mode_name(int mode);

extern const char bandage_version[];

#endif
