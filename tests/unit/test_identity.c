/* --confirm-database's NAME or NAME:IDENTIFIER, and what confirms a
 * database (entrypoint/db/identity.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "assert_text.h"

#include "db/identity.h"

static void test_name_alone(void **state)
{
    (void)state;
    struct confirmation c;
    identity_parse_confirmation("railway", &c);
    assert_string_equal(c.name, "railway");
    assert_null(c.system_id);
}

static void test_name_and_identifier(void **state)
{
    (void)state;
    struct confirmation c;
    identity_parse_confirmation("railway:7715446616722135859", &c);
    assert_string_equal(c.name, "railway");
    assert_string_equal(c.system_id, "7715446616722135859");
}

/* A ':' not followed by digits only belongs to the name (names may hold one). */
static void test_colon_in_a_name(void **state)
{
    (void)state;
    struct confirmation c;
    static const char *const names[] = {"a:b", "app:", "app:12x", "app:123456789012345678901",
                                        ":"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        identity_parse_confirmation(names[i], &c);
        assert_string_equal(c.name, names[i]);
        assert_null(c.system_id);
    }
    identity_parse_confirmation("a:b:42", &c);
    assert_string_equal(c.name, "a:b");
    assert_string_equal(c.system_id, "42");
}

static void test_what_confirms(void **state)
{
    (void)state;
    struct db_identity id = {"railway", "42"}, unreadable = {"railway", ""};
    struct confirmation c;
    char why[300];
    identity_parse_confirmation("railway", &c);
    assert_true(identity_confirms(&c, &id, why, sizeof why));
    assert_true(identity_confirms(&c, &unreadable, why, sizeof why));
    identity_parse_confirmation("railway:42", &c);
    assert_true(identity_confirms(&c, &id, why, sizeof why));
    identity_parse_confirmation("railway:43", &c);
    assert_false(identity_confirms(&c, &id, why, sizeof why));
    assert_contains(why, "system identifier 43");
    identity_parse_confirmation("railway:42", &c);
    assert_false(identity_confirms(&c, &unreadable, why, sizeof why));
    assert_contains(why, "may not read");
    identity_parse_confirmation("staging:42", &c);
    assert_false(identity_confirms(&c, &id, why, sizeof why));
    assert_contains(why, "'staging'");
}

static void test_shared_names(void **state)
{
    (void)state;
    assert_true(identity_name_is_shared("railway"));
    assert_true(identity_name_is_shared("postgres"));
    assert_false(identity_name_is_shared("shop_production"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_alone),
        cmocka_unit_test(test_name_and_identifier),
        cmocka_unit_test(test_colon_in_a_name),
        cmocka_unit_test(test_what_confirms),
        cmocka_unit_test(test_shared_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
