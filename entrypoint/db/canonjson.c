#include "canonjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* ---- numbers ----------------------------------------------------------------- */

/* The shortest decimal digits that read back as d (d > 0, finite), and the
 * position n of the decimal point: d = 0.DIGITS x 10^n. */
static int shortest_digits(double d, char digits[24], int *n)
{
    char buf[40];
    int k;
    for (k = 1; k <= 17; k++) {
        snprintf(buf, sizeof buf, "%.*e", k - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* buf: "D[.DDD]e[+-]XX" */
    int len = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[len++] = *p;
    while (len > 1 && digits[len - 1] == '0')
        len--;
    digits[len] = '\0';
    *n = atoi(p + 1) + 1;
    return len;
}

void canon_number(double d, char out[CANON_NUMBER_MAX])
{
    char digits[24];
    int n, k, at = 0;
    if (d == 0) { /* -0 too */
        snprintf(out, CANON_NUMBER_MAX, "0");
        return;
    }
    if (d < 0) {
        out[at++] = '-';
        d = -d;
    }
    k = shortest_digits(d, digits, &n);
    if (k <= n && n <= 21)
        snprintf(out + at, (size_t)(CANON_NUMBER_MAX - at), "%s%.*s", digits, n - k, "000000000000000000000");
    else if (0 < n && n <= 21)
        snprintf(out + at, (size_t)(CANON_NUMBER_MAX - at), "%.*s.%s", n, digits, digits + n);
    else if (-6 < n && n <= 0)
        snprintf(out + at, (size_t)(CANON_NUMBER_MAX - at), "0.%.*s%s", -n, "000000", digits);
    else
        snprintf(out + at, (size_t)(CANON_NUMBER_MAX - at), "%c%s%se%c%d", digits[0], k > 1 ? "." : "",
                 digits + 1, n - 1 < 0 ? '-' : '+', abs(n - 1));
}

/* ---- strings ----------------------------------------------------------------- */

static void put_string(struct jbuf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t from = 0;
    jbuf_append(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *short_form = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\b' ? "\\b"
                                 : ch == '\f' ? "\\f" : ch == '\n' ? "\\n" : ch == '\r' ? "\\r"
                                 : ch == '\t' ? "\\t" : NULL;
        if (!short_form && ch >= 0x20)
            continue;
        jbuf_append(out, s + from, i - from);
        from = i + 1;
        if (short_form) {
            jbuf_puts(out, short_form);
        } else {
            char u[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], '\0'};
            jbuf_append(out, u, 6);
        }
    }
    jbuf_append(out, s + from, len - from);
    jbuf_append(out, "\"", 1);
}

/* ---- keys -------------------------------------------------------------------- */

/* "0" to "4294967294" without leading zeros: JavaScript enumerates these
 * first, in numeric order, whatever the order they were added in. */
static int array_index(const char *key, unsigned long long *value)
{
    size_t len = strlen(key);
    if (len == 0 || len > 10 || (len > 1 && key[0] == '0') || strspn(key, "0123456789") != len)
        return 0;
    *value = strtoull(key, NULL, 10);
    return *value <= 4294967294ULL;
}

/* The next code point of UTF-8 text (valid: jansson checked it). */
static unsigned long next_code_point(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned long cp;
    int extra = s[0] < 0x80 ? 0 : s[0] < 0xE0 ? 1 : s[0] < 0xF0 ? 2 : 3;
    cp = extra == 0 ? s[0] : s[0] & (0x3F >> extra);
    for (int i = 1; i <= extra && s[i]; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    *p = s + 1 + extra;
    return cp;
}

/* A code point's first UTF-16 code unit, and its second (0 if none). */
static void utf16_units(unsigned long cp, unsigned long unit[2])
{
    if (cp < 0x10000) {
        unit[0] = cp;
        unit[1] = 0;
    } else {
        unit[0] = 0xD800 + ((cp - 0x10000) >> 10);
        unit[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
    }
}

int canon_utf16_compare(const char *a, const char *b)
{
    const unsigned char *pa = (const unsigned char *)a, *pb = (const unsigned char *)b;
    while (*pa && *pb) {
        unsigned long ua[2], ub[2];
        utf16_units(next_code_point(&pa), ua);
        utf16_units(next_code_point(&pb), ub);
        for (int i = 0; i < 2; i++)
            if (ua[i] != ub[i]) /* a lone unit (0) sorts first: the string ends there */
                return ua[i] < ub[i] ? -1 : 1;
    }
    return (*pa != 0) - (*pb != 0);
}

static int key_order(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    unsigned long long ia, ib;
    int a_index = array_index(a, &ia), b_index = array_index(b, &ib);
    if (a_index && b_index)
        return ia < ib ? -1 : ia > ib;
    if (a_index != b_index)
        return a_index ? -1 : 1;
    return canon_utf16_compare(a, b);
}

/* ---- values ------------------------------------------------------------------ */

static int put_object(const json_t *v, struct jbuf *out)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys = malloc((n + 1) * sizeof *keys);
    const char *key;
    json_t *member;
    int rc = 0;
    if (!keys)
        return -1;
    json_object_foreach((json_t *)v, key, member)
        keys[i++] = key;
    qsort(keys, n, sizeof *keys, key_order);
    jbuf_append(out, "{", 1);
    for (i = 0; i < n && rc == 0; i++) {
        if (i)
            jbuf_append(out, ",", 1);
        put_string(out, keys[i], strlen(keys[i]));
        jbuf_append(out, ":", 1);
        rc = canon_json(json_object_get(v, keys[i]), out);
    }
    jbuf_append(out, "}", 1);
    free(keys);
    return rc;
}

static int put_array(const json_t *v, struct jbuf *out)
{
    int rc = 0;
    jbuf_append(out, "[", 1);
    for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
        if (i)
            jbuf_append(out, ",", 1);
        rc = canon_json(json_array_get(v, i), out);
    }
    jbuf_append(out, "]", 1);
    return rc;
}

int canon_json(const json_t *v, struct jbuf *out)
{
    char number[CANON_NUMBER_MAX];
    double d;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        rc = put_object(v, out);
        break;
    case JSON_ARRAY:
        rc = put_array(v, out);
        break;
    case JSON_STRING:
        put_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        d = json_number_value(v);
        if (!isfinite(d))
            return -1;
        canon_number(d, number);
        jbuf_puts(out, number);
        break;
    case JSON_TRUE:
        jbuf_puts(out, "true");
        break;
    case JSON_FALSE:
        jbuf_puts(out, "false");
        break;
    case JSON_NULL:
        jbuf_puts(out, "null");
        break;
    }
    return rc != 0 || out->failed ? -1 : 0;
}

int canon_sha256_hex(const char *data, size_t len, char out[CANON_SHA256_HEX + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int canon_json_sha256(const json_t *v, char out[CANON_SHA256_HEX + 1])
{
    struct jbuf b;
    jbuf_init(&b);
    int rc = canon_json(v, &b) == 0 ? canon_sha256_hex(b.data, b.len, out) : -1;
    jbuf_free(&b);
    return rc;
}
