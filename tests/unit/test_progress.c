/* progress: when a line is due (never before an interval has passed, since
 * the phase began or since any phase's last line) and the estimate of what
 * is left from the pace so far. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static void describe(const struct progress *p, long now, char *out, size_t len)
{
    (void)now;
    snprintf(out, len, "%ld of %ld", p->done, p->total);
}

static void test_eta_from_the_pace(void **state)
{
    (void)state;
    assert_int_equal(progress_eta_ms(0, 100, 5000), -1);   /* nothing done yet */
    assert_int_equal(progress_eta_ms(10, -1, 5000), -1);   /* no total */
    assert_int_equal(progress_eta_ms(25, 100, 5000), 15000);
    assert_int_equal(progress_eta_ms(100, 100, 5000), 0);
    assert_int_equal(progress_eta_ms(101, 100, 5000), -1); /* past the total: no guess */
}

static void test_pacing(void **state)
{
    (void)state;
    struct progress p;
    unsetenv("BANDAGE_PROGRESS_INTERVAL_MS"); /* read once, here */
    long iv = progress_interval_ms(), t0 = 1000000;
    assert_int_equal(iv, PROGRESS_INTERVAL_MS);
    progress_begin(&p, "test", 10, t0, describe, NULL);
    /* none for work that ends sooner than the interval */
    assert_int_equal(progress_tick(&p, t0 + iv - 1), 0);
    assert_int_equal(progress_due_in(t0), iv);
    assert_int_equal(progress_tick(&p, t0 + iv), 1);
    assert_int_equal(progress_tick(&p, t0 + iv + 1), 0);
    assert_int_equal(progress_tick(&p, t0 + 2 * iv - 1), 0);
    assert_int_equal(progress_tick(&p, t0 + 2 * iv), 1);

    /* a phase inside it: its own first line waits an interval, and the
     * lines of both stay an interval apart */
    struct progress inner;
    progress_begin(&inner, "inner", -1, t0 + 2 * iv, describe, NULL);
    assert_int_equal(progress_due_in(t0 + 2 * iv), iv);
    assert_int_equal(progress_tick(&p, t0 + 3 * iv - 1), 0);
    assert_int_equal(progress_tick(&inner, t0 + 3 * iv), 1);
    assert_int_equal(progress_tick(&p, t0 + 3 * iv + 1), 0);
    progress_end(&inner);
    assert_int_equal(progress_due_in(t0 + 3 * iv), iv);
    progress_end(&p);
    assert_int_equal(progress_due_in(t0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eta_from_the_pace),
        cmocka_unit_test(test_pacing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
