/* sqltree: libpg_query's parse tree read by jansson, and the sqlnode_
 * accessors the statement checks look it up with (NULL-safe: a missing
 * node, string or list reads as none). The rules over it: test_lint.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/sqltree.h"

static int teardown_group(void **state)
{
    (void)state;
    sqltree_done();
    return 0;
}

static void need_parser(void)
{
    if (!sqltree_available())
        skip();
}

static void test_statement_node(void **state)
{
    (void)state;
    need_parser();
    json_t *tree;
    char why[200] = "";
    assert_int_equal(sqltree_parse("ALTER TABLE s.t DROP COLUMN c", &tree, why, sizeof why),
                     SQLTREE_OK);
    const json_t *node = sqltree_statement(tree);
    assert_string_equal(sqlnode_kind(node), "AlterTableStmt");
    const json_t *stmt = sqlnode_inner(node);
    assert_string_equal(sqlnode_str(sqlnode_get(stmt, "relation"), "relname"), "t");
    assert_string_equal(sqlnode_str(sqlnode_path(stmt, "relation", NULL), "schemaname"), "s");
    const json_t *cmd = sqlnode_get(sqlnode_last(sqlnode_get(stmt, "cmds")), "AlterTableCmd");
    assert_string_equal(sqlnode_str(cmd, "subtype"), "AT_DropColumn");
    assert_true(sqlnode_true(sqlnode_get(stmt, "relation"), "inh"));
    assert_false(sqlnode_true(cmd, "missing_ok")); /* false: left out */
    json_decref(tree);
}

static void test_no_statement(void **state)
{
    (void)state;
    need_parser();
    json_t *tree;
    char why[200] = "";
    assert_int_equal(sqltree_parse("-- only a comment", &tree, why, sizeof why), SQLTREE_OK);
    assert_null(sqltree_statement(tree));
    json_decref(tree);
}

static void test_unparsable(void **state)
{
    (void)state;
    json_t *tree = (json_t *)1;
    char why[200] = "";
    assert_int_equal(sqltree_parse("ALTER TABLE", &tree, why, sizeof why), SQLTREE_UNPARSABLE);
    assert_null(tree);
    assert_true(why[0] != '\0');
    assert_int_equal(sqltree_parse("SELECT '\xc3('", &tree, why, sizeof why),
                     SQLTREE_UNPARSABLE);
    assert_null(tree);
    if (sqltree_available())
        assert_string_equal(why, "it is not valid UTF-8");
}

/* Every accessor reads NULL, a non-object and a missing member as none. */
static void test_accessors_are_null_safe(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"s\": \"x\", \"n\": 1, \"b\": true, \"f\": false, \"a\": [], "
                             "\"k\": {\"Kind\": {\"v\": 2}}}", 0, NULL);
    assert_non_null(doc);
    assert_null(sqlnode_get(NULL, "s"));
    assert_null(sqlnode_get(sqlnode_get(doc, "a"), "s"));
    assert_null(sqlnode_path(doc, "k", "Other", "v", NULL));
    assert_int_equal(json_integer_value(sqlnode_path(doc, "k", "Kind", "v", NULL)), 2);
    assert_string_equal(sqlnode_str(doc, "s"), "x");
    assert_string_equal(sqlnode_str(doc, "n"), "");
    assert_string_equal(sqlnode_str(NULL, "s"), "");
    assert_true(sqlnode_true(doc, "b"));
    assert_false(sqlnode_true(doc, "f"));
    assert_false(sqlnode_true(doc, "s"));
    assert_false(sqlnode_true(NULL, "b"));
    assert_string_equal(sqlnode_kind(sqlnode_get(doc, "k")), "Kind");
    assert_string_equal(sqlnode_kind(sqlnode_get(doc, "a")), "");
    assert_string_equal(sqlnode_kind(NULL), "");
    assert_null(sqlnode_inner(sqlnode_get(doc, "s")));
    assert_null(sqlnode_inner(NULL));
    assert_null(sqlnode_last(sqlnode_get(doc, "a")));
    assert_null(sqlnode_last(doc));
    assert_null(sqlnode_last(NULL));
    assert_null(sqltree_statement(NULL));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statement_node),
        cmocka_unit_test(test_no_statement),
        cmocka_unit_test(test_unparsable),
        cmocka_unit_test(test_accessors_are_null_safe),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
