/* lint_statement(): each rule of the statement checks read with PostgreSQL's
 * own parser (libpg_query), the safe forms that must not be flagged, tables
 * created earlier in the run, the "-- bandage:allow" acknowledgement, and a
 * statement the parser cannot read ("not checked", never an error).
 * The same rules against a real server: tests/integration/test_checks.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/lint.h"

static struct lint_state g_state;
static struct lint_findings g_found;

static int teardown(void **state)
{
    (void)state;
    lint_state_free(&g_state);
    lint_findings_free(&g_found);
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    lint_done();
    return 0;
}

/* Checks sql (with comments before it) and returns how many findings it added. */
static size_t check_with(const char *sql, const char *comments)
{
    size_t before = g_found.count;
    assert_int_equal(lint_statement(&g_state, sql, comments, strlen(comments), &g_found), 0);
    return g_found.count - before;
}

/* A static build without the parser (STATIC_PG_QUERY=0: -DBANDAGE_NO_PG_QUERY)
 * checks nothing: the tests are skipped. With it, check-arm64-unit runs them
 * with PostgreSQL 17's grammar, `make unit` with Debian's 15. */
static void need_parser(void)
{
    if (!lint_available())
        skip();
}

static size_t check(const char *sql)
{
    return check_with(sql, "");
}

static const struct lint_finding *last(void)
{
    assert_true(g_found.count > 0);
    return &g_found.items[g_found.count - 1];
}

/* sql gives exactly one finding, of rule on table (NULL: none named). */
static void expect_one(const char *sql, const char *rule, enum lint_class cls, const char *table)
{
    size_t n = check(sql);
    if (n != 1)
        fail_msg("%s: %zu findings, expected 1 (%s)", sql, n, rule);
    assert_string_equal(last()->rule, rule);
    assert_int_equal(last()->cls, cls);
    assert_string_equal(last()->table, table ? table : "");
    assert_false(last()->acknowledged);
}

static void expect_none(const char *sql)
{
    size_t n = check(sql);
    if (n != 0)
        fail_msg("%s: %zu findings (first %s), expected none", sql, n, last()->rule);
}

/* ---- breaking ---------------------------------------------------------- */

static void test_drop_table_and_view(void **state)
{
    (void)state;
    need_parser();
    expect_one("DROP TABLE \"Post\"", "drop-table", LINT_BREAKING, "Post");
    expect_one("DROP TABLE IF EXISTS app.\"Tag\" CASCADE", "drop-table", LINT_BREAKING, "Tag");
    assert_string_equal(last()->schema, "app");
    assert_int_equal(check("DROP TABLE a, b"), 2);
    expect_one("DROP VIEW v", "drop-view", LINT_BREAKING, "v");
    expect_one("DROP MATERIALIZED VIEW mv", "drop-view", LINT_BREAKING, "mv");
}

static void test_drop_and_rename_column(void **state)
{
    (void)state;
    need_parser();
    expect_one("ALTER TABLE \"User\" DROP COLUMN \"name\"", "drop-column", LINT_BREAKING, "User");
    assert_string_equal(last()->detail, "column name");
    expect_one("ALTER TABLE \"User\" RENAME COLUMN \"name\" TO \"fullName\"", "rename-column",
               LINT_BREAKING, "User");
    assert_string_equal(last()->detail, "column name to fullName");
    expect_one("ALTER TABLE \"User\" RENAME TO \"Account\"", "rename-table", LINT_BREAKING,
               "User");
}

static void test_type_changes(void **state)
{
    (void)state;
    need_parser();
    assert_int_equal(check("ALTER TABLE t ALTER COLUMN n TYPE bigint"), 2);
    assert_string_equal(g_found.items[0].rule, "change-column-type");
    assert_int_equal(g_found.items[0].cls, LINT_BREAKING);
    assert_string_equal(g_found.items[1].rule, "column-type-rewrite");
    assert_int_equal(g_found.items[1].cls, LINT_LONG_LOCK);
    assert_string_equal(g_found.items[1].detail, "column n to int8");
    /* to text or varchar: no rewrite from text or varchar, still a change */
    expect_one("ALTER TABLE t ALTER COLUMN s SET DATA TYPE varchar(300)", "change-column-type",
               LINT_BREAKING, "t");
}

static void test_not_null(void **state)
{
    (void)state;
    need_parser();
    expect_one("ALTER TABLE t ALTER COLUMN a SET NOT NULL", "set-not-null", LINT_BREAKING, "t");
    expect_one("ALTER TABLE t ADD COLUMN b TEXT NOT NULL", "add-not-null-column", LINT_BREAKING,
               "t");
    expect_none("ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT ''");
    expect_none("ALTER TABLE t ADD COLUMN b TEXT");
    expect_none("ALTER TABLE t ADD COLUMN b SERIAL NOT NULL");
    expect_none("ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS IDENTITY");
    expect_none("ALTER TABLE t ALTER COLUMN a DROP NOT NULL");
}

static void test_types_and_functions(void **state)
{
    (void)state;
    need_parser();
    expect_one("DROP TYPE \"Role_old\"", "drop-type", LINT_BREAKING, NULL);
    assert_string_equal(last()->detail, "Role_old");
    expect_one("ALTER TYPE \"Role\" RENAME VALUE 'EDITOR' TO 'WRITER'", "rename-enum-value",
               LINT_BREAKING, NULL);
    expect_none("ALTER TYPE \"Role\" ADD VALUE 'EDITOR'");
    expect_one("DROP FUNCTION app.f(int)", "drop-function", LINT_BREAKING, NULL);
    assert_string_equal(last()->detail, "app.f");
    expect_one("DROP PROCEDURE p", "drop-function", LINT_BREAKING, NULL);
}

/* Each list the checks walk: an ALTER TABLE's commands, a DROP's objects and
 * their qualified names, a VACUUM's options and tables. */
static void test_lists(void **state)
{
    (void)state;
    need_parser();
    assert_int_equal(check("ALTER TABLE app.\"Post\" DROP COLUMN a, ADD COLUMN c int, "
                           "ALTER COLUMN b SET NOT NULL"), 2);
    assert_string_equal(g_found.items[0].rule, "drop-column");
    assert_string_equal(g_found.items[1].rule, "set-not-null");
    assert_string_equal(last()->schema, "app");
    assert_string_equal(last()->table, "Post");
    assert_string_equal(last()->detail, "column b");
    expect_one("DROP TABLE db.app.t", "drop-table", LINT_BREAKING, "t");
    assert_string_equal(last()->schema, "app");
    expect_one("ALTER TYPE app.\"Role\" RENAME VALUE 'A' TO 'B'", "rename-enum-value",
               LINT_BREAKING, NULL);
    assert_string_equal(last()->detail, "Role: 'A' to 'B'");
    expect_one("VACUUM FULL", "vacuum-full", LINT_LONG_LOCK, NULL);
    assert_string_equal(last()->detail, "every table of the database");
    assert_int_equal(check("VACUUM (VERBOSE, FULL) a, b"), 2);
    assert_string_equal(last()->table, "b");
}

/* ---- long locks --------------------------------------------------------- */

static void test_indexes(void **state)
{
    (void)state;
    need_parser();
    expect_one("CREATE INDEX \"Post_authorId_idx\" ON \"Post\"(\"authorId\")",
               "index-not-concurrent", LINT_LONG_LOCK, "Post");
    expect_one("CREATE UNIQUE INDEX u ON s.t (a)", "index-not-concurrent", LINT_LONG_LOCK, "t");
    assert_string_equal(last()->detail, "unique u");
    expect_none("CREATE INDEX CONCURRENTLY i ON t (a)");
    expect_none("DROP INDEX i");
}

static void test_constraints(void **state)
{
    (void)state;
    need_parser();
    expect_one("ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY "
               "(\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT",
               "add-foreign-key", LINT_LONG_LOCK, "Post");
    assert_string_equal(last()->detail, "Post_authorId_fkey references User");
    expect_none("ALTER TABLE p ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u(id) NOT VALID");
    expect_one("ALTER TABLE p ADD CONSTRAINT c CHECK (a > 0)", "add-check", LINT_LONG_LOCK, "p");
    expect_none("ALTER TABLE p ADD CONSTRAINT c CHECK (a > 0) NOT VALID");
    expect_none("ALTER TABLE p VALIDATE CONSTRAINT c");
    expect_one("ALTER TABLE p ADD CONSTRAINT k UNIQUE (a)", "add-unique-constraint",
               LINT_LONG_LOCK, "p");
    expect_none("ALTER TABLE p ADD CONSTRAINT k UNIQUE USING INDEX k_idx");
}

static void test_rewrites(void **state)
{
    (void)state;
    need_parser();
    expect_one("VACUUM FULL \"Post\"", "vacuum-full", LINT_LONG_LOCK, "Post");
    expect_one("VACUUM (FULL, ANALYZE) \"Post\"", "vacuum-full", LINT_LONG_LOCK, "Post");
    expect_none("VACUUM \"Post\"");
    expect_none("ANALYZE \"Post\"");
    expect_one("CLUSTER \"Post\" USING \"Post_pkey\"", "cluster", LINT_LONG_LOCK, "Post");
}

/* ---- the run's own tables ----------------------------------------------- */

static void test_tables_created_in_the_run_are_new(void **state)
{
    (void)state;
    need_parser();
    expect_none("CREATE TABLE \"Tag\" (id SERIAL NOT NULL, name TEXT NOT NULL)");
    expect_none("CREATE UNIQUE INDEX \"Tag_name_key\" ON \"Tag\"(\"name\")");
    expect_none("ALTER TABLE \"Tag\" ADD CONSTRAINT f FOREIGN KEY (id) REFERENCES u(id)");
    expect_none("ALTER TABLE public.\"Tag\" ADD COLUMN x int NOT NULL");
    expect_none("DROP TABLE \"Tag\"");
    /* a table of the same name in another schema than the one created is not new
     * (an unqualified name matches either: the check does not know search_path) */
    expect_none("CREATE TABLE app.\"Item\" (id int)");
    expect_one("CREATE INDEX i ON other.\"Item\" (a)", "index-not-concurrent", LINT_LONG_LOCK,
               "Item");
    expect_none("CREATE INDEX i ON \"Item\" (a)");
    /* case matters: "tag" is another table */
    expect_one("CREATE INDEX i ON \"tag\" (a)", "index-not-concurrent", LINT_LONG_LOCK, "tag");
    expect_none("CREATE TABLE n AS SELECT 1 AS a");
    expect_none("CREATE INDEX j ON n (a)");
}

/* ---- acknowledgement ---------------------------------------------------- */

static void test_allow_comment_acknowledges_the_named_rule_only(void **state)
{
    (void)state;
    need_parser();
    assert_int_equal(check_with("ALTER TABLE u DROP COLUMN a", "-- bandage:allow drop-column\n"), 1);
    assert_true(last()->acknowledged);
    assert_int_equal(check_with("ALTER TABLE u DROP COLUMN a, ALTER COLUMN b TYPE int",
                                "-- AlterTable\n-- bandage:allow change-column-type, drop-column\n"),
                     3);
    assert_true(g_found.items[1].acknowledged);  /* drop-column */
    assert_true(g_found.items[2].acknowledged);  /* change-column-type */
    assert_false(g_found.items[3].acknowledged); /* column-type-rewrite: not named */
    assert_int_equal(check_with("DROP TABLE x", "-- bandage:allow drop-column\n"), 1);
    assert_false(last()->acknowledged);
    assert_int_equal(check_with("DROP TABLE x", "/* bandage:allow all */"), 1);
    assert_true(last()->acknowledged);
    /* a prefix of a rule's name is not the rule */
    assert_int_equal(check_with("DROP TABLE x", "-- bandage:allow drop\n"), 1);
    assert_false(last()->acknowledged);
    /* the names end at the end of the line */
    assert_int_equal(check_with("DROP TABLE x", "-- bandage:allow drop-column\n-- drop-table\n"),
                     1);
    assert_false(last()->acknowledged);
}

static void test_lint_acknowledges(void **state)
{
    (void)state;
    const char *c = "-- bandage:allow\tset-not-null,drop-table";
    assert_true(lint_acknowledges(c, strlen(c), "drop-table"));
    assert_true(lint_acknowledges(c, strlen(c), "set-not-null"));
    assert_false(lint_acknowledges(c, strlen(c), "drop-column"));
    /* only len bytes are read */
    assert_false(lint_acknowledges(c, strlen("-- bandage:allow\tset-not-null"), "drop-table"));
    assert_false(lint_acknowledges("", 0, "drop-table"));
    assert_false(lint_acknowledges("-- bandage:allowdrop-table", 26, "drop-table"));
    /* exactly len bytes, no NUL after them: ASan catches a read past the end */
    const char *t = "-- bandage:allow drop-table";
    size_t n = strlen(t);
    char *exact = malloc(n);
    assert_non_null(exact);
    memcpy(exact, t, n);
    assert_true(lint_acknowledges(exact, n, "drop-table"));
    assert_false(lint_acknowledges(exact, n - 1, "drop-table"));
    assert_false(lint_acknowledges(exact, strlen("-- bandage:allow"), "drop-table"));
    free(exact);
}

/* ---- what the parser cannot read ----------------------------------------- */

static void test_unparsable_is_not_checked(void **state)
{
    (void)state;
    need_parser();
    /* Virtual generated columns came with PostgreSQL 18: the 15 grammar
     * (Debian's libpg-query-dev) and the 17 one (the static binaries) both
     * stop at VIRTUAL */
    assert_int_equal(check_with("ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a + 1) VIRTUAL",
                                "-- bandage:allow all\n"), 1);
    assert_string_equal(last()->rule, "not-checked");
    assert_int_equal(last()->cls, LINT_NOT_CHECKED);
    assert_false(last()->acknowledged);
    assert_non_null(strstr(last()->detail, "syntax error"));
    /* names the grammar at hand: PostgreSQL 15's (make) or 17's (static) */
    assert_non_null(strstr(last()->detail, "'s grammar does not read it: syntax error"));
    assert_string_equal(lint_rule_consequence("not-checked"), "left to the server");
    expect_none("-- only a comment");
    expect_none("/* only a comment */");
    expect_none("");
    expect_none("SELECT 1");
    expect_none("INSERT INTO t VALUES (1)");
}

/* `head`, n times open, mid, n times close, then `tail`. */
static char *nested(const char *head, int n, const char *open, const char *mid,
                    const char *close, const char *tail)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *sql = malloc(strlen(head) + (size_t)n * (lo + lc) + strlen(mid) + strlen(tail) + 1);
    char *p = sql;
    assert_non_null(sql);
    p = stpcpy(p, head);
    for (int i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    p = stpcpy(p, mid);
    for (int i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    stpcpy(p, tail);
    return sql;
}

static void expect_not_checked(const char *sql, const char *why)
{
    assert_int_equal(check(sql), 1);
    assert_string_equal(last()->rule, "not-checked");
    if (!strstr(last()->detail, why))
        fail_msg("detail \"%s\" lacks \"%s\"", last()->detail, why);
}

static void test_deep_trees(void **state)
{
    (void)state;
    need_parser();
    /* parentheses alone add no node: a shallow tree, read */
    char *sql = nested("SELECT ", 3000, "(", "1", ")", "");
    expect_none(sql);
    free(sql);
    /* 500 nested additions, about 1000 levels of JSON: read and checked */
    sql = nested("ALTER TABLE p ADD CONSTRAINT c CHECK (a > ", 500, "1+(", "1", ")", ")");
    expect_one(sql, "add-check", LINT_LONG_LOCK, "p");
    free(sql);
    /* 3000, about 6000 levels: deeper than jansson reads (2048): not checked,
     * never an error */
    sql = nested("ALTER TABLE p ADD CONSTRAINT c CHECK (a > ", 3000, "1+(", "1", ")", ")");
    expect_not_checked(sql, "2048 levels");
    free(sql);
    /* 20000: deeper than the grammar's own stack */
    sql = nested("SELECT ", 20000, "(", "1", ")", "");
    expect_not_checked(sql, "");
    free(sql);
}

/* A seed's INSERT of 100,000 rows (2 MB) took 310 MB as a jansson tree (108
 * MB with the hand-written reader): statements that only change rows match
 * no rule, so they are not parsed at all. A tree too deep to read, or bytes
 * that are not UTF-8, would make them "not checked" if they were. */
static void test_statements_that_only_change_rows_are_not_parsed(void **state)
{
    (void)state;
    need_parser();
    char *sql = nested("INSERT INTO t VALUES (", 3000, "1+(", "1", ")", ")");
    expect_none(sql);
    free(sql);
    expect_none("UPDATE t SET a = 'a\xff'");
    expect_none("delete from t where a = 'a\xff'");
    expect_none("/* seed */ INSERT INTO t VALUES ('a\xff')");
    expect_none("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = 'a\xff'");
    expect_none("COPY t FROM '/tmp/\xff'");
    /* what starts otherwise is still read: */
    expect_not_checked("SELECT 'a\xff'", "not valid UTF-8");
}

static void test_not_utf8_is_not_checked(void **state)
{
    (void)state;
    need_parser();
    /* libpg_query copies the byte into its JSON, which jansson refuses */
    expect_not_checked("ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'a\xff'", "not valid UTF-8");
    expect_not_checked("DROP TABLE \"a\xff\"", "not valid UTF-8");
}

static void test_names_with_escapes(void **state)
{
    (void)state;
    need_parser();
    /* the JSON reader decodes escapes: a quote and a non-ASCII name */
    expect_one("DROP TABLE \"we\"\"ird\"", "drop-table", LINT_BREAKING, "we\"ird");
    expect_one("DROP TABLE \"Bücher\"", "drop-table", LINT_BREAKING, "Bücher");
    expect_one("DROP TABLE \"a\\b\"", "drop-table", LINT_BREAKING, "a\\b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_drop_table_and_view, teardown),
        cmocka_unit_test_teardown(test_drop_and_rename_column, teardown),
        cmocka_unit_test_teardown(test_type_changes, teardown),
        cmocka_unit_test_teardown(test_not_null, teardown),
        cmocka_unit_test_teardown(test_types_and_functions, teardown),
        cmocka_unit_test_teardown(test_lists, teardown),
        cmocka_unit_test_teardown(test_indexes, teardown),
        cmocka_unit_test_teardown(test_constraints, teardown),
        cmocka_unit_test_teardown(test_rewrites, teardown),
        cmocka_unit_test_teardown(test_tables_created_in_the_run_are_new, teardown),
        cmocka_unit_test_teardown(test_allow_comment_acknowledges_the_named_rule_only, teardown),
        cmocka_unit_test_teardown(test_lint_acknowledges, teardown),
        cmocka_unit_test_teardown(test_unparsable_is_not_checked, teardown),
        cmocka_unit_test_teardown(test_deep_trees, teardown),
        cmocka_unit_test_teardown(test_not_utf8_is_not_checked, teardown),
        cmocka_unit_test_teardown(test_statements_that_only_change_rows_are_not_parsed, teardown),
        cmocka_unit_test_teardown(test_names_with_escapes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
