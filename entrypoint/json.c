#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jbuf_init(struct jbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

void jbuf_free(struct jbuf *b)
{
    free(b->data);
    jbuf_init(b);
}

static int jbuf_reserve(struct jbuf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = 1;
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

void jbuf_append(struct jbuf *b, const char *text, size_t len)
{
    if (jbuf_reserve(b, len) != 0)
        return;
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void jbuf_puts(struct jbuf *b, const char *text)
{
    jbuf_append(b, text, strlen(text));
}

void jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || jbuf_reserve(b, (size_t)need) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned int cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void jbuf_string_n(struct jbuf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    jbuf_append(b, "\"", 1);
    while (i < len) {
        unsigned char c = s[i];
        size_t n = utf8_sequence_length(s + i, len - i);
        if (n == 0) {
            jbuf_append(b, "\xEF\xBF\xBD", 3); /* U+FFFD for each invalid byte */
            i++;
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            jbuf_append(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                              : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named)
                jbuf_puts(b, named);
            else
                jbuf_printf(b, "\\u%04x", c);
            i++;
        } else {
            jbuf_append(b, text + i, n);
            i += n;
        }
    }
    jbuf_append(b, "\"", 1);
}

void jbuf_string(struct jbuf *b, const char *text)
{
    if (!text)
        jbuf_puts(b, "null");
    else
        jbuf_string_n(b, text, strlen(text));
}
