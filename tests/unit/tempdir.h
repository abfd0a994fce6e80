/* A temporary directory for each test of the cmocka unit tests that read
 * files (include after <cmocka.h>): g_dir, made by tempdir_make and removed
 * with all it holds by tempdir_remove, as a test's setup and teardown. */
#ifndef BANDAGE_TEST_TEMPDIR_H
#define BANDAGE_TEST_TEMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char g_dir[64];

static int tempdir_make(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/bandage-unit-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int tempdir_remove(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* A test of the table that runs in its own g_dir. */
#define tempdir_test(f) cmocka_unit_test_setup_teardown(f, tempdir_make, tempdir_remove)

#endif
