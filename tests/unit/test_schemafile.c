/* schema_file_outside(): which statements of a schema file act on a schema
 * outside --schemas, judged by their leading words. A batched reset refuses
 * those (it could not undo them); everything a Prisma or pg_dump schema does
 * inside its own schema must pass. And the files a reset refuses to read:
 * one that starts with a byte-order mark. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "assert_text.h"
#include "tempdir.h"

#include "db/migrations_dir.h"
#include "db/schemafile.h"
#include "exitcodes.h"
#include "report/report.h"

/* The schema that `sql` (one statement) acts on outside `schemas`, or "". */
static const char *outside(const char *sql, const char *schemas)
{
    static char name[64];
    char err[128];
    struct schema_file f = {.path = "t.sql", .sql = strdup(sql), .len = strlen(sql)};
    assert_non_null(f.sql);
    assert_int_equal(sql_split(f.sql, f.len, &f.stmts, &f.n_stmts, err, sizeof err), 0);
    assert_int_equal(f.n_stmts, 1);
    name[0] = '\0';
    if (!schema_file_outside(&f, 0, schemas, name, sizeof name))
        name[0] = '\0';
    schema_file_free(&f);
    return name;
}

static void test_inside_statements_pass(void **state)
{
    (void)state;
    static const char *const inside[] = {
        "CREATE TABLE \"User\" (id serial PRIMARY KEY, email text)",
        "CREATE TABLE public.\"User\" (id int REFERENCES audit.x(id))",
        "CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\")",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY public.t (a)",
        "ALTER TABLE \"Post\" ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES audit.u(id)",
        "ALTER SEQUENCE s OWNED BY t.n",
        "ALTER TABLE ONLY public.t ALTER COLUMN c SET DEFAULT nextval('public.s')",
        "COMMENT ON COLUMN \"User\".email IS 'the address'",
        "COMMENT ON COLUMN public.\"User\".email IS 'x'",
        "CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN')",
        "ALTER TYPE \"Role\" ADD VALUE 'OWNER'",
        "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA public",
        "CREATE VIEW v AS SELECT a.id FROM audit.a",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 FROM audit.x $$",
        "CREATE TRIGGER t BEFORE INSERT ON \"User\" FOR EACH ROW EXECUTE FUNCTION audit.f()",
        "INSERT INTO \"User\" (email) SELECT email FROM audit.old",
        "SELECT pg_catalog.set_config('search_path', '', false)",
        "UPDATE \"User\" SET n = audit.f(1)",
        "GRANT SELECT ON TABLE public.t TO app",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app",
        "CREATE SCHEMA IF NOT EXISTS public",
        "DELETE FROM public.t WHERE id IN (SELECT id FROM audit.x)",
        NULL};
    for (int i = 0; inside[i]; i++)
        if (outside(inside[i], "public,app")[0])
            fail_msg("'%s' taken for a statement outside public,app (%s)", inside[i],
                     outside(inside[i], "public,app"));
}

static void test_outside_statements_are_found(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"CREATE SCHEMA extra", "extra"},
        {"CREATE SCHEMA IF NOT EXISTS \"Extra\"", "Extra"},
        {"CREATE TABLE audit.x (id int)", "audit"},
        {"CREATE TABLE IF NOT EXISTS \"audit\".\"x\" (id int)", "audit"},
        {"INSERT INTO \"audit\".\"log\" VALUES (1)", "audit"},
        {"UPDATE ONLY audit.log SET a = 1", "audit"},
        {"DELETE FROM audit.log WHERE true", "audit"},
        {"TRUNCATE TABLE audit.log", "audit"},
        {"ALTER TABLE audit.log ADD COLUMN b int", "audit"},
        {"ALTER TABLE public.t SET SCHEMA audit", "audit"},
        {"CREATE INDEX i ON audit.log (a)", "audit"},
        {"CREATE INDEX ON ONLY audit.log (a)", "audit"},
        {"CREATE TRIGGER t AFTER INSERT ON audit.log FOR EACH ROW EXECUTE FUNCTION f()", "audit"},
        {"CREATE EXTENSION pg_trgm WITH SCHEMA extra", "extra"},
        {"COMMENT ON TABLE audit.log IS 'x'", "audit"},
        {"COMMENT ON COLUMN audit.log.a IS 'x'", "audit"},
        {"GRANT SELECT ON audit.log TO app", "audit"},
        {"GRANT USAGE ON SCHEMA audit TO app", "audit"},
        {"GRANT SELECT ON ALL TABLES IN SCHEMA audit TO app", "audit"},
        {"CREATE OR REPLACE FUNCTION audit.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "audit"},
        {"DROP TABLE IF EXISTS a, audit.b", "audit"},
        {"CREATE TABLE bandage.x (id int)", "bandage"},
        {"create table AUDIT.x (id int)", "audit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = outside(cases[i][0], "public,app");
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("'%s': expected schema '%s', got '%s'", cases[i][0], cases[i][1], got);
    }
}


/* ---- a byte-order mark -------------------------------------------------------- */

#define UTF8_BOM "\xef\xbb\xbf"

/* Writes len bytes of data to g_dir/name (parent directories made); its path. */
static const char *write_file(const char *name, const char *data, size_t len)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755); /* the migration's directory; EEXIST is fine */
    *slash = '/';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* PostgreSQL reads a byte-order mark as part of the first word ("syntax
 * error at or near "CREATE""): the file is refused before anything runs,
 * exit 64, naming the file and the fix. */
static void test_schema_file_with_a_byte_order_mark_is_refused(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        size_t len;
        const char *says;
    } cases[] = {
        {UTF8_BOM "CREATE TABLE t (a int);\n", 27, "UTF-8 byte-order mark"},
        {UTF8_BOM "-- CreateTable\nCREATE TABLE t (a int);\n", 42, "UTF-8 byte-order mark"},
        {"\xff\xfe" "C\0R\0E\0", 8, "UTF-16"},
        {"\xfe\xff" "\0C\0R\0E", 8, "UTF-16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct deploy_report report = {0};
        struct schema_file f;
        const char *path = write_file("schema.sql", cases[i].data, cases[i].len);
        assert_int_equal(schema_file_load(&f, path, 0, &report), EXIT_USAGE);
        schema_file_free(&f);
        assert_int_equal(report.n_errors, 1);
        assert_contains(report.errors[0].message, path);
        assert_contains(report.errors[0].message, cases[i].says);
        assert_contains(report.errors[0].message, "save it");
    }
}

static void test_byte_order_mark_elsewhere_is_not_refused(void **state)
{
    (void)state;
    struct deploy_report report = {0};
    struct schema_file f;
    /* in a literal (a mark in the middle is a zero-width no-break space) */
    const char sql[] = "INSERT INTO t VALUES ('" UTF8_BOM "');\n";
    assert_int_equal(schema_file_load(&f, write_file("mid.sql", sql, sizeof sql - 1), 0, &report),
                     0);
    assert_int_equal(f.n_stmts, 1);
    schema_file_free(&f);
    assert_null(sql_byte_order_mark(UTF8_BOM, 2)); /* too short to be one */
    assert_null(sql_byte_order_mark("\xef\xbb", 2));
    assert_null(sql_byte_order_mark("CREATE", 6));
    assert_non_null(sql_byte_order_mark(UTF8_BOM, 3));
}

/* A migration is judged when it is about to run (an applied one keeps its
 * bytes: they are what its recorded checksum is of). */
static void test_migration_with_a_byte_order_mark(void **state)
{
    (void)state;
    static const char lock[] = "provider = \"postgresql\"\n";
    static const char bom[] = UTF8_BOM "-- CreateTable\nCREATE TABLE a (id int);\n";
    static const char plain[] = "CREATE TABLE b (id int);\n";
    char err[512];
    struct migration_dir d;
    struct schema_file f;
    struct deploy_report report = {0};

    write_file("m/migration_lock.toml", lock, sizeof lock - 1);
    write_file("m/20240101000000_bom/migration.sql", bom, sizeof bom - 1);
    write_file("m/20240102000000_plain/migration.sql", plain, sizeof plain - 1);
    snprintf(err, sizeof err, "%s/m", g_dir);
    /* reading the directory is not refusing it: it may be applied already */
    assert_int_equal(migration_dir_read(err, &d, err, sizeof err), 0);
    assert_int_equal(d.count, 2);

    assert_int_equal(migration_script_check(&d, &d.items[1], err, sizeof err), 0);
    assert_int_equal(migration_script_check(&d, &d.items[0], err, sizeof err), -1);
    assert_contains(err, "--migrations: ");
    assert_contains(err, "/m/20240101000000_bom/migration.sql");
    assert_contains(err, "UTF-8 byte-order mark");

    /* a reset runs every migration: refused before anything runs */
    assert_int_equal(schema_file_from_migrations(&f, &d, 150000, &report), EXIT_USAGE);
    schema_file_free(&f);
    assert_int_equal(report.n_errors, 1);
    assert_contains(report.errors[0].message, "20240101000000_bom/migration.sql");
    migration_dir_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inside_statements_pass),
        cmocka_unit_test(test_outside_statements_are_found),
        tempdir_test(test_schema_file_with_a_byte_order_mark_is_refused),
        tempdir_test(test_byte_order_mark_elsewhere_is_not_refused),
        tempdir_test(test_migration_with_a_byte_order_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
