/* webhook_post() frees what it allocated on every path, also when one of
 * libcurl's allocations fails (the header list in particular): libcurl's
 * allocator is replaced by one that counts live blocks and fails the k-th
 * allocation, for each k in turn. And it gives no request a timeout of 0,
 * which libcurl reads as no limit at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "config.h"
#include "log.h"
#include "report/webhook.h"

static long live;      /* blocks handed out and not yet freed */
static long calls;     /* allocations since the counter was reset */
static long fail_at = -1;

static int should_fail(void) { return calls++ == fail_at; }

static void *count_malloc(size_t n)
{
    void *p = should_fail() ? NULL : malloc(n);
    live += p != NULL;
    return p;
}

static void *count_calloc(size_t k, size_t n)
{
    void *p = should_fail() ? NULL : calloc(k, n);
    live += p != NULL;
    return p;
}

static char *count_strdup(const char *s)
{
    char *p = should_fail() ? NULL : strdup(s);
    live += p != NULL;
    return p;
}

static void *count_realloc(void *old, size_t n)
{
    if (old == NULL)
        return count_malloc(n);
    return should_fail() ? NULL : realloc(old, n);
}

static void count_free(void *p)
{
    live -= p != NULL;
    free(p);
}

static void test_no_leak_when_an_allocation_fails(void **state)
{
    (void)state;
    /* webhook_post's own curl_global_init then only counts a reference, and
     * its curl_global_cleanup does not free what the allocator counted. */
    assert_int_equal(curl_global_init_mem(CURL_GLOBAL_DEFAULT, count_malloc, count_free,
                                          count_realloc, count_strdup, count_calloc),
                     CURLE_OK);
    log_init(LOG_FORMAT_TEXT, LOG_ERROR); /* "not delivered" is a warning: keep quiet */
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.webhook_url = "http://127.0.0.1:9/hook"; /* discard port: refused, or the 1 ms ends it */
    cfg.webhook_timeout_ms = 1;

    calls = 0;
    long before = live;
    webhook_post(&cfg, "{}", 2);
    long total = calls;
    assert_int_equal(live, before);
    assert_true(total > 4); /* the header list alone makes four */
    for (fail_at = 0; fail_at < total; fail_at++) {
        calls = 0;
        before = live;
        webhook_post(&cfg, "{}", 2);
        if (live != before)
            fail_msg("%ld block(s) leaked when allocation %ld of %ld failed", live - before,
                     fail_at, total);
    }
    fail_at = -1;
    curl_global_cleanup();
}

/* What is left of --webhook-timeout, as each request's CURLOPT_TIMEOUT_MS:
 * never 0, libcurl's "no limit" (a receiver that never answers would hold
 * the sender forever), nor below; -1, start no request, once none is left. */
static void test_request_timeout_is_never_unlimited(void **state)
{
    (void)state;
    const long deadline = 5000;
    assert_int_equal(webhook_request_timeout_ms(deadline, 0), 5000);
    assert_int_equal(webhook_request_timeout_ms(deadline, deadline - 1), 1);
    assert_int_equal(webhook_request_timeout_ms(deadline, deadline), -1);
    assert_int_equal(webhook_request_timeout_ms(deadline, deadline + 1), -1);
    assert_int_equal(webhook_request_timeout_ms(deadline, deadline + 86400000L), -1);
    for (long now = deadline - 3; now <= deadline + 3; now++) {
        long timeout = webhook_request_timeout_ms(deadline, now);
        if (timeout == 0 || timeout < -1)
            fail_msg("%ld ms before the deadline: timeout %ld", deadline - now, timeout);
    }
}

/* A listening socket on 127.0.0.1 that nothing answers; its port in *port. */
static int listen_local(int *port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Runs webhook_post(cfg) with stderr in a temporary file; returns what it
 * wrote (caller frees) and the result in *rc. */
static char *post_capturing_stderr(const struct config *cfg, int *rc)
{
    char path[] = "/tmp/test_webhook_XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    fflush(stderr);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    *rc = webhook_post(cfg, "{}", 2);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    char *out = calloc(1, 4096);
    assert_non_null(out);
    assert_true(pread(fd, out, 4095, 0) >= 0);
    close(fd);
    return out;
}

/* No time left when the sender gets to the request: it is not started (no
 * connection reaches the receiver), the post fails, and the warning says
 * once that it timed out. */
static void test_spent_budget_starts_no_request(void **state)
{
    (void)state;
    int port, rc;
    int listener = listen_local(&port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.webhook_url = url;
    cfg.webhook_timeout_ms = 0;
    log_init(LOG_FORMAT_TEXT, LOG_WARN);

    char *out = post_capturing_stderr(&cfg, &rc);
    assert_int_equal(rc, -1);
    assert_int_equal(accept(listener, NULL, NULL), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_non_null(strstr(out, "not delivered after 0 attempts in "));
    assert_non_null(strstr(out, " ms: timed out\n"));
    assert_null(strstr(strstr(out, "timed out") + 1, "timed out"));
    free(out);
    close(listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_leak_when_an_allocation_fails),
        cmocka_unit_test(test_request_timeout_is_never_unlimited),
        cmocka_unit_test(test_spent_budget_starts_no_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
