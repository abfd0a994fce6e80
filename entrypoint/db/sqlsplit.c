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

struct scanner {
    const char *text, *end, *p;
    char *err;
    size_t errlen;
    size_t counted;   /* lines are counted up to here, */
    int line;         /* and this is the line there */
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

int sql_split(const char *text, size_t len, struct sql_statement **out, size_t *count,
              char *err, size_t errlen)
{
    struct scanner s = {text, text + len, text, err, errlen, 0, 1};
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
        if (*s.p == ';') {
            if (add_statement(&s, start, (size_t)(s.p - text), out, count, &cap) != 0)
                goto failed;
            start = (size_t)(s.p - text) + 1;
        }
        s.p++;
    }
    if (add_statement(&s, start, len, out, count, &cap) == 0)
        return 0;
failed:
    free(*out);
    *out = NULL;
    *count = 0;
    return -1;
}
