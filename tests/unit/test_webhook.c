/* webhook_post() frees what it allocated on every path, also when one of
 * libcurl's allocations fails (the header list in particular): libcurl's
 * allocator is replaced by one that counts live blocks and fails the k-th
 * allocation, for each k in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_leak_when_an_allocation_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
