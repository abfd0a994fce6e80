/* jbuf: the JSON writer. Strings are escaped per RFC 8259 and invalid UTF-8
 * becomes U+FFFD, one per invalid byte, so any bytes make valid JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

#define FFFD "\xEF\xBF\xBD"

/* Escape len bytes of text into a fresh buffer, compare with the expected
 * bytes (quotes included), report both in C notation on mismatch. */
static void dump(char *out, size_t outlen, const char *s, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\')
            used += (size_t)snprintf(out + used, outlen - used, "%c", c);
        else
            used += (size_t)snprintf(out + used, outlen - used, "\\x%02X", c);
    }
}

static void check_n_at(const char *in, size_t inlen, const char *want, size_t wantlen,
                       const char *file, int line)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_string_n(&b, in, inlen);
    assert_false(b.failed);
    assert_non_null(b.data);
    if (b.len != wantlen || memcmp(b.data, want, wantlen) != 0 || b.data[b.len] != '\0') {
        char a[512], w[512], i[512];
        dump(i, sizeof i, in, inlen);
        dump(a, sizeof a, b.data, b.len);
        dump(w, sizeof w, want, wantlen);
        jbuf_free(&b);
        fail_msg("%s:%d: escaping \"%s\": got %s, want %s", file, line, i, a, w);
    }
    jbuf_free(&b);
}

/* string literals: sizeof - 1 keeps embedded NULs */
#define CHECK(in, want) check_n_at((in), sizeof(in) - 1, (want), sizeof(want) - 1, __FILE__, __LINE__)

static void test_plain_and_empty(void **state)
{
    (void)state;
    CHECK("", "\"\"");
    CHECK("hello", "\"hello\"");
    CHECK("a b/c", "\"a b/c\"");

    struct jbuf b;
    jbuf_init(&b);
    jbuf_string(&b, "hello");
    assert_string_equal(b.data, "\"hello\"");
    assert_int_equal(b.len, 7);
    jbuf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_null_is_null(void **state)
{
    (void)state;
    struct jbuf b;
    jbuf_init(&b);
    jbuf_string(&b, NULL);
    assert_string_equal(b.data, "null");
    assert_int_equal(b.len, 4);
    jbuf_free(&b);

    /* inside an object */
    jbuf_init(&b);
    jbuf_puts(&b, "{\"a\":");
    jbuf_string(&b, NULL);
    jbuf_puts(&b, ",\"b\":");
    jbuf_string(&b, "x");
    jbuf_puts(&b, "}");
    assert_string_equal(b.data, "{\"a\":null,\"b\":\"x\"}");
    jbuf_free(&b);
}

static void test_quote_and_backslash(void **state)
{
    (void)state;
    CHECK("\"", "\"\\\"\"");
    CHECK("\\", "\"\\\\\"");
    CHECK("a\"b\\c", "\"a\\\"b\\\\c\"");
    CHECK("\\\"\\\"", "\"\\\\\\\"\\\\\\\"\"");
    CHECK("say \"hi\"", "\"say \\\"hi\\\"\"");
}

static void test_named_control_escapes(void **state)
{
    (void)state;
    CHECK("\n", "\"\\n\"");
    CHECK("\r", "\"\\r\"");
    CHECK("\t", "\"\\t\"");
    CHECK("\b", "\"\\b\"");
    CHECK("\f", "\"\\f\"");
    CHECK("a\r\nb\tc\bd\fe", "\"a\\r\\nb\\tc\\bd\\fe\"");
}

static void test_other_control_chars(void **state)
{
    (void)state;
    for (int c = 0x00; c < 0x20; c++) {
        if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            continue;
        char in[1] = {(char)c}, want[16];
        int n = snprintf(want, sizeof want, "\"\\u%04x\"", c);
        check_n_at(in, 1, want, (size_t)n, __FILE__, __LINE__);
    }
    CHECK("\x01", "\"\\u0001\"");
    CHECK("\x1b[31m", "\"\\u001b[31m\"");
    CHECK("\x1f", "\"\\u001f\"");
    CHECK("\x0b", "\"\\u000b\"");
    /* DEL is not a JSON control character, but it is escaped all the same */
    CHECK("\x7f", "\"\\u007f\"");
    CHECK("a\x7f" "b", "\"a\\u007fb\"");
}

static void test_printable_ascii_passes(void **state)
{
    (void)state;
    char in[128], want[256];
    size_t n = 0, w = 0;
    want[w++] = '"';
    for (int c = 0x20; c < 0x7F; c++) {
        in[n++] = (char)c;
        if (c == '"' || c == '\\')
            want[w++] = '\\';
        want[w++] = (char)c;
    }
    want[w++] = '"';
    check_n_at(in, n, want, w, __FILE__, __LINE__);
}

static void test_valid_utf8_passes(void **state)
{
    (void)state;
    CHECK("\xC3\xA9", "\"\xC3\xA9\"");                       /* é, 2 bytes */
    CHECK("\xE2\x82\xAC", "\"\xE2\x82\xAC\"");               /* €, 3 bytes */
    CHECK("\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\"");       /* 😀, 4 bytes */
    CHECK("caf\xC3\xA9 \xE2\x82\xAC" "5 \xF0\x9F\x98\x80!",
          "\"caf\xC3\xA9 \xE2\x82\xAC" "5 \xF0\x9F\x98\x80!\"");
    /* boundaries of each length */
    CHECK("\xC2\x80", "\"\xC2\x80\"");                       /* U+0080 */
    CHECK("\xDF\xBF", "\"\xDF\xBF\"");                       /* U+07FF */
    CHECK("\xE0\xA0\x80", "\"\xE0\xA0\x80\"");               /* U+0800 */
    CHECK("\xED\x9F\xBF", "\"\xED\x9F\xBF\"");               /* U+D7FF */
    CHECK("\xEE\x80\x80", "\"\xEE\x80\x80\"");               /* U+E000 */
    CHECK("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"");               /* U+FFFF */
    CHECK("\xEF\xBF\xBD", "\"\xEF\xBF\xBD\"");               /* U+FFFD itself */
    CHECK("\xF0\x90\x80\x80", "\"\xF0\x90\x80\x80\"");       /* U+10000 */
    CHECK("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\"");       /* U+10FFFF */
    /* U+2028/U+2029 are valid JSON as they are */
    CHECK("\xE2\x80\xA8\xE2\x80\xA9", "\"\xE2\x80\xA8\xE2\x80\xA9\"");
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    /* lone continuation bytes */
    CHECK("\x80", "\"" FFFD "\"");
    CHECK("\xBF", "\"" FFFD "\"");
    CHECK("a\x80" "b", "\"a" FFFD "b\"");
    CHECK("\x80\x80", "\"" FFFD FFFD "\"");
    /* truncated sequences, at the end and before an ASCII byte */
    CHECK("\xC3", "\"" FFFD "\"");
    CHECK("\xE2\x82", "\"" FFFD FFFD "\"");
    CHECK("\xE2\x82" "A", "\"" FFFD FFFD "A\"");
    CHECK("\xF0\x9F\x98", "\"" FFFD FFFD FFFD "\"");
    CHECK("\xF0\x9F\x98" "A", "\"" FFFD FFFD FFFD "A\"");
    /* a lead byte followed by another lead byte: the second sequence survives */
    CHECK("\xC3\xC3\xA9", "\"" FFFD "\xC3\xA9\"");
    /* what follows an invalid byte is still escaped */
    CHECK("\xC3\"", "\"" FFFD "\\\"\"");
    CHECK("\xC3\n", "\"" FFFD "\\n\"");
    CHECK("\xC3\x00", "\"" FFFD "\\u0000\"");
    /* overlong forms */
    CHECK("\xC0\x80", "\"" FFFD FFFD "\"");
    CHECK("\xC1\xBF", "\"" FFFD FFFD "\"");
    CHECK("\xE0\x80\x80", "\"" FFFD FFFD FFFD "\"");
    CHECK("\xE0\x9F\xBF", "\"" FFFD FFFD FFFD "\"");
    CHECK("\xF0\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK("\xF0\x8F\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\"");
    /* UTF-16 surrogates */
    CHECK("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");
    CHECK("\xED\xBF\xBF", "\"" FFFD FFFD FFFD "\"");
    CHECK("\xED\xA0\xBD\xED\xB8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\"");
    /* above U+10FFFF */
    CHECK("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK("\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK("\xF7\xBF\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\"");
    /* bytes that never appear in UTF-8 */
    CHECK("\xFF", "\"" FFFD "\"");
    CHECK("\xFE", "\"" FFFD "\"");
    CHECK("\xF8\x88\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD FFFD "\"");
    CHECK("ok\xFFok", "\"ok" FFFD "ok\"");
    /* Latin-1 text */
    CHECK("caf\xE9", "\"caf" FFFD "\"");
}

static void test_every_byte_gives_valid_json(void **state)
{
    (void)state;
    /* each single byte: output is quoted, has no raw control byte, and is
     * valid UTF-8 (checked by re-escaping: valid output passes unchanged
     * apart from the escapes it already has). */
    for (int c = 0; c < 256; c++) {
        char in[1] = {(char)c};
        struct jbuf b;
        jbuf_init(&b);
        jbuf_string_n(&b, in, 1);
        assert_non_null(b.data);
        assert_true(b.len >= 3);
        assert_int_equal(b.data[0], '"');
        assert_int_equal(b.data[b.len - 1], '"');
        for (size_t i = 0; i < b.len; i++) {
            unsigned char o = (unsigned char)b.data[i];
            if (o < 0x20 || o == 0x7F)
                fail_msg("byte 0x%02X: raw control byte 0x%02X in output", c, o);
        }
        if (c >= 0x80) {
            if (b.len != 5 || memcmp(b.data + 1, FFFD, 3) != 0)
                fail_msg("byte 0x%02X alone should become U+FFFD", c);
        }
        jbuf_free(&b);
    }
}

static void test_embedded_nul(void **state)
{
    (void)state;
    CHECK("a\0b", "\"a\\u0000b\"");
    CHECK("\0", "\"\\u0000\"");
    CHECK("\0\0", "\"\\u0000\\u0000\"");

    /* jbuf_string stops at the NUL */
    struct jbuf b;
    jbuf_init(&b);
    jbuf_string(&b, "a\0b");
    assert_string_equal(b.data, "\"a\"");
    jbuf_free(&b);
}

static void test_string_n_respects_len(void **state)
{
    (void)state;
    check_n_at("abcdef", 3, "\"abc\"", 5, __FILE__, __LINE__);
    check_n_at("abcdef", 0, "\"\"", 2, __FILE__, __LINE__);
    /* a sequence cut by len is invalid, even if the bytes after it would complete it */
    check_n_at("\xC3\xA9", 1, "\"" FFFD "\"", 5, __FILE__, __LINE__);
    check_n_at("\xF0\x9F\x98\x80", 3, "\"" FFFD FFFD FFFD "\"", 11, __FILE__, __LINE__);

    /* with the bytes in a heap block of exactly len, so ASan sees any over-read */
    static const char seqs[][4] = {"\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xED"};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        size_t n = strlen(seqs[i]);
        char *heap = malloc(n);
        assert_non_null(heap);
        memcpy(heap, seqs[i], n);
        struct jbuf b;
        jbuf_init(&b);
        jbuf_string_n(&b, heap, n);
        assert_int_equal(b.len, 2 + 3 * n);
        jbuf_free(&b);
        free(heap);
    }
}

static void test_append_and_puts(void **state)
{
    (void)state;
    struct jbuf b;
    jbuf_init(&b);
    jbuf_append(&b, "abc", 2);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "ab");
    jbuf_puts(&b, "cd");
    assert_string_equal(b.data, "abcd");
    jbuf_append(&b, "", 0);
    assert_string_equal(b.data, "abcd");
    assert_int_equal(b.len, 4);
    assert_true(b.cap > b.len);
    jbuf_free(&b);
}

static void test_printf_growth(void **state)
{
    (void)state;
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';

    /* one call far past the initial 256 bytes */
    struct jbuf b;
    jbuf_init(&b);
    jbuf_printf(&b, "<%s>", big);
    assert_false(b.failed);
    assert_int_equal(b.len, 1001);
    assert_true(b.cap >= 1002);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1000], '>');
    assert_int_equal(b.data[1001], '\0');
    assert_int_equal(strlen(b.data), 1001);
    jbuf_free(&b);

    /* exactly around the 256-byte boundary */
    for (size_t fill = 250; fill <= 260; fill++) {
        jbuf_init(&b);
        jbuf_printf(&b, "%.*s", (int)fill, big);
        assert_int_equal(b.len, fill);
        jbuf_printf(&b, "%d", 12345);
        assert_int_equal(b.len, fill + 5);
        assert_int_equal(strlen(b.data), fill + 5);
        assert_memory_equal(b.data + fill, "12345", 6);
        jbuf_free(&b);
    }

    /* many small appends: the result is their concatenation */
    char want[16000];
    size_t wlen = 0;
    jbuf_init(&b);
    for (int i = 0; i < 2000; i++) {
        jbuf_printf(&b, "%d,", i);
        wlen += (size_t)snprintf(want + wlen, sizeof want - wlen, "%d,", i);
    }
    assert_int_equal(b.len, wlen);
    assert_string_equal(b.data, want);
    jbuf_free(&b);

    /* an empty format still leaves a valid string */
    jbuf_init(&b);
    jbuf_printf(&b, "%s", "");
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    assert_int_equal(b.len, 0);
    jbuf_free(&b);
}

static void test_large_strings(void **state)
{
    (void)state;
    const size_t n = 100 * 1024;
    char *in = malloc(n);
    assert_non_null(in);

    /* plain bytes */
    memset(in, 'a', n);
    struct jbuf b;
    jbuf_init(&b);
    jbuf_string_n(&b, in, n);
    assert_false(b.failed);
    assert_int_equal(b.len, n + 2);
    assert_int_equal(b.data[0], '"');
    assert_int_equal(b.data[n + 1], '"');
    assert_int_equal(b.data[n + 2], '\0');
    assert_memory_equal(b.data + 1, in, n);
    jbuf_free(&b);

    /* every byte a control character: six output bytes each */
    memset(in, 0x01, n);
    jbuf_init(&b);
    jbuf_string_n(&b, in, n);
    assert_false(b.failed);
    assert_int_equal(b.len, 6 * n + 2);
    for (size_t i = 0; i < n; i++)
        if (memcmp(b.data + 1 + 6 * i, "\\u0001", 6) != 0)
            fail_msg("escape %zu wrong", i);
    jbuf_free(&b);

    /* a mix of everything, appended after existing content */
    for (size_t i = 0; i < n; i++)
        in[i] = "a\"\\\n\xC3\xA9\xFF"[i % 7];
    jbuf_init(&b);
    jbuf_puts(&b, "{\"msg\":");
    jbuf_string_n(&b, in, n);
    jbuf_puts(&b, "}");
    assert_false(b.failed);
    /* per 7 input bytes: a, \", \\, \n, é (2), U+FFFD = 1+2+2+2+2+3 = 12 */
    size_t groups = n / 7, rest = n % 7;
    static const size_t out_len[] = {1, 2, 2, 2, 0, 2, 3}; /* é counted at its lead byte */
    size_t want = 7 + 2 + 1 + groups * 12;
    for (size_t i = 0; i < rest; i++)
        want += (i == 4 && rest == 5) ? 3 : out_len[i]; /* a cut é is one U+FFFD */
    assert_int_equal(b.len, want);
    assert_memory_equal(b.data, "{\"msg\":\"a\\\"\\\\\\n\xC3\xA9" FFFD "a", 7 + 1 + 12 + 1);
    assert_int_equal(b.data[b.len - 1], '}');
    assert_int_equal(strlen(b.data), b.len);
    jbuf_free(&b);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_empty),
        cmocka_unit_test(test_null_is_null),
        cmocka_unit_test(test_quote_and_backslash),
        cmocka_unit_test(test_named_control_escapes),
        cmocka_unit_test(test_other_control_chars),
        cmocka_unit_test(test_printable_ascii_passes),
        cmocka_unit_test(test_valid_utf8_passes),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_every_byte_gives_valid_json),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_string_n_respects_len),
        cmocka_unit_test(test_append_and_puts),
        cmocka_unit_test(test_printf_growth),
        cmocka_unit_test(test_large_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
