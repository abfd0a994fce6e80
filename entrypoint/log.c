#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "json.h"
#include "report/report.h"

static int log_format = LOG_FORMAT_TEXT;
static int log_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(int format, int level)
{
    log_format = format;
    log_level = level;
}

int log_enabled(int level) { return level <= log_level; }

static void write_all(const char *line, size_t len)
{
    /* stderr is unbuffered; one write keeps concurrent writers' lines whole. */
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

/* The code point of the 2- or 3-byte UTF-8 sequence at s (n bytes left) and
 * its length in *seq, or 0: ASCII, a 4-byte sequence (no escaped character
 * needs one), a continuation byte, a sequence cut short. */
static unsigned utf8_code_point(const unsigned char *s, size_t n, size_t *seq)
{
    if (s[0] >= 0xC2 && s[0] <= 0xDF && n >= 2 && (s[1] & 0xC0) == 0x80) {
        *seq = 2;
        return (unsigned)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if ((s[0] & 0xF0) == 0xE0 && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        *seq = 3;
        return (unsigned)(s[0] & 0x0F) << 12 | (unsigned)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    return 0;
}

/* Valid UTF-8 that is still shown escaped: the C1 controls (CSI among them:
 * it drives a terminal), and the characters that print as nothing or move
 * the text around them, so that a line shows what it says: a byte-order
 * mark (a file's, which PostgreSQL quotes back in "syntax error at or near"),
 * zero-width spaces, joiners and direction marks, the line and paragraph
 * separators, the bidirectional embeddings, overrides and isolates, word
 * joiners and invisible operators, the soft hyphen, the interlinear
 * annotation characters. */
static int is_escaped_code_point(unsigned cp)
{
    static const unsigned ranges[][2] = {
        {0x80, 0x9F},     {0xAD, 0xAD},     {0x61C, 0x61C},   {0x180E, 0x180E},
        {0x200B, 0x200F}, {0x2028, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F},
        {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return 1;
    return 0;
}

/* Appends text with every control character shown escaped (\n, \r, \t,
 * \xNN for the other C0 bytes and DEL, \uNNNN for the C1 controls and the
 * invisible characters above), so that a value (a deployment id, a server's
 * multi-line error) can neither start a fake log line, nor drive the
 * terminal, nor hide in plain sight. Everything else, other UTF-8 and
 * invalid bytes included, is copied as it is. */
static void put_escaped_text(struct jbuf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t plain = 0; /* start of the run of bytes copied as they are */
    for (size_t i = 0; i < len; i++) {
        size_t seq = 1;
        unsigned cp = s[i] >= 0x80 ? utf8_code_point(s + i, len - i, &seq) : 0;
        int escaped = cp ? is_escaped_code_point(cp) : s[i] < 0x20 || s[i] == 0x7F;
        if (!escaped) {
            i += seq - 1;
            continue;
        }
        jbuf_append(b, text + plain, i - plain);
        if (cp)
            jbuf_printf(b, "\\u%04x", cp);
        else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
            jbuf_puts(b, s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : "\\t");
        else
            jbuf_printf(b, "\\x%02x", s[i]);
        i += seq - 1;
        plain = i + 1;
    }
    jbuf_append(b, text + plain, len - plain);
}

/* One event is one line: a message's trailing line breaks (libpq's and
 * libcurl's messages end with one) are dropped, any others escaped. */
static size_t without_trailing_newlines(const char *msg)
{
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
        len--;
    return len;
}

/* json_object goes under "report"; fields ("\"a\":1,\"b\":2") beside "msg". */
static void write_line(int level, const char *msg, const char *json_object, const char *fields)
{
    struct jbuf line;
    size_t msg_len = without_trailing_newlines(msg);
    jbuf_init(&line);
    if (log_format == LOG_FORMAT_JSON) {
        char ts[40];
        report_timestamp(ts, sizeof ts);
        jbuf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%ld,\"msg\":", ts,
                    level_names[level], (long)getpid());
        jbuf_string_n(&line, msg, msg_len);
        if (fields) {
            jbuf_puts(&line, ",");
            jbuf_puts(&line, fields);
        }
        if (json_object) {
            jbuf_puts(&line, ",\"report\":");
            jbuf_puts(&line, json_object);
        }
        jbuf_puts(&line, "}\n");
    } else {
        jbuf_puts(&line, "bandage: ");
        if (level != LOG_INFO) {
            jbuf_puts(&line, level_names[level]);
            jbuf_puts(&line, ": ");
        }
        put_escaped_text(&line, msg, msg_len);
        jbuf_puts(&line, "\n");
    }
    if (!line.failed)
        write_all(line.data, line.len);
    jbuf_free(&line);
}

void log_msg(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    write_line(level, msg, NULL, NULL);
}

void log_event(const char *summary, const char *json_object)
{
    if (log_enabled(LOG_INFO))
        write_line(LOG_INFO, summary, json_object, NULL);
}

void log_fields(const char *summary, const char *json_fields)
{
    if (log_enabled(LOG_INFO))
        write_line(LOG_INFO, summary, NULL, json_fields);
}

void redact_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;

    snprintf(out, outlen, "(unparsable URL)");
    if (!u)
        return;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        int has_path = path && strcmp(path, "/") != 0 && path[0];
        snprintf(out, outlen, "%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
                 has_path ? "/…" : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}
