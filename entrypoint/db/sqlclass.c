#include "sqlclass.h"

#include <ctype.h>
#include <string.h>

/* Walks a statement word by word: keywords and unquoted names come back
 * upper-cased; quoted names and strings come back as "" (they are never
 * keywords); punctuation and comments are skipped. */
struct words {
    const char *text;
    size_t len, pos;
};

static void skip_quoted(struct words *w, char quote)
{
    for (w->pos++; w->pos < w->len; w->pos++) {
        if (w->text[w->pos] == quote) {
            if (w->pos + 1 < w->len && w->text[w->pos + 1] == quote) {
                w->pos++; /* doubled quote */
                continue;
            }
            w->pos++;
            return;
        }
    }
}

static void skip_comment(struct words *w)
{
    if (w->text[w->pos] == '-') {
        while (w->pos < w->len && w->text[w->pos] != '\n')
            w->pos++;
        return;
    }
    int depth = 0;
    while (w->pos < w->len) {
        if (w->pos + 1 < w->len && w->text[w->pos] == '/' && w->text[w->pos + 1] == '*') {
            depth++;
            w->pos += 2;
        } else if (w->pos + 1 < w->len && w->text[w->pos] == '*' && w->text[w->pos + 1] == '/') {
            w->pos += 2;
            if (--depth == 0)
                return;
        } else {
            w->pos++;
        }
    }
}

static int is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* The next word into word (at most wordlen-1 bytes kept); *at its offset.
 * Returns 0 at the end of the statement. */
static int next_word(struct words *w, char *word, size_t wordlen, size_t *at)
{
    while (w->pos < w->len) {
        char c = w->text[w->pos];
        char n = w->pos + 1 < w->len ? w->text[w->pos + 1] : '\0';
        if ((c == '-' && n == '-') || (c == '/' && n == '*')) {
            skip_comment(w);
        } else if (c == '"' || c == '\'') {
            *at = w->pos;
            skip_quoted(w, c);
            word[0] = '\0';
            return 1;
        } else if (isalnum((unsigned char)c) || c == '_') {
            size_t k = 0;
            *at = w->pos;
            for (; w->pos < w->len && is_word_char(w->text[w->pos]); w->pos++)
                if (k + 1 < wordlen)
                    word[k++] = (char)toupper((unsigned char)w->text[w->pos]);
            word[k] = '\0';
            return 1;
        } else {
            w->pos++;
        }
    }
    return 0;
}

int sql_changes_rows_only(const char *text, size_t len)
{
    static const char *const row_changes[] = {"INSERT", "UPDATE", "DELETE", "MERGE", "COPY",
                                              NULL};
    struct words w = {text, len, 0};
    char word[16];
    size_t at;
    if (!next_word(&w, word, sizeof word, &at))
        return 0;
    for (int k = 0; row_changes[k]; k++)
        if (strcmp(word, row_changes[k]) == 0)
            return 1;
    return 0;
}

enum sql_tx_control sql_tx_control(const char *text, size_t len, char *word, size_t wordlen)
{
    static const char *const droppable[] = {"BEGIN", "START", "COMMIT", "END", NULL};
    static const char *const refused[] = {"ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE",
                                          NULL};
    struct words w = {text, len, 0};
    size_t at;
    char second[32] = "";
    if (!next_word(&w, word, wordlen, &at)) {
        word[0] = '\0';
        return SQL_TX_NONE;
    }
    for (int k = 0; refused[k]; k++)
        if (strcmp(word, refused[k]) == 0)
            return SQL_TX_REFUSED;
    /* COMMIT PREPARED 'x' finishes a two-phase transaction: not ours to drop. */
    if (strcmp(word, "COMMIT") == 0 && next_word(&w, second, sizeof second, &at) &&
        strcmp(second, "PREPARED") == 0)
        return SQL_TX_REFUSED;
    for (int k = 0; droppable[k]; k++)
        if (strcmp(word, droppable[k]) == 0)
            return SQL_TX_DROPPABLE;
    return SQL_TX_NONE;
}

/* Finds the CONCURRENTLY of CREATE [UNIQUE] INDEX, DROP INDEX and REINDEX
 * [(options)] kind; sets *kind_out to REINDEX's kind word when asked. */
static int find_concurrently(const char *text, size_t len, size_t *offset, char *kind_out)
{
    struct words w = {text, len, 0};
    char a[32], b[32];
    size_t at;
    if (!next_word(&w, a, sizeof a, &at) || !next_word(&w, b, sizeof b, &at))
        return 0;
    if (strcmp(a, "CREATE") == 0 && strcmp(b, "UNIQUE") == 0 && !next_word(&w, b, sizeof b, &at))
        return 0;
    if (strcmp(a, "REINDEX") == 0) {
        /* next_word skips "(", so options read as words: step over them
         * until the kind. */
        static const char *const kinds[] = {"INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM",
                                            NULL};
        for (;;) {
            int k = 0;
            while (kinds[k] && strcmp(kinds[k], b) != 0)
                k++;
            if (kinds[k])
                break;
            if (!next_word(&w, b, sizeof b, &at))
                return 0;
        }
        if (kind_out)
            strcpy(kind_out, b);
    } else if (!((strcmp(a, "CREATE") == 0 || strcmp(a, "DROP") == 0) &&
                 strcmp(b, "INDEX") == 0)) {
        return 0;
    }
    if (!next_word(&w, b, sizeof b, &at) || strcmp(b, "CONCURRENTLY") != 0)
        return 0;
    *offset = at;
    return 1;
}

int sql_concurrently_keyword(const char *text, size_t len, size_t *offset, size_t *length)
{
    if (!find_concurrently(text, len, offset, NULL))
        return 0;
    *length = strlen("CONCURRENTLY");
    return 1;
}

/* Does the rest of the statement hold word `first`, later followed by `then`? */
static int has_words(struct words *w, const char *first, const char *then)
{
    char word[32];
    size_t at;
    int seen = 0;
    while (next_word(w, word, sizeof word, &at)) {
        if (!seen)
            seen = strcmp(word, first) == 0;
        else if (strcmp(word, then) == 0)
            return 1;
    }
    return 0;
}

int sql_needs_autocommit(const char *text, size_t len, int server_version)
{
    struct words w = {text, len, 0};
    char a[32], b[32] = "", kind[32] = "";
    size_t at;
    if (!next_word(&w, a, sizeof a, &at))
        return 0;
    if (strcmp(a, "VACUUM") == 0)
        return 1;
    int has_b = next_word(&w, b, sizeof b, &at);
    if (strcmp(a, "CLUSTER") == 0) /* CLUSTER [VERBOSE] alone: every table */
        return !has_b || (strcmp(b, "VERBOSE") == 0 && !next_word(&w, b, sizeof b, &at));
    if (!has_b)
        return 0;
    if ((strcmp(a, "CREATE") == 0 || strcmp(a, "DROP") == 0) &&
        (strcmp(b, "DATABASE") == 0 || strcmp(b, "TABLESPACE") == 0))
        return 1;
    if (strcmp(a, "ALTER") == 0) {
        if (strcmp(b, "SYSTEM") == 0)
            return 1;
        if (strcmp(b, "TABLE") == 0)
            return has_words(&w, "DETACH", "CONCURRENTLY");
        if (strcmp(b, "TYPE") == 0)
            return server_version > 0 && server_version < 120000 && has_words(&w, "ADD", "VALUE");
        return 0;
    }
    if (find_concurrently(text, len, &at, kind))
        return 1;
    /* REINDEX SCHEMA, DATABASE and SYSTEM refuse a transaction block even
     * without CONCURRENTLY. */
    return strcmp(a, "REINDEX") == 0 &&
           (strcmp(kind, "SCHEMA") == 0 || strcmp(kind, "DATABASE") == 0 ||
            strcmp(kind, "SYSTEM") == 0);
}
