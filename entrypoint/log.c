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

/* Appends text with every control character shown escaped (\n, \r, \t,
 * \xNN for the other C0 bytes and DEL, \u00NN for the C1 controls
 * U+0080-U+009F in UTF-8, CSI among them), so that a value (a deployment id,
 * a server's multi-line error) can neither start a fake log line nor drive
 * the terminal. Everything else, UTF-8 included, is copied as it is. */
static void put_escaped_text(struct jbuf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t plain = 0; /* start of the run of bytes copied as they are */
    for (size_t i = 0; i < len; i++) {
        int c1 = s[i] == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F;
        if (s[i] >= 0x20 && s[i] != 0x7F && !c1)
            continue;
        jbuf_append(b, text + plain, i - plain);
        if (c1)
            jbuf_printf(b, "\\u%04x", s[++i]);
        else if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')
            jbuf_puts(b, s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : "\\t");
        else
            jbuf_printf(b, "\\x%02x", s[i]);
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

static void write_line(int level, const char *msg, const char *json_object)
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
    write_line(level, msg, NULL);
}

void log_event(const char *summary, const char *json_object)
{
    if (log_enabled(LOG_INFO))
        write_line(LOG_INFO, summary, json_object);
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
