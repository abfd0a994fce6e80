/* POSTing a report to --webhook-url with libcurl, from a forked process so
 * that neither the app's start nor PID 1's memory depends on it. */
#ifndef BANDAGE_WEBHOOK_H
#define BANDAGE_WEBHOOK_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* POSTs body, retrying connection errors, 429 and 5xx with backoff, all
 * within --webhook-timeout. Returns 0 when a 2xx answer came. */
int webhook_post(const struct config *cfg, const char *body, size_t len);

/* The CURLOPT_TIMEOUT_MS of a request starting at now_ms: what is left
 * before deadline_ms, at least 1; -1 when nothing is, and then no request may
 * start. Never 0: libcurl reads a timeout of 0 as no limit at all. */
long webhook_request_timeout_ms(long deadline_ms, long now_ms);

/* Forks a process that runs webhook_post() and exits; returns its pid, or
 * -1 (logged) when it could not fork. */
pid_t webhook_post_async(const struct config *cfg, const char *body, size_t len);

#endif
