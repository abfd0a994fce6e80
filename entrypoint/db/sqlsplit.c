#include "sqlsplit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sql_line_of(const char *text, size_t offset)
{
    int line = 1;
    for (size_t i = 0; i < offset; i++)
        line += text[i] == '\n';
    return line;
}

static int is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Length of a dollar-quote opener "$tag$" at p, or 0 if p does not start one. */
static size_t dollar_tag_length(const char *p, const char *end)
{
    const char *q = p + 1;
    if (q < end && (isdigit((unsigned char)*q)))
        return 0; /* $1 is a parameter */
    while (q < end && (isalnum((unsigned char)*q) || *q == '_' || (unsigned char)*q >= 0x80))
        q++;
    return (q < end && *q == '$') ? (size_t)(q - p + 1) : 0;
}

/* What the first words of a statement are, as far as psql cares: whether it
 * is CREATE [OR REPLACE] FUNCTION|PROCEDURE, the only place for a body. */
enum lead_word { LEAD_OTHER, LEAD_CREATE, LEAD_OR, LEAD_REPLACE, LEAD_ROUTINE };

struct scanner {
    const char *text, *end, *p;
    char *err;
    size_t errlen;
    size_t counted;   /* lines are counted up to here, */
    int line;         /* and this is the line there */
    /* Things that make a ';' end nothing (psqlscan.l's paren_depth and
     * begin_depth), with where the outermost one opened, for errors: */
    int paren_depth;  /* '(' not yet closed */
    size_t paren_at;
    int body_depth;   /* BEGIN ATOMIC, and CASE inside it, not yet ENDed */
    size_t body_at;
    int words;        /* words of the current statement so far */
    enum lead_word lead[4]; /* its first four */
};

static int fail(struct scanner *s, size_t at, const char *what)
{
    snprintf(s->err, s->errlen, "line %d: %s", sql_line_of(s->text, at), what);
    return -1;
}

/* Skips a quoted run starting at s->p (which points at the opening quote). */
static int skip_quoted(struct scanner *s, char quote, int backslash_escapes)
{
    size_t start = (size_t)(s->p - s->text);
    for (s->p++; s->p < s->end; s->p++) {
        if (backslash_escapes && *s->p == '\\' && s->p + 1 < s->end) {
            s->p++;
        } else if (*s->p == quote) {
            if (s->p + 1 < s->end && s->p[1] == quote) {
                s->p++; /* doubled quote */
                continue;
            }
            s->p++;
            return 0;
        }
    }
    return fail(s, start, quote == '"' ? "unterminated quoted identifier" : "unterminated string");
}

static int skip_block_comment(struct scanner *s)
{
    size_t start = (size_t)(s->p - s->text);
    int depth = 0;
    while (s->p < s->end) {
        if (s->p + 1 < s->end && s->p[0] == '/' && s->p[1] == '*') {
            depth++;
            s->p += 2;
        } else if (s->p + 1 < s->end && s->p[0] == '*' && s->p[1] == '/') {
            s->p += 2;
            if (--depth == 0)
                return 0;
        } else {
            s->p++;
        }
    }
    return fail(s, start, "unterminated /* comment");
}

static int skip_dollar_quoted(struct scanner *s, size_t tag_len)
{
    size_t start = (size_t)(s->p - s->text);
    const char *tag = s->p;
    for (s->p += tag_len; s->p + tag_len <= s->end; s->p++) {
        if (memcmp(s->p, tag, tag_len) == 0) {
            s->p += tag_len;
            return 0;
        }
    }
    return fail(s, start, "unterminated dollar-quoted string");
}

/* Advances over one token that may hide a ';'; returns 1 if it consumed one. */
static int skip_token(struct scanner *s, int *rc)
{
    const char *p = s->p;
    int after_ident = p > s->text && is_ident_char(p[-1]);
    size_t tag_len;

    *rc = 0;
    if (p[0] == '-' && p + 1 < s->end && p[1] == '-') {
        while (s->p < s->end && *s->p != '\n')
            s->p++;
    } else if (p[0] == '/' && p + 1 < s->end && p[1] == '*') {
        *rc = skip_block_comment(s);
    } else if (p[0] == '\'') {
        int e_string = p > s->text && (p[-1] == 'E' || p[-1] == 'e') &&
                       !(p - 1 > s->text && is_ident_char(p[-2]));
        *rc = skip_quoted(s, '\'', e_string);
    } else if (p[0] == '"') {
        *rc = skip_quoted(s, '"', 0);
    } else if (p[0] == '$' && !after_ident && (tag_len = dollar_tag_length(p, s->end)) > 0) {
        *rc = skip_dollar_quoted(s, tag_len);
    } else {
        return 0;
    }
    return 1;
}

/* Moves start past blanks and comments; returns the first byte of content. */
static size_t content_start(const char *text, size_t start, size_t stop)
{
    size_t i = start;
    while (i < stop) {
        if (isspace((unsigned char)text[i])) {
            i++;
        } else if (text[i] == '-' && i + 1 < stop && text[i + 1] == '-') {
            while (i < stop && text[i] != '\n')
                i++;
        } else if (text[i] == '/' && i + 1 < stop && text[i + 1] == '*') {
            int depth = 0;
            do {
                if (text[i] == '/' && i + 1 < stop && text[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (text[i] == '*' && i + 1 < stop && text[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            } while (i < stop && depth > 0);
        } else {
            break;
        }
    }
    return i;
}

static int add_statement(struct scanner *s, size_t start, size_t stop,
                         struct sql_statement **out, size_t *count, size_t *cap)
{
    size_t first = content_start(s->text, start, stop);
    if (first >= stop)
        return 0; /* nothing but blanks and comments */
    if (s->text[first] == '\\')
        return fail(s, first, "psql meta-commands (\\connect, \\i, COPY data) are not supported; "
                              "use plain SQL statements");
    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct sql_statement *grown = realloc(*out, ncap * sizeof **out);
        if (!grown)
            return fail(s, first, "out of memory");
        *out = grown;
        *cap = ncap;
    }
    /* Statements come in order: count lines onwards from the last one, not
     * from the start of the file each time. */
    for (; s->counted < first; s->counted++)
        s->line += s->text[s->counted] == '\n';
    (*out)[(*count)++] = (struct sql_statement){first, stop - first, s->line};
    return 0;
}

/* Is the word p[0..n) the upper-case keyword kw, in any case? ASCII only, as
 * in the server's keyword lookup: no locale's toupper (Turkish i). */
static int word_is(const char *p, size_t n, const char *kw)
{
    size_t i = 0;
    for (; i < n && kw[i]; i++) {
        char c = p[i] >= 'a' && p[i] <= 'z' ? (char)(p[i] - 'a' + 'A') : p[i];
        if (c != kw[i])
            return 0;
    }
    return i == n && kw[i] == '\0';
}

static enum lead_word lead_word_of(const char *p, size_t n)
{
    if (word_is(p, n, "CREATE"))
        return LEAD_CREATE;
    if (word_is(p, n, "OR"))
        return LEAD_OR;
    if (word_is(p, n, "REPLACE"))
        return LEAD_REPLACE;
    if (word_is(p, n, "FUNCTION") || word_is(p, n, "PROCEDURE"))
        return LEAD_ROUTINE;
    return LEAD_OTHER;
}

/* CREATE [OR REPLACE] FUNCTION|PROCEDURE: may have a BEGIN ATOMIC body. */
static int creates_routine(const struct scanner *s)
{
    const enum lead_word *w = s->lead;
    return s->words >= 2 && w[0] == LEAD_CREATE &&
           (w[1] == LEAD_ROUTINE ||
            (s->words >= 4 && w[1] == LEAD_OR && w[2] == LEAD_REPLACE && w[3] == LEAD_ROUTINE));
}

/* Is the next word after offset `from` (past blanks and comments) ATOMIC? */
static int atomic_follows(const struct scanner *s, size_t from)
{
    size_t len = (size_t)(s->end - s->text);
    size_t at = content_start(s->text, from, len);
    return len - at >= 6 && word_is(s->text + at, 6, "ATOMIC") &&
           (at + 6 == len || !is_ident_char(s->text[at + 6]));
}

/* A word of a CREATE FUNCTION/PROCEDURE statement, outside parentheses: the
 * body's BEGIN ATOMIC opens, and its END closes, a block in which ';' ends
 * nothing; CASE ... END nests inside it (a CASE elsewhere needs no count).
 * psqlscan.l counts every BEGIN here; only BEGIN ATOMIC opens a body, so a
 * function named begin, or a column labelled begin in a body, opens none. */
static void count_body_word(struct scanner *s, const char *w, size_t n)
{
    if (word_is(w, n, "BEGIN") && atomic_follows(s, (size_t)(w - s->text) + n)) {
        if (s->body_depth++ == 0)
            s->body_at = (size_t)(w - s->text);
    } else if (word_is(w, n, "CASE") && s->body_depth > 0) {
        s->body_depth++;
    } else if (word_is(w, n, "END") && s->body_depth > 0) {
        s->body_depth--;
    }
}

/* E'..', B'..', X'..', N'..' and U&'..' start with a letter that is no word. */
static int is_literal_prefix(const char *w, size_t n, const char *end)
{
    const char *after = w + n;
    if (n != 1 || after >= end)
        return 0;
    if (*after == '\'')
        return strchr("bBeEnNxX", *w) != NULL;
    return (*w == 'u' || *w == 'U') && *after == '&';
}

/* Steps over the word starting at s->p (a keyword or an unquoted name),
 * noting what psql notes of it. */
static void take_word(struct scanner *s)
{
    const char *w = s->p;
    while (s->p < s->end && is_ident_char(*s->p))
        s->p++;
    size_t n = (size_t)(s->p - w);
    if (is_literal_prefix(w, n, s->end))
        return;
    if (s->words < 4)
        s->lead[s->words] = lead_word_of(w, n);
    s->words++;
    if (s->paren_depth == 0 && creates_routine(s))
        count_body_word(s, w, n);
}

static int starts_word(const struct scanner *s)
{
    unsigned char c = (unsigned char)*s->p;
    int after_ident = s->p > s->text && is_ident_char(s->p[-1]);
    return !after_ident && (isalpha(c) || c == '_' || c >= 0x80);
}

/* Notes a '(' or ')' at s->p. */
static void count_paren(struct scanner *s)
{
    if (*s->p == '(') {
        if (s->paren_depth++ == 0)
            s->paren_at = (size_t)(s->p - s->text);
    } else if (*s->p == ')' && s->paren_depth > 0) {
        s->paren_depth--; /* a stray ')' closes nothing, as in psql */
    }
}

/* A ';' ends a statement outside parentheses and BEGIN ATOMIC bodies. */
static int ends_statement(struct scanner *s)
{
    if (*s->p != ';' || s->paren_depth > 0 || s->body_depth > 0)
        return 0;
    s->words = 0;
    return 1;
}

/* What psql would glue onto the rest of the file: say where it opens. */
static int check_closed(struct scanner *s)
{
    if (s->paren_depth > 0)
        return fail(s, s->paren_at, "unclosed '(': every ';' after it is inside the "
                                    "parentheses");
    if (s->body_depth > 0)
        return fail(s, s->body_at, "BEGIN ATOMIC without its END: every ';' after it is "
                                   "inside the function body");
    return 0;
}

int sql_split(const char *text, size_t len, struct sql_statement **out, size_t *count,
              char *err, size_t errlen)
{
    struct scanner s = {.text = text, .end = text + len, .p = text, .err = err,
                        .errlen = errlen, .line = 1};
    size_t cap = 0, start = 0;
    int rc;

    *out = NULL;
    *count = 0;
    while (s.p < s.end) {
        if (skip_token(&s, &rc)) {
            if (rc != 0)
                goto failed;
            continue;
        }
        if (starts_word(&s)) {
            take_word(&s);
            continue;
        }
        count_paren(&s);
        if (ends_statement(&s)) {
            if (add_statement(&s, start, (size_t)(s.p - text), out, count, &cap) != 0)
                goto failed;
            start = (size_t)(s.p - text) + 1;
        }
        s.p++;
    }
    if (check_closed(&s) == 0 && add_statement(&s, start, len, out, count, &cap) == 0)
        return 0;
failed:
    free(*out);
    *out = NULL;
    *count = 0;
    return -1;
}
