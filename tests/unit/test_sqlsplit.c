/* sql_split(): a SQL file cut into statements at top-level ';' only, as psql
 * does, with exact offsets, lengths and lines; quotes, E-strings, quoted
 * identifiers, dollar quotes and (nested) comments hide semicolons; psql
 * meta-commands and unterminated quotes or comments are errors naming a line.
 * sql_line_of(): the 1-based line of a byte offset.
 *
 * Every input is copied into a malloc'ed buffer of exactly its length, without
 * a terminating NUL, so that ASan catches a read past `len`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "assert_text.h"

#include "db/sqlsplit.h"

/* ---- helpers ------------------------------------------------------------ */

static char *g_text;  /* exactly g_len bytes, not NUL-terminated */
static size_t g_len;
static struct sql_statement *g_st;
static size_t g_count;
static char g_err[512];

static void reset(void)
{
    free(g_text);
    free(g_st);
    g_text = NULL;
    g_st = NULL;
    g_len = 0;
    g_count = 0;
}

static int teardown(void **state)
{
    (void)state;
    reset();
    return 0;
}

/* C notation of n bytes, for failure messages. */
static const char *show(const char *s, size_t n)
{
    static char buf[4][512];
    static int which;
    char *out = buf[which++ % 4];
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 8 < sizeof buf[0]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            used += (size_t)snprintf(out + used, sizeof buf[0] - used, "\\n");
        else if (c == '\r')
            used += (size_t)snprintf(out + used, sizeof buf[0] - used, "\\r");
        else if (c >= 0x20 && c < 0x7F)
            used += (size_t)snprintf(out + used, sizeof buf[0] - used, "%c", c);
        else
            used += (size_t)snprintf(out + used, sizeof buf[0] - used, "\\x%02X", c);
    }
    return out;
}

/* sql_split on a fresh, exactly-sized copy of n bytes of text. */
static int split_n(const char *text, size_t n)
{
    reset();
    g_len = n;
    g_text = malloc(n ? n : 1);
    assert_non_null(g_text);
    memcpy(g_text, text, n);
    memset(g_err, 0, sizeof g_err);
    g_st = (struct sql_statement *)(uintptr_t)0xdeadbeef; /* must be overwritten */
    g_count = 12345;
    int rc = sql_split(g_text, g_len, &g_st, &g_count, g_err, sizeof g_err);
    if (rc != 0 && g_st == (struct sql_statement *)(uintptr_t)0xdeadbeef) {
        g_st = NULL;
        fail_msg("sql_split failed and left *out unset");
    }
    if (rc != 0) {
        /* failure: no statements and nothing to free */
        assert_int_equal(rc, -1);
        assert_null(g_st);
        assert_int_equal(g_count, 0);
        assert_true(g_err[0] != '\0');
    } else {
        assert_true(g_count == 0 || g_st != NULL);
        if (g_count == 0 && g_st == (struct sql_statement *)(uintptr_t)0xdeadbeef)
            fail_msg("sql_split left *out unset with no statements");
        if (g_count == 0) {
            free(g_st);
            g_st = NULL;
        }
    }
    return rc;
}

/* string literals: sizeof - 1 keeps the exact bytes */
#define SPLIT(lit) split_n((lit), sizeof(lit) - 1)

#define assert_split_ok(lit)                                                         \
    do {                                                                             \
        if (SPLIT(lit) != 0)                                                         \
            fail_msg("sql_split(\"%s\") failed: %s", show(lit, sizeof(lit) - 1), g_err); \
    } while (0)

static void expect_count_at(size_t want, const char *file, int line)
{
    if (g_count != want) {
        char all[2048] = "";
        size_t used = 0;
        for (size_t i = 0; i < g_count && used + 1 < sizeof all; i++) {
            int k = snprintf(all + used, sizeof all - used, " [%zu]@%d \"%s\"", i, g_st[i].line,
                             show(g_text + g_st[i].offset, g_st[i].length));
            if (k < 0)
                break;
            used += (size_t)k;
        }
        fail_msg("%s:%d: input \"%s\": %zu statements, want %zu:%s", file, line,
                 show(g_text, g_len), g_count, want, all);
    }
}
#define EXPECT_COUNT(n) expect_count_at((n), __FILE__, __LINE__)

/* Statement i is exactly the bytes `want` (so offset and length are exact
 * up to the position of `want` in the text, checked by EXPECT_AT) on `line`. */
static void expect_stmt_at(size_t i, const char *want, size_t wantlen, int line,
                           const char *file, int srcline)
{
    if (i >= g_count)
        fail_msg("%s:%d: no statement %zu (only %zu)", file, srcline, i, g_count);
    const struct sql_statement *st = &g_st[i];
    if (st->offset > g_len || st->length > g_len - st->offset)
        fail_msg("%s:%d: statement %zu out of range: offset %zu length %zu, text %zu bytes",
                 file, srcline, i, st->offset, st->length, g_len);
    if (st->length != wantlen || memcmp(g_text + st->offset, want, wantlen) != 0)
        fail_msg("%s:%d: statement %zu is \"%s\" (offset %zu, length %zu), want \"%s\"", file,
                 srcline, i, show(g_text + st->offset, st->length), st->offset, st->length,
                 show(want, wantlen));
    if (st->line != line)
        fail_msg("%s:%d: statement %zu \"%s\" on line %d, want %d", file, srcline, i,
                 show(want, wantlen), st->line, line);
}
#define EXPECT_STMT(i, lit, line) expect_stmt_at((i), (lit), sizeof(lit) - 1, (line), __FILE__, __LINE__)

/* Statement i also starts at byte `offset`. */
#define EXPECT_AT(i, lit, off, line)                                                  \
    do {                                                                              \
        EXPECT_STMT(i, lit, line);                                                    \
        assert_int_equal(g_st[i].offset, (off));                                      \
        assert_int_equal(g_st[i].length, sizeof(lit) - 1);                            \
    } while (0)

/* sql_split fails, naming `line`. */
static void expect_error_at(const char *text, size_t n, int line, const char *what,
                            const char *file, int srcline)
{
    int rc = split_n(text, n);
    if (rc != -1)
        fail_msg("%s:%d: sql_split(\"%s\") returned %d with %zu statements, want -1", file,
                 srcline, show(text, n), rc, g_count);
    char want[32];
    snprintf(want, sizeof want, "line %d", line);
    /* "line 1" must not pass for "line 12" */
    const char *hit = strstr(g_err, want);
    size_t wl = strlen(want);
    if (!hit || (hit[wl] >= '0' && hit[wl] <= '9'))
        fail_msg("%s:%d: error for \"%s\" is \"%s\", want it to name %s", file, srcline,
                 show(text, n), g_err, want);
    if (what && !strstr(g_err, what))
        fail_msg("%s:%d: error for \"%s\" is \"%s\", want it to mention \"%s\"", file, srcline,
                 show(text, n), g_err, what);
}
#define EXPECT_ERROR(lit, line, what) expect_error_at((lit), sizeof(lit) - 1, (line), (what), __FILE__, __LINE__)

/* ---- basics ------------------------------------------------------------- */

static void test_simple_split_offsets(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 9, 1);

    assert_split_ok("SELECT 1;\nSELECT 2;\n\n\nSELECT 3;\n");
    EXPECT_COUNT(3);
    EXPECT_AT(0, "SELECT 1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 10, 2);
    EXPECT_AT(2, "SELECT 3", 22, 5);
}

static void test_multiline_statement(void **state)
{
    (void)state;
    assert_split_ok("CREATE TABLE t (\n  a int,\n  b text\n);\nINSERT INTO t\nVALUES (1, 'x');\n");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "CREATE TABLE t (\n  a int,\n  b text\n)", 0, 1);
    EXPECT_AT(1, "INSERT INTO t\nVALUES (1, 'x')", 38, 5);
}

/* The statement starts at its first byte of content: leading blanks and
 * comments belong to no statement, and its line is that byte's line. */
static void test_leading_blanks_and_comments_skipped(void **state)
{
    (void)state;
    assert_split_ok("\n\n  -- a comment ; with a semicolon\n /* block ; */\tSELECT 1;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1", 51, 4);

    assert_split_ok("SELECT 1;\n-- next\n/* one\n   two\n */\n  SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 38, 6);

    /* nested block comment as the leading comment */
    assert_split_ok("/* a /* b */ c */ SELECT 1;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1", 18, 1);

    /* empty block comment */
    assert_split_ok("/**/SELECT 1;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1", 4, 1);
}

/* Blanks before the ';' are part of the statement ("up to, not including,
 * the terminating ';'"), and so are comments after its first byte. */
static void test_length_runs_to_the_semicolon(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1 ;SELECT 2\n;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1 ", 0, 1);
    EXPECT_AT(1, "SELECT 2\n", 10, 1);

    assert_split_ok("SELECT 1 -- one\n;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1 -- one\n", 0, 1);
}

static void test_trailing_statement_without_semicolon(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1;\nSELECT 2");
    EXPECT_COUNT(2);
    EXPECT_AT(1, "SELECT 2", 10, 2);

    /* runs to the end of the text, trailing newline included */
    assert_split_ok("SELECT 1;\nSELECT 2\n");
    EXPECT_COUNT(2);
    EXPECT_AT(1, "SELECT 2\n", 10, 2);

    assert_split_ok("SELECT 1");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1", 0, 1);

    /* a trailing comment alone is no statement */
    assert_split_ok("SELECT 1;\n-- the end ;\n/* really */\n");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1", 0, 1);
}

static void test_empty_statements_skipped(void **state)
{
    (void)state;
    assert_split_ok("");
    EXPECT_COUNT(0);
    assert_split_ok(";");
    EXPECT_COUNT(0);
    assert_split_ok(";;; ;\n;\t;\r\n;");
    EXPECT_COUNT(0);
    assert_split_ok("   \n\t\r\n  ");
    EXPECT_COUNT(0);
    assert_split_ok("-- only a comment");
    EXPECT_COUNT(0);
    assert_split_ok("-- only a comment\n/* and ; another */\n");
    EXPECT_COUNT(0);
    assert_split_ok("/* x */ ; -- y\n ; /* z */");
    EXPECT_COUNT(0);

    assert_split_ok(";;SELECT 1;; ;\n/* c */;SELECT 2;;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1", 2, 1);
    EXPECT_AT(1, "SELECT 2", 23, 2);
}

static void test_crlf_line_endings(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1;\r\nSELECT 2;\r\n\r\nSELECT\r\n  3;\r\n");
    EXPECT_COUNT(3);
    EXPECT_AT(0, "SELECT 1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 11, 2);
    EXPECT_AT(2, "SELECT\r\n  3", 24, 4);

    /* a line comment ends at the LF of a CRLF */
    assert_split_ok("-- c ;\r\nSELECT 1 -- ;\r\n+ 1;\r\n");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1 -- ;\r\n+ 1", 8, 2);

    EXPECT_ERROR("SELECT 1;\r\n\r\nSELECT 'open;\r\n", 3, "unterminated");
}

/* ---- things that hide a ';' --------------------------------------------- */

static void test_single_quoted_strings(void **state)
{
    (void)state;
    assert_split_ok("SELECT 'a;b';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 'a;b'", 0, 1);
    EXPECT_AT(1, "SELECT 2", 13, 1);

    /* '' is a quote inside the string */
    assert_split_ok("SELECT 'it''s; fine', '''', '';SELECT 2");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 'it''s; fine', '''', ''", 0, 1);
    EXPECT_AT(1, "SELECT 2", 31, 1);

    /* a string spanning lines; the next statement's line counts them */
    assert_split_ok("INSERT INTO t VALUES ('one;\ntwo;\nthree');\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "INSERT INTO t VALUES ('one;\ntwo;\nthree')", 1);
    EXPECT_STMT(1, "SELECT 2", 4);

    /* comment markers inside strings are text */
    assert_split_ok("SELECT '-- no', '/* no';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT '-- no', '/* no'", 1);

    /* B'', X'', N'' are ordinary quoting */
    assert_split_ok("SELECT B'1;0', X'1;F', N'a;b';SELECT 2;");
    EXPECT_COUNT(2);
}

/* Since standard_conforming_strings (the default since 9.1) a backslash is an
 * ordinary character in '...': 'a\' ends at its second quote. */
static void test_standard_string_backslash_is_literal(void **state)
{
    (void)state;
    assert_split_ok("SELECT 'a\\';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 'a\\'", 0, 1);
    EXPECT_AT(1, "SELECT 2", 12, 1);

    assert_split_ok("SELECT 'C:\\path\\';\nSELECT 'x';");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 'x'", 2);

    /* an identifier ending in E before a quote is not an E-string prefix */
    assert_split_ok("SELECT typE'a\\';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT typE'a\\'", 1);
    assert_split_ok("SELECT some_e'a\\';SELECT 2;");
    EXPECT_COUNT(2);
}

static void test_e_strings_backslash_escapes(void **state)
{
    (void)state;
    /* \' does not end an E-string */
    assert_split_ok("SELECT E'it\\'s; fine';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT E'it\\'s; fine'", 0, 1);
    EXPECT_AT(1, "SELECT 2", 22, 1);

    /* lower-case e, and at the very start of the text */
    assert_split_ok("e'\\';';SELECT 2");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "e'\\';'", 0, 1);

    /* \\ is one backslash: the quote after it ends the string */
    assert_split_ok("SELECT E'a\\\\';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT E'a\\\\'", 0, 1);

    /* '' doubling works in E-strings too */
    assert_split_ok("SELECT E'a'';b';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT E'a'';b'", 1);

    /* after punctuation */
    assert_split_ok("SELECT (E'\\';'),E'\\\\';SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT (E'\\';'),E'\\\\'", 1);
}

static void test_quoted_identifiers(void **state)
{
    (void)state;
    assert_split_ok("CREATE TABLE \"ident;with;semis\" (\"a;\" int);SELECT 1;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "CREATE TABLE \"ident;with;semis\" (\"a;\" int)", 0, 1);
    EXPECT_AT(1, "SELECT 1", 43, 1);

    /* "" is a quote inside the identifier */
    assert_split_ok("SELECT 1 AS \"say \"\"hi;\"\"\";SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT 1 AS \"say \"\"hi;\"\"\"", 1);

    /* a single quote and a backslash inside an identifier are plain */
    assert_split_ok("SELECT \"it's\\\";SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT \"it's\\\"", 1);
}

static void test_dollar_quotes(void **state)
{
    (void)state;
    assert_split_ok("DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;\nSELECT 1;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "DO $$ BEGIN PERFORM 1; PERFORM 2; END $$", 0, 1);
    EXPECT_AT(1, "SELECT 1", 42, 2);

    /* a tagged quote ends only at the same tag */
    assert_split_ok("CREATE FUNCTION f() RETURNS text AS $tag$\n"
                    "  SELECT $notag$ ; $notag$ || $$;$$ || 'x;';\n"
                    "$tag$ LANGUAGE sql;\n"
                    "SELECT f();");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE FUNCTION f() RETURNS text AS $tag$\n"
                   "  SELECT $notag$ ; $notag$ || $$;$$ || 'x;';\n"
                   "$tag$ LANGUAGE sql", 1);
    EXPECT_STMT(1, "SELECT f()", 4);

    /* a prefix of the tag is not the tag, nor is a longer one */
    assert_split_ok("SELECT $tag$ $ta$ ; $tagg$ ; $tag$;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT $tag$ $ta$ ; $tagg$ ; $tag$", 1);

    /* quotes and comment markers inside a dollar quote are text */
    assert_split_ok("SELECT $$ it's \" -- /* ; $$;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT $$ it's \" -- /* ; $$", 1);

    /* tags with underscores, digits (not first) */
    assert_split_ok("SELECT $_x1$;$_x1$;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT $_x1$;$_x1$", 1);

    /* a dollar-quoted body spanning lines */
    assert_split_ok("SELECT $body$\n;\n;\n$body$;\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 5);
}

static void test_block_comments_nested(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1 /* a /* b ; */ c ; */ + 1;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1 /* a /* b ; */ c ; */ + 1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 35, 1);

    assert_split_ok("SELECT /* ' \" $$ -- */ 1;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT /* ' \" $$ -- */ 1", 1);

    /* a block comment spanning lines between statements */
    assert_split_ok("SELECT 1;\n/* one ;\n /* two ; */\n three ; */\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 5);
}

static void test_line_comments(void **state)
{
    (void)state;
    assert_split_ok("SELECT 1 -- ; not a split\n + 1;SELECT 2; -- trailing ;\n");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT 1 -- ; not a split\n + 1", 0, 1);
    EXPECT_STMT(1, "SELECT 2", 2);

    /* quote characters inside a line comment open nothing */
    assert_split_ok("SELECT 1; -- it's \" $$ /*\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 2);

    /* a line comment at the very end, with no newline */
    assert_split_ok("SELECT 1 -- ;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "SELECT 1 -- ;", 0, 1);
}

/* $1 is a parameter and a$b an identifier: neither opens a dollar quote. */
static void test_parameters_and_dollar_identifiers(void **state)
{
    (void)state;
    assert_split_ok("PREPARE p(int) AS SELECT $1;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "PREPARE p(int) AS SELECT $1", 0, 1);
    EXPECT_AT(1, "SELECT 2", 28, 1);

    assert_split_ok("SELECT $1, $2 + $10;SELECT $3$;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT $3$", 1);

    assert_split_ok("SELECT a$b, a$b$c FROM t$;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT a$b, a$b$c FROM t$", 1);

    assert_split_ok("CREATE TABLE x$$ (a$ int, b$$ int);SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE TABLE x$$ (a$ int, b$$ int)", 1);

    /* ...but a real dollar quote after an identifier and a blank is one */
    assert_split_ok("SELECT a$b, $c$ ; $c$;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT a$b, $c$ ; $c$", 1);

    /* non-ASCII identifier bytes count as identifier characters */
    assert_split_ok("SELECT caf\xC3\xA9$x$ ;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "SELECT caf\xC3\xA9$x$ ", 1);

    /* a lone $ at the end is nothing */
    assert_split_ok("SELECT 1;SELECT $");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT $", 1);
}

/* ---- parentheses and BEGIN ATOMIC bodies (psql's rules) ----------------- */

/* A ';' inside parentheses ends nothing: a rule's DO ALSO/INSTEAD (...; ...)
 * is one statement, as psql sends it. */
static void test_semicolons_inside_parentheses(void **state)
{
    (void)state;
    assert_split_ok("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); "
                    "INSERT INTO b VALUES (2));\nSELECT 1;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); "
                 "INSERT INTO b VALUES (2))", 0, 1);
    EXPECT_STMT(1, "SELECT 1", 2);

    /* as pg_dump writes it: a ';' right before the closing parenthesis */
    assert_split_ok("CREATE RULE r AS\n"
                    "    ON INSERT TO public.t DO INSTEAD ( INSERT INTO public.a (x)\n"
                    "  VALUES (1);\n"
                    " INSERT INTO public.b (x)\n"
                    "  VALUES (2);\n"
                    ");\n"
                    "\n"
                    "CREATE RULE n AS ON DELETE TO t DO INSTEAD NOTHING;\n");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE RULE r AS\n"
                   "    ON INSERT TO public.t DO INSTEAD ( INSERT INTO public.a (x)\n"
                   "  VALUES (1);\n"
                   " INSERT INTO public.b (x)\n"
                   "  VALUES (2);\n"
                   ")", 1);
    EXPECT_STMT(1, "CREATE RULE n AS ON DELETE TO t DO INSTEAD NOTHING", 8);

    /* nested: only the outermost ')' closes */
    assert_split_ok("SELECT ((1;2);(3));SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT ((1;2);(3))", 0, 1);
    EXPECT_AT(1, "SELECT 2", 19, 1);

    /* parentheses inside quotes and comments count for nothing */
    assert_split_ok("SELECT '(', \"(\", $$($$ /* ( */ -- (\n;SELECT ')';SELECT 3;");
    EXPECT_COUNT(3);
    EXPECT_STMT(1, "SELECT ')'", 2);

    /* a stray ')' does not open anything (psql ignores it too) */
    assert_split_ok("SELECT 1);SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 1);
}

static const char atomic_function[] =
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"  /* 1 */
    "BEGIN ATOMIC\n"                                   /* 2 */
    "  SELECT 1;\n"                                    /* 3 */
    "  SELECT 2;\n"                                    /* 4 */
    "END;\n"                                           /* 5 */
    "SELECT f();\n";                                   /* 6 */

/* A SQL-standard function body (PostgreSQL 14+) holds ';'s up to its END. */
static void test_begin_atomic_function(void **state)
{
    (void)state;
    assert_split_ok(atomic_function);
    EXPECT_COUNT(2);
    EXPECT_AT(0, "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
                 "BEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND", 0, 1);
    EXPECT_STMT(1, "SELECT f()", 6);

    /* the one-liner */
    assert_split_ok("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; "
                    "END;");
    EXPECT_COUNT(1);
    EXPECT_AT(0, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; "
                 "END", 0, 1);

    /* any case; comments between BEGIN and ATOMIC; an empty body */
    assert_split_ok("create function f() returns int language sql begin /* x; */ -- y;\n"
                    " atomic select 1; end;\nselect 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "select 2", 3);
    assert_split_ok("CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC END;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC END", 1);

    /* what pg_dump --schema-only writes, then the next statement */
    assert_split_ok("CREATE FUNCTION public.f() RETURNS integer\n"
                    "    LANGUAGE sql\n"
                    "    BEGIN ATOMIC\n"
                    " SELECT 1;\n"
                    " SELECT 2;\n"
                    "END;\n"
                    "\n"
                    "\n"
                    "ALTER FUNCTION public.f() OWNER TO postgres;\n");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "ALTER FUNCTION public.f() OWNER TO postgres", 9);
}

/* Inside a body CASE ... END nests: its END does not end the body. */
static void test_begin_atomic_with_case(void **state)
{
    (void)state;
    assert_split_ok("CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql\n"
                    "BEGIN ATOMIC\n"
                    "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n"
                    "  SELECT CASE x WHEN 1 THEN CASE WHEN x > 0 THEN 2 END END;\n"
                    "  SELECT (CASE WHEN x > 0 THEN 1 END);\n"
                    "END;\n"
                    "SELECT g(1);");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql\n"
                   "BEGIN ATOMIC\n"
                   "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n"
                   "  SELECT CASE x WHEN 1 THEN CASE WHEN x > 0 THEN 2 END END;\n"
                   "  SELECT (CASE WHEN x > 0 THEN 1 END);\n"
                   "END", 1);
    EXPECT_STMT(1, "SELECT g(1)", 7);

    /* pg_dump's layout, with a column named "case" (quoted: no CASE) */
    assert_split_ok("CREATE FUNCTION public.g(x integer) RETURNS integer\n"
                    "    LANGUAGE sql\n"
                    "    BEGIN ATOMIC\n"
                    " SELECT\n"
                    "         CASE\n"
                    "             WHEN (x > 0) THEN 1\n"
                    "             ELSE 0\n"
                    "         END AS \"case\";\n"
                    "END;\n"
                    "SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 10);
}

static void test_begin_atomic_procedure(void **state)
{
    (void)state;
    assert_split_ok("CREATE PROCEDURE p() LANGUAGE sql\n"
                    "BEGIN ATOMIC\n"
                    "  INSERT INTO a VALUES (1);\n"
                    "  INSERT INTO b VALUES (2);\n"
                    "END;\n"
                    "CALL p();");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "CREATE PROCEDURE p() LANGUAGE sql\n"
                 "BEGIN ATOMIC\n"
                 "  INSERT INTO a VALUES (1);\n"
                 "  INSERT INTO b VALUES (2);\n"
                 "END", 0, 1);
    EXPECT_STMT(1, "CALL p()", 6);
}

static void test_begin_atomic_create_or_replace(void **state)
{
    (void)state;
    assert_split_ok("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\n"
                    "BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
                    "Create Or Replace Procedure p() LANGUAGE sql\n"
                    "begin atomic select 1; end;\n"
                    "SELECT 3;");
    EXPECT_COUNT(3);
    EXPECT_STMT(0, "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\n"
                   "BEGIN ATOMIC SELECT 1; SELECT 2; END", 1);
    EXPECT_STMT(1, "Create Or Replace Procedure p() LANGUAGE sql\nbegin atomic select 1; end", 3);
    EXPECT_STMT(2, "SELECT 3", 5);

    /* with CRLF line endings: same statements, same lines */
    assert_split_ok("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\r\n"
                    "BEGIN ATOMIC\r\n  SELECT 1;\r\nEND;\r\nSELECT 2;\r\n");
    EXPECT_COUNT(2);
    EXPECT_STMT(0, "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\r\n"
                   "BEGIN ATOMIC\r\n  SELECT 1;\r\nEND", 1);
    EXPECT_STMT(1, "SELECT 2", 5);
}

/* A file's own transaction is still BEGIN, ..., END: separate statements
 * (the callers drop them), also around a BEGIN ATOMIC function. */
static void test_transaction_begin_end_still_split(void **state)
{
    (void)state;
    assert_split_ok("BEGIN;\nINSERT INTO t VALUES (1);\nEND;\nSTART TRANSACTION;\nCOMMIT;");
    EXPECT_COUNT(5);
    EXPECT_AT(0, "BEGIN", 0, 1);
    EXPECT_STMT(1, "INSERT INTO t VALUES (1)", 2);
    EXPECT_STMT(2, "END", 3);
    EXPECT_STMT(3, "START TRANSACTION", 4);
    EXPECT_STMT(4, "COMMIT", 5);

    assert_split_ok("BEGIN;\n"
                    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
                    "END;\n");
    EXPECT_COUNT(3);
    EXPECT_STMT(0, "BEGIN", 1);
    EXPECT_STMT(1, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", 2);
    EXPECT_STMT(2, "END", 3);

    /* BEGIN ATOMIC counts only in CREATE FUNCTION/PROCEDURE */
    assert_split_ok("BEGIN ATOMIC;SELECT 1;END;");
    EXPECT_COUNT(3);
    assert_split_ok("CREATE TABLE atomic (a int);BEGIN;SELECT 1;END;");
    EXPECT_COUNT(4);
}

/* begin, end, case and atomic as names, or inside longer words, open and
 * close nothing. */
static void test_keywords_as_identifiers(void **state)
{
    (void)state;
    assert_split_ok("CREATE TABLE t (begin int, \"end\" int, atomic int);\n"
                    "SELECT begin, \"end\", t.end, atomic FROM t;\n"
                    "SELECT 1 AS \"END\";");
    EXPECT_COUNT(3);
    EXPECT_STMT(1, "SELECT begin, \"end\", t.end, atomic FROM t", 2);
    EXPECT_STMT(2, "SELECT 1 AS \"END\"", 3);

    /* a function named begin: no ATOMIC after it, so no body (psql would
     * run on to the next END here; the server has no body either) */
    assert_split_ok("CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 2);

    /* inside a body: begin as a label, words holding begin/end/case */
    assert_split_ok("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n"
                    "  SELECT 1 AS begin;\n"
                    "  SELECT x_end, endx, begin_at, casey, \"case\" FROM t;\n"
                    "END;\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 5);

    /* E'..' after a body's keywords, a $-identifier */
    assert_split_ok("CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC\n"
                    "  SELECT E'end\\';' || end$ FROM t;\n"
                    "END;SELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_STMT(1, "SELECT 2", 3);
}

/* CASE ... END outside a function body is plain: its END ends nothing. */
static void test_case_outside_function(void **state)
{
    (void)state;
    assert_split_ok("SELECT CASE WHEN true THEN 1 END;\nSELECT 2;");
    EXPECT_COUNT(2);
    EXPECT_AT(0, "SELECT CASE WHEN true THEN 1 END", 0, 1);
    EXPECT_STMT(1, "SELECT 2", 2);

    assert_split_ok("CREATE VIEW v AS SELECT CASE WHEN a THEN 'x;' ELSE 'y' END AS c FROM t;\n"
                    "CREATE FUNCTION f(int) RETURNS int LANGUAGE sql\n"
                    "  RETURN CASE WHEN $1 > 0 THEN 1 END;\n"
                    "SELECT 3;");
    EXPECT_COUNT(3);
    EXPECT_STMT(1, "CREATE FUNCTION f(int) RETURNS int LANGUAGE sql\n"
                   "  RETURN CASE WHEN $1 > 0 THEN 1 END", 2);
    EXPECT_STMT(2, "SELECT 3", 4);
}

/* What psql would glue to the end of the file is an error naming where it
 * opens: an unclosed '(' or a BEGIN ATOMIC without its END. */
static void test_unclosed_parenthesis_and_body(void **state)
{
    (void)state;
    EXPECT_ERROR("SELECT 1;\nCREATE TABLE t (\n  a int;\nSELECT 2;\n", 2, "unclosed '('");
    EXPECT_ERROR("SELECT 1;\n\nSELECT ((1)", 3, "unclosed '('");
    EXPECT_ERROR("SELECT 1;\n"
                 "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
                 "BEGIN ATOMIC\n"
                 "  SELECT CASE WHEN true THEN 1 END;\n",
                 3, "BEGIN ATOMIC without its END");
}

/* ---- errors -------------------------------------------------------------- */

static void test_unterminated_string(void **state)
{
    (void)state;
    EXPECT_ERROR("SELECT 'abc", 1, "unterminated string");
    EXPECT_ERROR("SELECT 1;\nSELECT 2;\nSELECT 'abc;\nSELECT 3;\n", 3, "unterminated string");
    /* a doubled quote does not close */
    EXPECT_ERROR("SELECT 1;\n\nSELECT 'a''", 3, "unterminated string");
    /* \' does not close an E-string */
    EXPECT_ERROR("SELECT 1;\nSELECT E'a\\';\nSELECT 2;", 2, "unterminated string");
    /* the line of the opening quote, not of the end of the text */
    EXPECT_ERROR("SELECT\n'\n\n\n", 2, "unterminated string");
    EXPECT_ERROR("'", 1, "unterminated string");
}

static void test_unterminated_identifier(void **state)
{
    (void)state;
    EXPECT_ERROR("SELECT 1;\nSELECT \"abc;\nSELECT 2;", 2, "unterminated quoted identifier");
    EXPECT_ERROR("\n\n\nSELECT \"a\"\"", 4, "unterminated quoted identifier");
}

static void test_unterminated_dollar_quote(void **state)
{
    (void)state;
    EXPECT_ERROR("SELECT 1;\nDO $$ BEGIN\n PERFORM 1;\nEND;\n", 2, "unterminated dollar-quoted");
    EXPECT_ERROR("SELECT 1;\n\nSELECT $tag$ x $notag$;\n", 3, "unterminated dollar-quoted");
    EXPECT_ERROR("SELECT $a$ x $a", 1, "unterminated dollar-quoted");
}

static void test_unterminated_block_comment(void **state)
{
    (void)state;
    EXPECT_ERROR("SELECT 1;\n/* open ;\nSELECT 2;\n", 2, "unterminated /* comment");
    /* nested: one close is not enough */
    EXPECT_ERROR("SELECT 1;\n\n/* a /* b */ ;\nSELECT 2;\n", 3, "unterminated /* comment");
    EXPECT_ERROR("SELECT 1 /*", 1, "unterminated /* comment");
}

/* psql meta-commands cannot be sent to the server: refuse, naming the line. */
static void test_psql_meta_commands_refused(void **state)
{
    (void)state;
    EXPECT_ERROR("\\connect db\nSELECT 1;", 1, "meta-command");
    EXPECT_ERROR("SELECT 1;\n\\restrict abcDEF123\nSELECT 2;\n", 2, "meta-command");
    EXPECT_ERROR("-- dumped by pg_dump\n\n\\connect db\n", 3, "meta-command");
    EXPECT_ERROR("SELECT 1;\n/* x */ \\c db", 2, "meta-command");
    EXPECT_ERROR("SELECT 1;\r\n\r\n\\connect db\r\nSELECT 2;\r\n", 3, "meta-command");

    /* a backslash that is not at a statement's start is not a meta-command */
    assert_split_ok("SELECT '\\connect';SELECT \"\\c\";SELECT $$\\i x$$;");
    EXPECT_COUNT(3);
}

/* The error message is cut to errlen, always terminated. */
static void test_error_buffer_truncated(void **state)
{
    (void)state;
    static const char text[] = "SELECT 1;\n\n\n\n\n\n\n\n\n\nSELECT 'open";
    char *copy = malloc(sizeof text - 1);
    assert_non_null(copy);
    memcpy(copy, text, sizeof text - 1);
    char small[9];
    memset(small, 'X', sizeof small);
    struct sql_statement *st = NULL;
    size_t count = 99;
    assert_int_equal(sql_split(copy, sizeof text - 1, &st, &count, small, sizeof small), -1);
    assert_null(st);
    assert_int_equal(count, 0);
    assert_string_equal(small, "line 11:");
    free(copy);
}

/* ---- realistic input ---------------------------------------------------- */

/* What `prisma migrate diff --script` writes (trimmed). */
static const char prisma_sql[] =
    "-- CreateEnum\n"                                                            /* 1 */
    "CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN', 'GUEST;ROLE');\n"            /* 2 */
    "\n"                                                                         /* 3 */
    "-- CreateTable\n"                                                           /* 4 */
    "CREATE TABLE \"User\" (\n"                                                  /* 5 */
    "    \"id\" SERIAL NOT NULL,\n"
    "    \"email\" TEXT NOT NULL,\n"
    "    \"name\" TEXT DEFAULT 'anonymous; for now',\n"
    "    \"role\" \"Role\" NOT NULL DEFAULT 'USER',\n"
    "    \"createdAt\" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
    "\n"
    "    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n"
    ");\n"                                                                       /* 13 */
    "\n"
    "-- CreateTable\n"                                                           /* 15 */
    "CREATE TABLE \"Post\" (\n"                                                  /* 16 */
    "    \"id\" SERIAL NOT NULL,\n"
    "    \"title\" VARCHAR(255) NOT NULL DEFAULT '',\n"
    "    \"body\" TEXT DEFAULT 'it''s; here',\n"
    "    \"authorId\" INTEGER NOT NULL,\n"
    "\n"
    "    CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\")\n"
    ");\n"                                                                       /* 23 */
    "\n"
    "-- CreateIndex\n"
    "CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n"          /* 26 */
    "\n"
    "-- AddForeignKey\n"
    "ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY "
    "(\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;\n" /* 29 */
    "";

static void test_prisma_style_file(void **state)
{
    (void)state;
    assert_split_ok(prisma_sql);
    EXPECT_COUNT(5);
    static const struct {
        const char *prefix, *suffix;
        int line;
    } want[] = {
        {"CREATE TYPE \"Role\" AS ENUM", "'GUEST;ROLE')", 2},
        {"CREATE TABLE \"User\" (", "PRIMARY KEY (\"id\")\n)", 5},
        {"CREATE TABLE \"Post\" (", "PRIMARY KEY (\"id\")\n)", 16},
        {"CREATE UNIQUE INDEX \"User_email_key\"", "(\"email\")", 26},
        {"ALTER TABLE \"Post\" ADD CONSTRAINT", "ON UPDATE CASCADE", 29},
    };
    for (size_t i = 0; i < 5; i++) {
        const struct sql_statement *st = &g_st[i];
        size_t pl = strlen(want[i].prefix), sl = strlen(want[i].suffix);
        if (st->length < pl + sl || memcmp(g_text + st->offset, want[i].prefix, pl) != 0 ||
            memcmp(g_text + st->offset + st->length - sl, want[i].suffix, sl) != 0)
            fail_msg("statement %zu is \"%s\"", i, show(g_text + st->offset, st->length));
        assert_int_equal(st->line, want[i].line);
        assert_int_equal(st->line, sql_line_of(g_text, st->offset));
        assert_int_equal(g_text[st->offset + st->length], ';');
    }

    /* the same file with CRLF line endings: same statements, same lines */
    size_t n = sizeof prisma_sql - 1, lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += prisma_sql[i] == '\n';
    char *crlf = malloc(n + lines);
    assert_non_null(crlf);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (prisma_sql[i] == '\n')
            crlf[j++] = '\r';
        crlf[j++] = prisma_sql[i];
    }
    assert_int_equal(split_n(crlf, j), 0);
    free(crlf);
    EXPECT_COUNT(5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(g_st[i].line, want[i].line);
}

/* 20,000 statements in about 1 MB: all found, lines right. A quadratic
 * scanner would take minutes here (no timing assertion: it must finish). */
static void test_large_input(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = 1100 * 1000, used = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    for (int i = 0; i < N; i++) {
        /* 52 bytes a line: every kind of quote hides a ';' */
        int k = snprintf(big + used, cap - used,
                         "INSERT INTO t VALUES (%05d,'a;b',$$;$$,\"c;\"); -- ;\n", i);
        assert_true(k > 0 && (size_t)k < cap - used);
        used += (size_t)k;
    }
    assert_true(used >= 1000 * 1000);
    assert_int_equal(split_n(big, used), 0);
    free(big);
    EXPECT_COUNT(N);
    size_t linelen = used / N;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(g_st[i].offset, i * linelen);
        assert_int_equal(g_st[i].line, (int)i + 1);
        assert_int_equal(g_st[i].length, linelen - 7); /* minus "; -- ;\n" */
    }
    EXPECT_STMT(N - 1, "INSERT INTO t VALUES (19999,'a;b',$$;$$,\"c;\")", N);
}

/* ---- sql_line_of -------------------------------------------------------- */

static void test_line_of(void **state)
{
    (void)state;
    const char *t = "ab\ncd\n\nef\r\ng";
    assert_int_equal(sql_line_of(t, 0), 1);
    assert_int_equal(sql_line_of(t, 1), 1);
    assert_int_equal(sql_line_of(t, 2), 1); /* the '\n' itself ends line 1 */
    assert_int_equal(sql_line_of(t, 3), 2);
    assert_int_equal(sql_line_of(t, 5), 2);
    assert_int_equal(sql_line_of(t, 6), 3);
    assert_int_equal(sql_line_of(t, 7), 4);
    assert_int_equal(sql_line_of(t, 9), 4);  /* '\r' */
    assert_int_equal(sql_line_of(t, 10), 4); /* '\n' of the CRLF */
    assert_int_equal(sql_line_of(t, 11), 5);
    assert_int_equal(sql_line_of(t, strlen(t)), 5); /* one past the end */
    assert_int_equal(sql_line_of("", 0), 1);
    assert_int_equal(sql_line_of("\n\n\n", 3), 4);
    /* only LF counts: a lone CR is not a line break */
    assert_int_equal(sql_line_of("a\rb", 2), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_simple_split_offsets, teardown),
        cmocka_unit_test_teardown(test_multiline_statement, teardown),
        cmocka_unit_test_teardown(test_leading_blanks_and_comments_skipped, teardown),
        cmocka_unit_test_teardown(test_length_runs_to_the_semicolon, teardown),
        cmocka_unit_test_teardown(test_trailing_statement_without_semicolon, teardown),
        cmocka_unit_test_teardown(test_empty_statements_skipped, teardown),
        cmocka_unit_test_teardown(test_crlf_line_endings, teardown),
        cmocka_unit_test_teardown(test_single_quoted_strings, teardown),
        cmocka_unit_test_teardown(test_standard_string_backslash_is_literal, teardown),
        cmocka_unit_test_teardown(test_e_strings_backslash_escapes, teardown),
        cmocka_unit_test_teardown(test_quoted_identifiers, teardown),
        cmocka_unit_test_teardown(test_dollar_quotes, teardown),
        cmocka_unit_test_teardown(test_block_comments_nested, teardown),
        cmocka_unit_test_teardown(test_line_comments, teardown),
        cmocka_unit_test_teardown(test_parameters_and_dollar_identifiers, teardown),
        cmocka_unit_test_teardown(test_semicolons_inside_parentheses, teardown),
        cmocka_unit_test_teardown(test_begin_atomic_function, teardown),
        cmocka_unit_test_teardown(test_begin_atomic_with_case, teardown),
        cmocka_unit_test_teardown(test_begin_atomic_procedure, teardown),
        cmocka_unit_test_teardown(test_begin_atomic_create_or_replace, teardown),
        cmocka_unit_test_teardown(test_transaction_begin_end_still_split, teardown),
        cmocka_unit_test_teardown(test_keywords_as_identifiers, teardown),
        cmocka_unit_test_teardown(test_case_outside_function, teardown),
        cmocka_unit_test_teardown(test_unclosed_parenthesis_and_body, teardown),
        cmocka_unit_test_teardown(test_unterminated_string, teardown),
        cmocka_unit_test_teardown(test_unterminated_identifier, teardown),
        cmocka_unit_test_teardown(test_unterminated_dollar_quote, teardown),
        cmocka_unit_test_teardown(test_unterminated_block_comment, teardown),
        cmocka_unit_test_teardown(test_psql_meta_commands_refused, teardown),
        cmocka_unit_test_teardown(test_error_buffer_truncated, teardown),
        cmocka_unit_test_teardown(test_prisma_style_file, teardown),
        cmocka_unit_test_teardown(test_large_input, teardown),
        cmocka_unit_test_teardown(test_line_of, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
