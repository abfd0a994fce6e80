/* A growable buffer that writes JSON: strings escaped per RFC 8259, invalid
 * UTF-8 replaced by U+FFFD, so any bytes (server messages, hostnames) are safe. */
#ifndef BANDAGE_JSON_H
#define BANDAGE_JSON_H

#include <stddef.h>

struct jbuf {
    char *data;   /* NUL-terminated while !failed */
    size_t len;
    size_t cap;
    int failed;   /* an allocation failed; data is unusable */
};

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_append(struct jbuf *b, const char *text, size_t len);
void jbuf_puts(struct jbuf *b, const char *text);
void jbuf_printf(struct jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends "text" as a quoted, escaped JSON string; NULL becomes null. */
void jbuf_string(struct jbuf *b, const char *text);
void jbuf_string_n(struct jbuf *b, const char *text, size_t len);

#endif
