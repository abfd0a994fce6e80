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

static void write_line(int level, const char *msg, const char *json_object)
{
    struct jbuf line;
    jbuf_init(&line);
    if (log_format == LOG_FORMAT_JSON) {
        char ts[40];
        report_timestamp(ts, sizeof ts);
        jbuf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%ld,\"msg\":", ts,
                    level_names[level], (long)getpid());
        jbuf_string(&line, msg);
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
        jbuf_puts(&line, msg);
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
