/* canon_json: the JSON Prisma 8 hashes its packages over, JavaScript's
 * JSON.stringify of a key-sorted value. Every expected string below is what
 * Node 20 printed for the same input (JSON.stringify(sortKeys(JSON.parse(x))),
 * Prisma's canonicalizeJson), so a difference is one from Prisma. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "assert_text.h"

#include "db/canonjson.h"

static void check_at(const char *in, const char *want, const char *file, int line)
{
    json_error_t error;
    json_t *v = json_loads(in, CANON_JSON_DECODE | JSON_DECODE_ANY, &error);
    struct jbuf b;
    if (!v)
        fail_msg("%s:%d: jansson refused %s: %s", file, line, in, error.text);
    jbuf_init(&b);
    assert_int_equal(canon_json(v, &b), 0);
    if (strcmp(b.data, want) != 0)
        fail_msg("%s:%d: canon_json(%s)\n  got:  %s\n  want: %s", file, line, in, b.data, want);
    jbuf_free(&b);
    json_decref(v);
}
#define check(in, want) check_at(in, want, __FILE__, __LINE__)

static void test_keys_sorted_at_every_level(void **state)
{
    (void)state;
    check("{\"b\":1,\"a\":[3,2,{\"d\":null,\"c\":true}]}", "{\"a\":[3,2,{\"c\":true,\"d\":null}],\"b\":1}");
    check("{ \"a\" : { } , \"b\" : [ ] }", "{\"a\":{},\"b\":[]}");
    check("{}", "{}");
    check("[]", "[]");
}

/* JavaScript enumerates array-index keys first, in numeric order: "9"
 * before "10"; "01" and 2^32-1 are not indexes and sort as strings. */
static void test_array_index_keys_first(void **state)
{
    (void)state;
    check("{\"b\":1,\"10\":0,\"9\":false,\"01\":1,\"4294967295\":2,\"4294967294\":3,\"a\":4}",
          "{\"9\":false,\"10\":0,\"4294967294\":3,\"01\":1,\"4294967295\":2,\"a\":4,\"b\":1}");
}

/* By UTF-16 code units: an emoji (a surrogate pair, 0xD83D...) sorts before
 * U+E000, though its code point is larger. */
static void test_keys_in_utf16_order(void **state)
{
    (void)state;
    check("{\"\\ue000\":1,\"\\ud83d\\ude00\":2,\"z\":3,\"\\u00e9\":4}",
          "{\"z\":3,\"\xC3\xA9\":4,\"\xF0\x9F\x98\x80\":2,\"\xEE\x80\x80\":1}");
    check("{\"ab\":1,\"a\":2,\"\":3}", "{\"\":3,\"a\":2,\"ab\":1}");
}

static void test_strings_escaped_as_json_stringify(void **state)
{
    (void)state;
    check("\"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\\u007f\\u2028/\\\\\\\"\\u00e9\xF0\x9F\x98\x80\"",
          "\"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\x7f\xE2\x80\xA8/\\\\\\\"\xC3\xA9\xF0\x9F\x98\x80\"");
    /* what Prisma wrote for a default of `it's "quoted" \ back<TAB>slash` */
    check("\"DEFAULT 'it''s \\\"quoted\\\" \\\\ back\\tslash \\u0001'\"",
          "\"DEFAULT 'it''s \\\"quoted\\\" \\\\ back\\tslash \\u0001'\"");
}

static void test_numbers_in_javascript_form(void **state)
{
    (void)state;
    check("[1,1.5,1e21,1e20,123e18,1e-7,1e-6,1.5e-7,-0,0.30000000000000004]",
          "[1,1.5,1e+21,100000000000000000000,123000000000000000000,1e-7,0.000001,1.5e-7,0,"
          "0.30000000000000004]");
    check("[5e-324,1.7976931348623157e308,100,1E2,0.000001,12345678901234567890,-1.25e-10]",
          "[5e-324,1.7976931348623157e+308,100,100,0.000001,12345678901234567000,-1.25e-10]");
    check("[9007199254740992,9007199254740994,0.3333333333333333,-123.456,4.35,0.5,1e100,"
          "9.999999999999999e22]",
          "[9007199254740992,9007199254740994,0.3333333333333333,-123.456,4.35,0.5,1e+100,1e+23]");
}

/* A package Prisma 8.0.0-rc.19 wrote (`prisma migration plan`): its
 * migrationHash is sha256hex(canon([sha256hex(canon(meta)), sha256hex(canon(ops))])). */
static void test_hash_of_a_real_package(void **state)
{
    (void)state;
    const char *meta = "{\n  \"from\": null,\n  \"to\": "
                       "\"b5ae4e66fad1f0b7dd5590568f75a12a6f4576e9f367a787a69a4e729abac1fb\",\n"
                       "  \"providedInvariants\": [],\n  \"createdAt\": \"2026-12-04T18:19:40.589Z\"\n}";
    const char *ops =
        "[{\"id\":\"schema.public\",\"label\":\"Create schema \\\"public\\\"\","
        "\"operationClass\":\"additive\",\"target\":{\"id\":\"postgres\"},\"precheck\":[],"
        "\"execute\":[{\"description\":\"Create schema \\\"public\\\"\",\"sql\":\"CREATE SCHEMA IF "
        "NOT EXISTS \\\"public\\\"\",\"params\":[]}],\"postcheck\":[]},"
        "{\"id\":\"table.User\",\"label\":\"Create table \\\"User\\\"\",\"summary\":\"Creates table "
        "\\\"User\\\"\",\"operationClass\":\"additive\",\"target\":{\"id\":\"postgres\",\"details\":"
        "{\"schema\":\"public\",\"objectType\":\"table\",\"name\":\"User\"}},\"precheck\":[{"
        "\"description\":\"ensure table \\\"User\\\" does not exist\",\"sql\":\"SELECT (to_regclass("
        "$1)) IS NULL AS \\\"result\\\"\",\"params\":[\"\\\"public\\\".\\\"User\\\"\"]}],\"execute\":"
        "[{\"description\":\"create table \\\"User\\\"\",\"sql\":\"CREATE TABLE \\\"public\\\".\\\""
        "User\\\" (\\n  \\\"email\\\" text NOT NULL,\\n  \\\"id\\\" SERIAL NOT NULL,\\n  \\\"name\\\" "
        "text,\\n  PRIMARY KEY (\\\"id\\\")\\n)\",\"params\":[]}],\"postcheck\":[{\"description\":"
        "\"verify table \\\"User\\\" exists\",\"sql\":\"SELECT (to_regclass($1)) IS NOT NULL AS "
        "\\\"result\\\"\",\"params\":[\"\\\"public\\\".\\\"User\\\"\"]}]},"
        "{\"id\":\"unique.User.User_email_key\",\"label\":\"Add unique constraint on \\\"User\\\" "
        "(email)\",\"operationClass\":\"additive\",\"target\":{\"id\":\"postgres\",\"details\":{"
        "\"schema\":\"public\",\"objectType\":\"unique\",\"name\":\"User_email_key\",\"table\":"
        "\"User\"}},\"precheck\":[{\"description\":\"ensure constraint \\\"User_email_key\\\" does "
        "not exist\",\"sql\":\"SELECT NOT EXISTS (SELECT 1 AS \\\"one\\\" FROM \\\"pg_constraint\\\""
        " AS \\\"c\\\" INNER JOIN \\\"pg_namespace\\\" AS \\\"n\\\" ON \\\"n\\\".\\\"oid\\\" = \\\"c\\"
        "\".\\\"connamespace\\\" WHERE (\\\"c\\\".\\\"conname\\\" = $1 AND \\\"n\\\".\\\"nspname\\\" "
        "= $2 AND \\\"c\\\".\\\"conrelid\\\" = to_regclass($3))) AS \\\"result\\\"\",\"params\":["
        "\"User_email_key\",\"public\",\"\\\"public\\\".\\\"User\\\"\"]}],\"execute\":[{"
        "\"description\":\"add unique constraint \\\"User_email_key\\\"\",\"sql\":\"ALTER TABLE "
        "\\\"public\\\".\\\"User\\\" ADD CONSTRAINT \\\"User_email_key\\\" UNIQUE (\\\"email\\\")\"}],"
        "\"postcheck\":[{\"description\":\"verify constraint \\\"User_email_key\\\" exists\",\"sql\":"
        "\"SELECT EXISTS (SELECT 1 AS \\\"one\\\" FROM \\\"pg_constraint\\\" AS \\\"c\\\" INNER JOIN "
        "\\\"pg_namespace\\\" AS \\\"n\\\" ON \\\"n\\\".\\\"oid\\\" = \\\"c\\\".\\\"connamespace\\\" "
        "WHERE (\\\"c\\\".\\\"conname\\\" = $1 AND \\\"n\\\".\\\"nspname\\\" = $2 AND \\\"c\\\".\\\""
        "conrelid\\\" = to_regclass($3))) AS \\\"result\\\"\",\"params\":[\"User_email_key\","
        "\"public\",\"\\\"public\\\".\\\"User\\\"\"]}]}]";
    char h[2][CANON_SHA256_HEX + 1], pair[160], hash[CANON_SHA256_HEX + 1];
    const char *texts[] = {meta, ops};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_loads(texts[i], CANON_JSON_DECODE, NULL);
        assert_non_null(v);
        assert_int_equal(canon_json_sha256(v, h[i]), 0);
        json_decref(v);
    }
    snprintf(pair, sizeof pair, "[\"%s\",\"%s\"]", h[0], h[1]);
    assert_int_equal(canon_sha256_hex(pair, strlen(pair), hash), 0);
    assert_string_equal(hash, "3afa7fcebdaa72e5796988f54e7a08ffc542496c4da8c887abee11c4bd0aa62b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_sorted_at_every_level),
        cmocka_unit_test(test_array_index_keys_first),
        cmocka_unit_test(test_keys_in_utf16_order),
        cmocka_unit_test(test_strings_escaped_as_json_stringify),
        cmocka_unit_test(test_numbers_in_javascript_form),
        cmocka_unit_test(test_hash_of_a_real_package),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
