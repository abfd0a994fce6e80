/* Reading a Prisma 8 migrations directory (prisma8_dir.c), no database:
 * which directories are Prisma 8's, what is refused with which exit code,
 * the newest contract, and Prisma's paths through the from/to graph. The
 * packages are written here, hashed with canonjson.c (whose output
 * test_canonjson.c checks against Node and a package Prisma planned). */
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

#include "db/canonjson.h"
#include "db/prisma8_dir.h"
#include "exitcodes.h"

static char g_err[2048];

#define OPS "[{\"id\":\"table.T\",\"label\":\"Create table T\",\"operationClass\":\"additive\"," \
            "\"precheck\":[],\"execute\":[{\"description\":\"d\",\"sql\":\"CREATE TABLE t ()\"}]," \
            "\"postcheck\":[{\"description\":\"p\",\"sql\":\"SELECT $1::text IS NOT NULL\"," \
            "\"params\":[\"x\"]}]}]"

static void put(const char *rel, const char *text)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    for (char *p = strchr(path + strlen(g_dir) + 1, '/'); p; p = strchr(p + 1, '/')) {
        snprintf(dir, sizeof dir, "%.*s", (int)(p - path), path);
        mkdir(dir, 0755);
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void snapshot(const char *hash)
{
    char rel[256], text[512];
    snprintf(rel, sizeof rel, "snapshots/%s/contract.json", hash);
    snprintf(text, sizeof text, "{\"profileHash\":\"profile-%s\",\"storage\":{\"storageHash\":"
             "\"%s\",\"namespaces\":{\"__unbound__\":{},\"public\":{}}}}", hash, hash);
    put(rel, text);
}

/* A package whose migrationHash matches, as Prisma plans it. */
static void package(const char *name, const char *from, const char *to, const char *created,
                    const char *ops)
{
    char meta[600], rel[300], h[2][CANON_SHA256_HEX + 1], pair[200], hash[CANON_SHA256_HEX + 1];
    char from_json[80];
    snprintf(from_json, sizeof from_json, from ? "\"%s\"" : "null", from);
    snprintf(meta, sizeof meta, "{\"from\":%s,\"to\":\"%s\",\"providedInvariants\":[],"
             "\"createdAt\":\"%s\"}", from_json, to, created);
    const char *texts[] = {meta, ops};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_loads(texts[i], CANON_JSON_DECODE, NULL);
        assert_non_null(v);
        assert_int_equal(canon_json_sha256(v, h[i]), 0);
        json_decref(v);
    }
    snprintf(pair, sizeof pair, "[\"%s\",\"%s\"]", h[0], h[1]);
    assert_int_equal(canon_sha256_hex(pair, strlen(pair), hash), 0);
    snprintf(meta + strlen(meta) - 1, sizeof meta - strlen(meta) + 1,
             ",\"migrationHash\":\"%s\"}", hash);
    snprintf(rel, sizeof rel, "app/%s/migration.json", name);
    put(rel, meta);
    snprintf(rel, sizeof rel, "app/%s/ops.json", name);
    put(rel, ops);
    snapshot(to);
}

static int read_dir(struct prisma8_dir *d)
{
    g_err[0] = '\0';
    return prisma8_dir_read(g_dir, d, g_err, sizeof g_err);
}

static void chain(void)
{
    package("1_init", NULL, "h1", "2026-01-01T00:00:00.000Z", OPS);
    package("2_two", "h1", "h2", "2026-01-02T00:00:00.000Z", OPS);
    package("3_three", "h2", "h3", "2026-01-03T00:00:00.000Z", OPS);
}

static void test_detects_prisma8_directories_only(void **state)
{
    (void)state;
    assert_int_equal(prisma8_dir_detect(g_dir), 0);
    put("migration_lock.toml", "provider = \"postgresql\"\n");
    put("20240101000000_init/migration.sql", "SELECT 1;\n");
    assert_int_equal(prisma8_dir_detect(g_dir), 0);
    put("app/refs/head.json", "{}"); /* refs is no package */
    assert_int_equal(prisma8_dir_detect(g_dir), 0);
    package("1_init", NULL, "h1", "2026-01-01T00:00:00.000Z", OPS);
    assert_int_equal(prisma8_dir_detect(g_dir), 1);
}

static void test_reads_a_chain_and_its_paths(void **state)
{
    (void)state;
    struct prisma8_dir d;
    size_t path[8], len = 9;
    chain();
    assert_int_equal(read_dir(&d), 0);
    assert_int_equal(d.count, 3);
    assert_string_equal(d.head, "h3");
    assert_string_equal(d.head_contract->profile_hash, "profile-h3");
    assert_string_equal(d.head_contract->schema, "public"); /* __unbound__ left out */
    assert_string_equal(d.items[0].from, P8_EMPTY);
    assert_int_equal(d.items[0].n_ops, 1);
    assert_string_equal(d.items[0].ops[0].post[0].params[0], "x");
    assert_int_equal(prisma8_path(&d, P8_EMPTY, "h3", path, &len), 1);
    assert_int_equal(len, 3);
    assert_int_equal(path[0] * 100 + path[1] * 10 + path[2], 12);
    assert_int_equal(prisma8_path(&d, "h1", "h3", path, &len), 1);
    assert_int_equal(len, 2);
    assert_int_equal(prisma8_path(&d, "h3", "h3", path, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(prisma8_path(&d, "h3", "h1", path, &len), 0);
    assert_true(prisma8_is_node(&d, P8_EMPTY));
    assert_false(prisma8_is_node(&d, "h9"));
    /* the ledger records an operation as it is in ops.json, or as skipped */
    assert_non_null(strstr(d.items[0].ops[0].skip_json,
                           "\"meta\":{\"runner\":{\"reason\":\"postcheck_pre_satisfied\","
                           "\"skipped\":true}}"));
    assert_non_null(strstr(d.items[0].ops[0].skip_json, "\"execute\":[],"));
    prisma8_dir_free(&d);
}

/* Two migrations out of one contract: Prisma takes the one created first. */
static void test_ties_are_broken_by_created_at(void **state)
{
    (void)state;
    struct prisma8_dir d;
    size_t path[8], len;
    package("1_init", NULL, "h1", "2026-01-01T00:00:00.000Z", OPS);
    package("2_late", "h1", "h2", "2026-01-05T00:00:00.000Z", OPS);
    package("3_early", "h1", "h2", "2026-01-02T00:00:00.000Z", OPS);
    assert_int_equal(read_dir(&d), 0);
    assert_int_equal(prisma8_path(&d, "h1", "h2", path, &len), 1);
    assert_int_equal(len, 1);
    assert_string_equal(d.items[path[0]].name, "3_early");
    prisma8_dir_free(&d);
}

/* A rollback migration last: every contract is left by one; the newest is
 * where the newest migration goes. */
static void test_a_rollback_last_makes_its_target_the_newest(void **state)
{
    (void)state;
    struct prisma8_dir d;
    chain();
    package("4_back", "h3", "h2", "2026-01-04T00:00:00.000Z", OPS);
    assert_int_equal(read_dir(&d), 0);
    assert_string_equal(d.head, "h2");
    prisma8_dir_free(&d);
}

static void test_two_newest_contracts_are_refused(void **state)
{
    (void)state;
    struct prisma8_dir d;
    chain();
    package("3_other", "h2", "h4", "2026-01-03T00:00:01.000Z", OPS);
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "end in two contracts");
    assert_contains(g_err, "3_other");
    put("app/refs/head.json", "{\"hash\":\"h4\",\"invariants\":[]}"); /* Prisma's head ref decides */
    assert_int_equal(read_dir(&d), 0);
    assert_string_equal(d.head, "h4");
    prisma8_dir_free(&d);
}

static void test_a_changed_package_is_refused(void **state)
{
    (void)state;
    struct prisma8_dir d;
    chain();
    put("app/2_two/ops.json", "[]");
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "/app/2_two: migrationHash ");
    assert_contains(g_err, "does not match the package");
}

static void test_what_cannot_be_read_is_a_usage_error(void **state)
{
    (void)state;
    struct prisma8_dir d;
    char path[256];
    chain();
    snprintf(path, sizeof path, "%s/snapshots/h3/contract.json", g_dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(read_dir(&d), EXIT_USAGE);
    assert_contains(g_err, "the newest contract's snapshot, is missing");
    snapshot("h3");
    snprintf(path, sizeof path, "%s/app/2_two/ops.json", g_dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(read_dir(&d), EXIT_USAGE);
    assert_contains(g_err, "2_two/ops.json is missing");
}

static void test_manifest_and_operations_as_prisma_has_them(void **state)
{
    (void)state;
    struct prisma8_dir d;
    package("1_init", NULL, "h1", "2026-01-01T00:00:00.000Z",
            "[{\"id\":\"x\",\"label\":\"x\",\"operationClass\":\"sideways\",\"precheck\":[],"
            "\"execute\":[],\"postcheck\":[]}]");
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "operation 1 is not one Prisma 8 writes");
    put("app/1_init/migration.json", "{\"from\":null,\"to\":\"h1\"}");
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "is not a Prisma 8 manifest");
    put("app/1_init/migration.json", "{\"from\":");
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "it is not the JSON Prisma wrote");
}

static void test_invariants_must_be_the_operations(void **state)
{
    (void)state;
    struct prisma8_dir d;
    package("1_init", NULL, "h1", "2026-01-01T00:00:00.000Z",
            "[{\"id\":\"x\",\"label\":\"x\",\"operationClass\":\"data\",\"invariantId\":\"fill\","
            "\"precheck\":[],\"execute\":[],\"postcheck\":[]}]");
    assert_int_equal(read_dir(&d), EXIT_SCHEMA);
    assert_contains(g_err, "PROVIDED_INVARIANTS_MISMATCH");
}

static void test_another_contract_space_is_refused(void **state)
{
    (void)state;
    struct prisma8_dir d;
    chain();
    put("pgvector/1_ext/migration.json", "{}");
    assert_int_equal(read_dir(&d), EXIT_USAGE);
    assert_contains(g_err, "contract space \"pgvector\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tempdir_test(test_detects_prisma8_directories_only),
        tempdir_test(test_reads_a_chain_and_its_paths),
        tempdir_test(test_ties_are_broken_by_created_at),
        tempdir_test(test_a_rollback_last_makes_its_target_the_newest),
        tempdir_test(test_two_newest_contracts_are_refused),
        tempdir_test(test_a_changed_package_is_refused),
        tempdir_test(test_what_cannot_be_read_is_a_usage_error),
        tempdir_test(test_manifest_and_operations_as_prisma_has_them),
        tempdir_test(test_invariants_must_be_the_operations),
        tempdir_test(test_another_contract_space_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
