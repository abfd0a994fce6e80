/* The statement checks: what a pending statement does to the deployment
 * still running (breaking) and to the tables it locks (long lock or
 * rewrite), read with PostgreSQL's own parser (sqltree.c). Pure: no
 * database; the table sizes come from the caller (checks.c). See README
 * "Statement checks" for the rules and the acknowledgement comment. */
#ifndef BANDAGE_LINT_H
#define BANDAGE_LINT_H

#include <stddef.h>

enum lint_class {
    LINT_BREAKING,    /* the previous deployment, still serving, fails on it */
    LINT_LONG_LOCK,   /* holds a lock the app queues behind for as long as the table takes */
    LINT_NOT_CHECKED  /* the grammar could not read it (newer syntax), or its tree could not
                       * be read (deeper than jansson reads, not UTF-8): left to the server */
};

#define LINT_NAME 64 /* identifiers are at most 63 bytes (NAMEDATALEN) */

struct lint_finding {
    const char *rule;          /* "drop-column", ...; static */
    enum lint_class cls;
    char schema[LINT_NAME];    /* "" when the statement does not name one */
    char table[LINT_NAME];     /* the table it acts on, "" when none (DROP FUNCTION) */
    char detail[200];          /* the column, index, type or function; why not checked */
    int acknowledged;          /* a "-- bandage:allow RULE" comment names its rule */
};

struct lint_findings {
    struct lint_finding *items;
    size_t count, cap;
};

/* What the run has done so far: tables created by an earlier pending
 * statement are new and empty (an index or constraint on them locks no one). */
struct lint_state {
    char (*created)[2][LINT_NAME]; /* schema, table */
    size_t n_created, cap_created;
};

/* Checks one statement (NUL-terminated, as sql_split gives it) after the
 * ones before it in the same run; `comments` is the text between the
 * previous statement and this one, where "-- bandage:allow RULE[, RULE]"
 * acknowledges a finding. Findings are appended to out. Returns 0 (a
 * statement the parser cannot read adds one LINT_NOT_CHECKED finding), or -1
 * when out of memory. */
int lint_statement(struct lint_state *st, const char *sql, const char *comments,
                   size_t comments_len, struct lint_findings *out);

void lint_state_free(struct lint_state *st);
void lint_findings_free(struct lint_findings *f);

/* Gives back the parser's memory (call once the checks are done). */
void lint_done(void);

/* 0 when this binary has no parser (see sqltree.h): nothing can be checked.
 * A constant there, so that the rules and what calls them are left out of
 * a static binary built without it (STATIC_PG_QUERY=0, see static.mk). */
#ifdef BANDAGE_NO_PG_QUERY
static inline int lint_available(void)
{
    return 0;
}
#else
int lint_available(void);
#endif

/* "breaking", "long-lock", "not-checked". */
const char *lint_class_name(enum lint_class cls);

/* One line on what a rule's finding means for the running app, for the log. */
const char *lint_rule_consequence(const char *rule);

/* 1 when comments hold "bandage:allow" naming rule (or "all"). */
int lint_acknowledges(const char *comments, size_t len, const char *rule);

#endif
