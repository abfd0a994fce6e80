/* JSON written the way Prisma 8 writes it before hashing a migration
 * package: JavaScript's JSON.stringify of a value whose object keys were
 * sorted at every level (Prisma's canonicalizeJson). The value is read
 * with jansson (numbers as doubles, as JavaScript reads them); see
 * docs/internals.md "Prisma 8 packages". No database here. */
#ifndef BANDAGE_CANONJSON_H
#define BANDAGE_CANONJSON_H

#include <jansson.h>

#include "json.h"

#define CANON_SHA256_HEX 64

/* jansson's flags for reading JSON as JavaScript's JSON.parse does: every
 * number a double, "\u0000" allowed in strings. */
#define CANON_JSON_DECODE (JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL)

/* Appends v to out with no whitespace; object keys ordered as JavaScript
 * enumerates an object built from sorted keys: array-index keys ("0" to
 * "4294967294") first in numeric order, then the others by UTF-16 code
 * units; strings escaped as JSON.stringify escapes them (the quote, the
 * backslash, \b \f \n \r \t, other controls as \u00xx; the rest as UTF-8);
 * numbers in JavaScript's shortest form (1e+21, 1e-7, -0 as 0). 0, or -1
 * when v holds what JSON.stringify would not write as itself (a NaN or an
 * infinity), or memory ran out. */
int canon_json(const json_t *v, struct jbuf *out);

#define CANON_NUMBER_MAX 64

/* A double as JavaScript's Number.prototype.toString writes it (finite
 * values only). */
void canon_number(double d, char out[CANON_NUMBER_MAX]);

/* JavaScript's default sort order of two strings (UTF-8 here): by UTF-16
 * code units. <0, 0 or >0. */
int canon_utf16_compare(const char *a, const char *b);

/* Lowercase hex SHA-256 (OpenSSL) of data. 0, or -1 if OpenSSL failed. */
int canon_sha256_hex(const char *data, size_t len, char out[CANON_SHA256_HEX + 1]);

/* sha256hex(canon_json(v)). 0, or -1. */
int canon_json_sha256(const json_t *v, char out[CANON_SHA256_HEX + 1]);

#endif
