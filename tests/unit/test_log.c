/* Redaction helpers (what a connection string or webhook URL may show in a
 * log line) and the log line formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "assert_text.h"

#include "log.h"

#define ELLIPSIS "\xE2\x80\xA6" /* … */

static int setup(void **state)
{
    (void)state;
    /* PQconndefaults() reads these; keep the NULL-conninfo case deterministic */
    static const char *const pg_vars[] = {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE",
                                          "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSERVICE",
                                          "PGSERVICEFILE", "PGPASSFILE", NULL};
    for (int i = 0; pg_vars[i]; i++)
        unsetenv(pg_vars[i]);
    return 0;
}

static void test_url_full(void **state)
{
    (void)state;
    char out[256];
    redact_url("https://user:pass@hooks.example.com:8443/services/T0/B0/XXXX?token=abc#f", out,
               sizeof out);
    assert_string_equal(out, "https://hooks.example.com:8443/" ELLIPSIS);
    static const char *const secrets[] = {"user", "pass", "T0", "B0", "XXXX", "token", "abc",
                                          "services", "#", "?", "@"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        assert_not_contains(out, secrets[i]);
}

static void test_url_shapes(void **state)
{
    (void)state;
    char out[256];

    /* no port given: none shown */
    redact_url("https://discord.com/api/webhooks/123/t0ken", out, sizeof out);
    assert_string_equal(out, "https://discord.com/" ELLIPSIS);

    /* no path: no "/…" */
    redact_url("https://hooks.example.com", out, sizeof out);
    assert_string_equal(out, "https://hooks.example.com");
    redact_url("https://hooks.example.com/", out, sizeof out);
    assert_string_equal(out, "https://hooks.example.com");
    redact_url("http://127.0.0.1:8080", out, sizeof out);
    assert_string_equal(out, "http://127.0.0.1:8080");

    /* no path but a query or userinfo: those are dropped, no "/…" */
    redact_url("http://h:8080?token=abc", out, sizeof out);
    assert_string_equal(out, "http://h:8080");
    redact_url("https://u:p4ss@h/", out, sizeof out);
    assert_string_equal(out, "https://h");
    redact_url("https://h#frag", out, sizeof out);
    assert_string_equal(out, "https://h");

    /* IPv6 literal */
    redact_url("http://[::1]:9000/hook/abc", out, sizeof out);
    assert_string_equal(out, "http://[::1]:9000/" ELLIPSIS);
    assert_not_contains(out, "abc");
}

static void test_url_unparsable(void **state)
{
    (void)state;
    char out[256];
    static const char *const bad[] = {"not a url s3cret", "", "https://", "://s3cret"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 'Z', sizeof out);
        redact_url(bad[i], out, sizeof out);
        assert_string_equal(out, "(unparsable URL)");
    }
}

static void test_url_small_buffer(void **state)
{
    (void)state;
    const char *url = "https://user:pass@hooks.example.com:8443/services/T0/B0/XXXX?token=abc";
    for (size_t len = 1; len <= 48; len++) {
        char *out = malloc(len);
        assert_non_null(out);
        redact_url(url, out, len);
        assert_true(strlen(out) < len);
        assert_not_contains(out, "pass");
        assert_not_contains(out, "XXXX");
        free(out);
    }
}

/* ---- log lines ---------------------------------------------------------------- */

/* Runs fn with stderr redirected to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/bandage-test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    buf[size] = '\0';
    close(fd);
    return buf;
}

static void emit_text(void)
{
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
    log_info("ready in %d ms", 42);
    log_warn("slow");
    log_error("bad %s", "thing");
    log_debug("hidden");
}

static void emit_json(void)
{
    log_init(LOG_FORMAT_JSON, LOG_DEBUG);
    log_debug("q\"uote\\ \n\x01 \xFF");
    log_error("e");
}

static void emit_error_level(void)
{
    log_init(LOG_FORMAT_TEXT, LOG_ERROR);
    log_warn("no");
    log_info("no");
    log_error("yes");
}

static void test_log_text(void **state)
{
    (void)state;
    char *out = capture_stderr(emit_text);
    assert_string_equal(out, "bandage: ready in 42 ms\n"
                             "bandage: warn: slow\n"
                             "bandage: error: bad thing\n");
    free(out);

    out = capture_stderr(emit_error_level);
    assert_string_equal(out, "bandage: error: yes\n");
    free(out);
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_INFO));
    assert_false(log_enabled(LOG_DEBUG));
}

static void test_log_json(void **state)
{
    (void)state;
    char *out = capture_stderr(emit_json);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';

    /* {"time":"YYYY-MM-DDTHH:MM:SS.mmmZ","level":"debug","pid":N,"msg":"..."} */
    assert_true(strncmp(out, "{\"time\":\"", 9) == 0);
    const char *t = out + 9;
    assert_true(strlen(t) > 24);
    assert_int_equal(t[4], '-');
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[23], 'Z');
    assert_int_equal(t[24], '"');
    char want[128];
    snprintf(want, sizeof want, "\"level\":\"debug\",\"pid\":%ld,", (long)getpid());
    assert_contains(out, want);
    assert_contains(out, "\"msg\":\"q\\\"uote\\\\ \\n\\u0001 \xEF\xBF\xBD\"}");

    assert_contains(second, "\"level\":\"error\"");
    assert_contains(second, "\"msg\":\"e\"}\n");
    /* exactly one line each */
    assert_ptr_equal(strchr(second, '\n'), second + strlen(second) - 1);
    free(out);

    log_init(LOG_FORMAT_JSON, LOG_INFO);
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
}

/* ---- one event, one line ------------------------------------------------------ */

static void emit_forged_text(void)
{
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
    log_info("deployment %s was already reset", "d1\nbandage: error: fake");
    log_error("server said: %s", "ERROR:  boom\nDETAIL:  more\r\n");
    log_warn("tab\there, escape \x1b[31mred\x1b[0m, bell \a, del \x7f, C1 \xc2\x9b" "2J");
    log_event("summary\nbandage: deploy ok", "{\"a\":1}");
    log_info("utf-8 stays: caf\xc3\xa9 \xe2\x80\xa6 \\n is two characters");
}

static void emit_forged_json(void)
{
    log_init(LOG_FORMAT_JSON, LOG_INFO);
    log_info("deployment %s was already reset", "d1\n{\"level\":\"error\"}");
    log_error("\x1b[2J\r\n");
    log_event("summary\nline", "{\"a\":1}");
}

/* Each byte below 0x20, DEL and the UTF-8 C1 controls (U+0080-U+009F, CSI
 * among them) is shown escaped: a value cannot start a line or drive the
 * terminal. Other UTF-8 passes unchanged. */
static void test_log_text_escapes_control_characters(void **state)
{
    (void)state;
    char *out = capture_stderr(emit_forged_text);
    assert_string_equal(out,
                        "bandage: deployment d1\\nbandage: error: fake was already reset\n"
                        "bandage: error: server said: ERROR:  boom\\nDETAIL:  more\n"
                        "bandage: warn: tab\\there, escape \\x1b[31mred\\x1b[0m, bell "
                        "\\x07, del \\x7f, C1 \\u009b2J\n"
                        "bandage: summary\\nbandage: deploy ok\n"
                        "bandage: utf-8 stays: caf\xc3\xa9 \xe2\x80\xa6 \\n is two characters\n");
    free(out);
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
}

static void emit_invisible(void)
{
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
    /* what a server says of a file that starts with a byte-order mark */
    log_error("42601: syntax error at or near \"\xef\xbb\xbf" "CREATE\"");
    log_info("zero-width: a\xe2\x80\x8b" "b\xe2\x80\x8c" "c\xe2\x80\x8d" "d, marks: "
             "\xe2\x80\x8e" "l\xe2\x80\x8f" "r");
    log_info("separators: line\xe2\x80\xa8" "para\xe2\x80\xa9" "end");
    log_info("bidi: \xe2\x80\xae" "txt.exe\xe2\x80\xac, isolate \xe2\x81\xa6" "x\xe2\x81\xa9");
    log_info("word joiner \xe2\x81\xa0, soft hyphen \xc2\xad, annotation \xef\xbf\xb9");
}

static void emit_visible_utf8(void)
{
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
    /* neighbours of the escaped ranges, other scripts, a 4-byte emoji, and a
     * sequence cut short at the end: all copied as they are */
    log_info("\xe2\x80\x8a|\xe2\x80\x90|\xe2\x80\xaf|\xef\xbb\xbe|\xef\xbc\x81|"
             "\xe6\x97\xa5\xe6\x9c\xac|\xf0\x9f\x98\x80|\xc2\xa0|\xe2\x80");
}

/* Characters that print as nothing (a byte-order mark, zero-width and
 * direction marks, line and paragraph separators) or reorder what follows
 * them are shown escaped like the C1 controls: a line shows what it says. */
static void test_log_text_escapes_invisible_characters(void **state)
{
    (void)state;
    char *out = capture_stderr(emit_invisible);
    assert_string_equal(out,
                        "bandage: error: 42601: syntax error at or near \"\\ufeffCREATE\"\n"
                        "bandage: zero-width: a\\u200bb\\u200cc\\u200dd, marks: "
                        "\\u200el\\u200fr\n"
                        "bandage: separators: line\\u2028para\\u2029end\n"
                        "bandage: bidi: \\u202etxt.exe\\u202c, isolate \\u2066x\\u2069\n"
                        "bandage: word joiner \\u2060, soft hyphen \\u00ad, annotation "
                        "\\ufff9\n");
    free(out);

    out = capture_stderr(emit_visible_utf8);
    assert_string_equal(out, "bandage: \xe2\x80\x8a|\xe2\x80\x90|\xe2\x80\xaf|\xef\xbb\xbe|"
                             "\xef\xbc\x81|\xe6\x97\xa5\xe6\x9c\xac|\xf0\x9f\x98\x80|\xc2\xa0|"
                             "\xe2\x80\n");
    free(out);
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_log_json_one_object_per_line(void **state)
{
    (void)state;
    char *out = capture_stderr(emit_forged_json);
    assert_int_equal(count_lines(out), 3);
    assert_contains(out, "\"msg\":\"deployment d1\\n{\\\"level\\\":\\\"error\\\"} was already "
                         "reset\"}\n");
    assert_contains(out, "\"level\":\"error\",");
    assert_contains(out, "\"msg\":\"\\u001b[2J\"}\n");
    assert_contains(out, "\"msg\":\"summary\\nline\",\"report\":{\"a\":1}}\n");
    for (const char *line = out; *line; line = strchr(line, '\n') + 1)
        assert_true(strncmp(line, "{\"time\":", 8) == 0);
    free(out);
    log_init(LOG_FORMAT_TEXT, LOG_INFO);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
    const struct CMUnitTest tests[] = {
        T(test_url_full),
        T(test_url_shapes),
        T(test_url_unparsable),
        T(test_url_small_buffer),
        T(test_log_text),
        T(test_log_json),
        T(test_log_text_escapes_control_characters),
        T(test_log_text_escapes_invisible_characters),
        T(test_log_json_one_object_per_line),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
