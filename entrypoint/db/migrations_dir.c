#include "migrations_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "prisma8_dir.h"

#define LOCK_FILE "migration_lock.toml"
#define SCRIPT_FILE "migration.sql"

/* The whole file at dirfd/name into *data (NUL-terminated). 0, or -1 with
 * errno set (ENOENT when it does not exist). */
static int read_file_at(int dirfd, const char *name, char **data, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fstat(fd, &st) != 0 ? errno : EISDIR;
        close(fd);
        errno = e;
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    for (ssize_t got = 1; buf && got > 0;) {
        if (n + 1 == cap) { /* the file grew while being read */
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
        }
        got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            got = 1;
        else if (got < 0) {
            free(buf);
            buf = NULL;
        } else
            n += (size_t)got;
    }
    int e = errno;
    close(fd);
    if (!buf) {
        errno = e ? e : ENOMEM;
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

void migration_lock_provider(const char *text, char *out, size_t outlen)
{
    out[0] = '\0';
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n");
        if (strncmp(line, "provider", 8) == 0) {
            const char *p = line + 8;
            while (*p == ' ' || *p == '\t' || *p == '=')
                p++;
            if (*p == '"')
                p++;
            snprintf(out, outlen, "%.*s", (int)strcspn(p, "\"\r\n"), p);
            return;
        }
        line += n + (line[n] == '\n');
    }
}

static int check_lock_file(int dirfd, const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len;
    char provider[64];
    if (read_file_at(dirfd, LOCK_FILE, &text, &len) != 0) {
        snprintf(err, errlen, "--migrations: cannot read %s/%s: %s (a Prisma migrations "
                 "directory has one: point --migrations at prisma/migrations)", path, LOCK_FILE,
                 strerror(errno));
        return -1;
    }
    migration_lock_provider(text, provider, sizeof provider);
    free(text);
    if (strcmp(provider, "postgresql") != 0) {
        snprintf(err, errlen, "--migrations: %s/%s says provider = \"%s\"; bandage applies "
                 "migrations for \"postgresql\" only", path, LOCK_FILE, provider);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct migration *)a)->name, ((const struct migration *)b)->name);
}

static int add_migration(struct migration_dir *d, size_t *cap, const char *name)
{
    if (d->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        struct migration *grown = realloc(d->items, ncap * sizeof *grown);
        if (!grown)
            return -1;
        d->items = grown;
        *cap = ncap;
    }
    struct migration *m = &d->items[d->count];
    memset(m, 0, sizeof *m);
    if (!(m->name = strdup(name)))
        return -1;
    d->count++;
    return 0;
}

/* The subdirectories of dirfd, unsorted. */
static int list_directories(int dirfd, const char *path, struct migration_dir *d, char *err,
                            size_t errlen)
{
    int fd = dup(dirfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    size_t cap = 0;
    struct dirent *e;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "--migrations: cannot list %s: %s", path, strerror(errno));
        return -1;
    }
    while ((e = readdir(dir))) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* lstat, as Prisma's readdir file types: a symlink is not a directory. */
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            if (S_ISLNK(st.st_mode))
                log_warn("--migrations: skipping %s/%s: a symlink (Prisma does not follow it "
                         "either)", path, e->d_name);
            continue;
        }
        if (strlen(e->d_name) > MIGRATION_NAME_MAX) {
            snprintf(err, errlen, "--migrations: %s/%.40s...: a migration name is at most %d "
                     "bytes (_prisma_migrations.migration_name)", path, e->d_name,
                     MIGRATION_NAME_MAX);
            closedir(dir);
            return -1;
        }
        if (add_migration(d, &cap, e->d_name) != 0) {
            snprintf(err, errlen, "--migrations: out of memory");
            closedir(dir);
            return -1;
        }
    }
    closedir(dir);
    return 0;
}

static int read_scripts(int dirfd, const char *path, struct migration_dir *d, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < d->count; i++) {
        struct migration *m = &d->items[i];
        char rel[MIGRATION_NAME_MAX + sizeof SCRIPT_FILE + 2];
        snprintf(rel, sizeof rel, "%s/%s", m->name, SCRIPT_FILE);
        if (read_file_at(dirfd, rel, &m->sql, &m->sql_len) != 0) {
            if (errno == ENOENT)
                continue; /* judged later: fatal if pending, a warning if applied */
            snprintf(err, errlen, "--migrations: cannot read %s/%s: %s", path, rel,
                     strerror(errno));
            return -1;
        }
        if (migration_checksum(m->sql, m->sql_len, m->checksum) != 0) {
            snprintf(err, errlen, "--migrations: SHA-256 of %s/%s failed (OpenSSL)", path, rel);
            return -1;
        }
    }
    return 0;
}

int migration_dir_read(const char *path, struct migration_dir *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, errlen, "--migrations: cannot open directory %s: %s (point it at the "
                 "directory that holds migration_lock.toml)", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (!(out->path = strdup(path)))
        snprintf(err, errlen, "--migrations: out of memory");
    else if (check_lock_file(dirfd, path, err, errlen) == 0 &&
             list_directories(dirfd, path, out, err, errlen) == 0 &&
             read_scripts(dirfd, path, out, err, errlen) == 0)
        rc = 0;
    close(dirfd);
    if (rc != 0) {
        migration_dir_free(out);
        return -1;
    }
    if (out->count > 1)
        qsort(out->items, out->count, sizeof *out->items, by_name);
    return 0;
}

int migration_dir_check(const char *path, char *why, size_t len)
{
    static const char prefix[] = "--migrations: ";
    struct migration_dir d;
    char err[512];
    if (migration_dir_read(path, &d, err, sizeof err) == 0) {
        migration_dir_free(&d);
        return 0;
    }
    size_t skip = strncmp(err, prefix, sizeof prefix - 1) == 0 ? sizeof prefix - 1 : 0;
    snprintf(why, len, "%s", err + skip);
    return -1;
}

/* Neither psql nor Prisma (which reads migration.sql as a UTF-8 string, the
 * mark kept as U+FEFF) strips a byte-order mark: the server reads it as part
 * of the first word and fails with `syntax error at or near "CREATE"`, the
 * mark invisible. Refused, not stripped: a changed file would be applied
 * under the checksum of bytes that did not run. */
const char *sql_byte_order_mark(const char *data, size_t len)
{
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        return "starts with a UTF-8 byte-order mark (U+FEFF), which PostgreSQL reads as part of "
               "the first statement; save it without one (UTF-8 without BOM)";
    if (len >= 2 && (memcmp(data, "\xFF\xFE", 2) == 0 || memcmp(data, "\xFE\xFF", 2) == 0))
        return "starts with a UTF-16 byte-order mark: it is UTF-16 text, which PostgreSQL "
               "cannot read; save it as UTF-8 without BOM";
    return NULL;
}

int migration_script_check(const struct migration_dir *d, const struct migration *m, char *err,
                           size_t errlen)
{
    const char *why = m->sql ? sql_byte_order_mark(m->sql, m->sql_len) : NULL;
    if (!why)
        return 0;
    snprintf(err, errlen, "--migrations: %s/%s/%s %s", d->path, m->name, SCRIPT_FILE, why);
    return -1;
}

void migration_dir_free(struct migration_dir *d)
{
    if (d->prisma8)
        prisma8_dir_free(d->prisma8);
    free(d->prisma8);
    for (size_t i = 0; i < d->count; i++) {
        free(d->items[i].name);
        free(d->items[i].sql);
    }
    free(d->items);
    free(d->path);
    memset(d, 0, sizeof *d);
}

static int sha256(const char *data, size_t len, unsigned char md[32])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

static void to_hex(const unsigned char md[32], int padded, char *out)
{
    char *p = out;
    for (int i = 0; i < 32; i++)
        p += sprintf(p, padded ? "%02x" : "%x", md[i]);
}

int migration_checksum(const char *data, size_t len, char out[MIGRATION_CHECKSUM_LEN + 1])
{
    unsigned char md[32];
    if (sha256(data, len, md) != 0)
        return -1;
    to_hex(md, 1, out);
    return 0;
}

/* data with every `from` replaced by `to` (malloc'ed); *outlen its length. */
static char *replace_all(const char *data, size_t len, const char *from, const char *to,
                         size_t *outlen)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    char *out = malloc(len * 2 + 1), *p = out;
    if (!out)
        return NULL;
    while (n < len) {
        if (n + fl <= len && memcmp(data + n, from, fl) == 0) {
            memcpy(p, to, tl);
            p += tl;
            n += fl;
        } else {
            *p++ = data[n++];
        }
    }
    *outlen = (size_t)(p - out);
    return out;
}

static int variant_matches(const char *data, size_t len, const char *recorded)
{
    unsigned char md[32];
    char hex[MIGRATION_CHECKSUM_LEN + 1];
    size_t rl = strlen(recorded);
    if (sha256(data, len, md) != 0)
        return -1;
    to_hex(md, rl == MIGRATION_CHECKSUM_LEN || rl == 0, hex);
    return strcmp(hex, recorded) == 0;
}

int migration_checksum_matches(const char *data, size_t len, const char *recorded)
{
    static const char *const variants[][2] = {{"\r\n", "\n"}, {"\n", "\r\n"}};
    int rc = variant_matches(data, len, recorded);
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        size_t vlen;
        char *v = replace_all(data, len, variants[i][0], variants[i][1], &vlen);
        rc = v ? variant_matches(v, vlen, recorded) : -1;
        free(v);
    }
    return rc;
}
