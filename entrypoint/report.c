#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void report_init(struct deploy_report *r)
{
    memset(r, 0, sizeof *r);
    r->outcome = OUTCOME_OK;
}

void report_add_error(struct deploy_report *r, const char *phase, const char *code,
                      const char *fmt, ...)
{
    if (r->n_errors < REPORT_MAX_ERRORS) {
        struct report_error *e = &r->errors[r->n_errors];
        va_list ap;
        snprintf(e->phase, sizeof e->phase, "%s", phase);
        snprintf(e->code, sizeof e->code, "%s", code ? code : "");
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
        /* libpq messages end in newlines; a report line should not. */
        size_t n = strlen(e->message);
        while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
            e->message[--n] = '\0';
    }
    r->n_errors++;
}

void report_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}
