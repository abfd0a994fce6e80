/* schema_file_outside(): which statements of a schema file act on a schema
 * outside --schemas, judged by their leading words. A batched reset refuses
 * those (it could not undo them); everything a Prisma or pg_dump schema does
 * inside its own schema must pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/schemafile.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inside_statements_pass),
        cmocka_unit_test(test_outside_statements_are_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
