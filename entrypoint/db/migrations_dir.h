/* A Prisma migrations directory on disk: DIR/migration_lock.toml and
 * DIR/<name>/migration.sql, read the way Prisma's schema engine reads it
 * (DESIGN.md "Migrations, precisely"). No database here. */
#ifndef BANDAGE_MIGRATIONS_DIR_H
#define BANDAGE_MIGRATIONS_DIR_H

#include <stddef.h>

#define MIGRATION_NAME_MAX 255  /* _prisma_migrations.migration_name is VARCHAR(255) */
#define MIGRATION_CHECKSUM_LEN 64

struct migration {
    char *name;        /* the directory's name */
    char *sql;         /* migration.sql's bytes, NUL-terminated; NULL when the directory
                          has no migration.sql (Prisma lists it, and fails to apply it) */
    size_t sql_len;
    char checksum[MIGRATION_CHECKSUM_LEN + 1]; /* lowercase hex SHA-256 of the bytes */
};

struct prisma8_dir;

struct migration_dir {
    char *path;
    struct migration *items;  /* in byte order (strcmp) of name */
    size_t count;
    struct prisma8_dir *prisma8; /* a Prisma 8 directory instead (prisma8_dir.h): then
                                    items is NULL and count 0; NULL for Prisma 6/7 */
};

/* Reads path: migration_lock.toml must name provider "postgresql"; every
 * subdirectory is a migration (entries that are not directories, symlinks
 * included, are skipped as Prisma skips them). Returns 0, or -1 with err set
 * to one line naming the file and the fix (a usage error: exit 64). */
int migration_dir_read(const char *path, struct migration_dir *out, char *err, size_t errlen);
/* Frees d, a Prisma 8 directory it holds included. */
void migration_dir_free(struct migration_dir *d);

/* Why a file of SQL that starts with a byte-order mark cannot be run, with
 * the fix ("starts with a UTF-8 byte-order mark ...; save it without one"),
 * or NULL when data starts with none. */
const char *sql_byte_order_mark(const char *data, size_t len);

/* Refuses migration m of d when its migration.sql starts with a byte-order
 * mark: PostgreSQL would fail on its first statement (as it does under
 * Prisma). For migrations about to run only: an applied one keeps its bytes,
 * which its recorded checksum is of. 0, or -1 with err set to one line
 * naming the file and the fix (exit 64). */
int migration_script_check(const struct migration_dir *d, const struct migration *m, char *err,
                           size_t errlen);

/* For config.c's settings table (its `check` slot): 0 when path is a
 * readable migrations directory (migration_dir_read() succeeds), else -1
 * with why set, without the "--migrations: " the caller prefixes. */
int migration_dir_check(const char *path, char *why, size_t len);

/* The provider named by a migration_lock.toml's text, into out ("" if none):
 * Prisma's rule, the first line that starts with "provider". */
void migration_lock_provider(const char *text, char *out, size_t outlen);

/* Lowercase hex SHA-256 of data (OpenSSL EVP); 0, or -1 if OpenSSL failed. */
int migration_checksum(const char *data, size_t len, char out[MIGRATION_CHECKSUM_LEN + 1]);

/* Prisma's comparison of a file with a recorded checksum: the bytes as they
 * are, with CRLF turned into LF, or with LF turned into CRLF (git may change
 * line endings); a recorded checksum of another length is compared in the
 * old unpadded format (each byte as %x) of an early Prisma version.
 * 1 match, 0 differ, -1 error. */
int migration_checksum_matches(const char *data, size_t len, const char *recorded);

#endif
