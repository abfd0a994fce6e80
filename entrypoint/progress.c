#include "progress.h"

#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "json.h"
#include "log.h"

#define PROGRESS_MIN_INTERVAL_MS 10

static struct progress *current;
static long last_line_ms = -1; /* any phase's: lines stay an interval apart */

long progress_interval_ms(void)
{
    static long interval = -1;
    if (interval < 0) {
        const char *env = getenv("BANDAGE_PROGRESS_INTERVAL_MS");
        char *end = NULL;
        long v = env && *env ? strtol(env, &end, 10) : 0;
        interval = end && *end == '\0' && v >= PROGRESS_MIN_INTERVAL_MS ? v : PROGRESS_INTERVAL_MS;
    }
    return interval;
}

void progress_begin(struct progress *p, const char *phase, long total, long start_ms,
                    progress_describe_fn describe, void *ctx)
{
    long now = start_ms > 0 ? start_ms : monotonic_ms();
    *p = (struct progress){.phase = phase, .total = total, .start_ms = now, .step_ms = now,
                           .last_ms = now, .describe = describe, .ctx = ctx, .outer = current};
    current = p;
}

void progress_end(struct progress *p)
{
    if (current == p)
        current = p->outer;
}

long progress_eta_ms(long done, long total, long elapsed_ms)
{
    if (done <= 0 || total < done)
        return -1;
    return (long)((double)elapsed_ms * (double)(total - done) / (double)done);
}

static long due_at(const struct progress *p)
{
    long interval = progress_interval_ms(), at = p->last_ms + interval;
    if (last_line_ms >= 0 && last_line_ms + interval > at)
        at = last_line_ms + interval;
    return at;
}

/* "12.3 s", for the text line. */
static void seconds(long ms, char *out, size_t len)
{
    snprintf(out, len, "%ld.%ld s", ms / 1000, ms % 1000 / 100);
}

/* A figure, or null when not known (negative). */
static void put_number(struct jbuf *b, long v)
{
    if (v >= 0)
        jbuf_printf(b, "%ld", v);
    else
        jbuf_puts(b, "null");
}

static void write_line(const struct progress *p, long now)
{
    char detail[400], text[600], elapsed[32], left[48] = "";
    struct jbuf fields;
    long ms = now - p->start_ms, eta = progress_eta_ms(p->done, p->total, ms);
    p->describe(p, now, detail, sizeof detail);
    seconds(ms, elapsed, sizeof elapsed);
    if (eta >= 0) {
        char eta_text[32];
        seconds(eta, eta_text, sizeof eta_text);
        snprintf(left, sizeof left, ", about %s left", eta_text);
    }
    snprintf(text, sizeof text, "%s: %s; %s so far%s", p->phase, detail, elapsed, left);
    jbuf_init(&fields);
    jbuf_puts(&fields, "\"phase\":");
    jbuf_string(&fields, p->phase);
    jbuf_printf(&fields, ",\"done\":%ld,\"total\":", p->done);
    put_number(&fields, p->total);
    jbuf_printf(&fields, ",\"elapsed_ms\":%ld,\"eta_ms\":", ms);
    put_number(&fields, eta);
    log_fields(text, fields.failed ? NULL : fields.data);
    jbuf_free(&fields);
}

long progress_long_step_ms(const struct progress *p, long now)
{
    long ran = now - p->step_ms;
    return ran >= progress_interval_ms() ? ran : -1;
}

int progress_tick(struct progress *p, long now)
{
    if (!p->describe || now < due_at(p)) /* not begun (zeroed): nothing to say */
        return 0;
    p->last_ms = last_line_ms = now;
    write_line(p, now);
    return 1;
}

void progress_step(struct progress *p, long done)
{
    long now = monotonic_ms();
    p->done = done;
    p->step_ms = now;
    progress_tick(p, now);
}

long progress_due_in(long now)
{
    if (!current)
        return -1;
    long in = due_at(current) - now;
    return in > 0 ? in : 0;
}

void progress_tick_current(long now)
{
    if (current)
        progress_tick(current, now);
}
