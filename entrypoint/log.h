/* Leveled logs to stderr: "bandage: ..." text lines or JSON objects, one per
 * line, each written with a single write() so processes do not interleave. */
#ifndef BANDAGE_LOG_H
#define BANDAGE_LOG_H

#include <stddef.h>

#include "config.h"

void log_init(int format, int level);
int log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* An info line carrying a JSON object: text mode shows the summary alone;
 * JSON mode adds the object under "report". */
void log_event(const char *summary, const char *json_object);

/* An info line whose figures are also fields of its own: text mode shows the
 * summary alone; JSON mode puts json_fields ("\"done\":4,\"total\":9")
 * beside "msg" in the line's object. */
void log_fields(const char *summary, const char *json_fields);

/* "https://hooks.example.com/…": scheme, host and port only; a path may carry
 * a token (Slack, Discord), userinfo and query may carry secrets. */
void redact_url(const char *url, char *out, size_t outlen);

#endif
