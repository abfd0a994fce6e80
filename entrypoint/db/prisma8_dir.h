/* A Prisma 8 migrations directory on disk, read and verified as Prisma 8's
 * own loader reads it (docs/internals.md "Prisma 8 packages"):
 * DIR/app/<dir>/{migration.json, ops.json} (the app space's packages; the
 * runner never reads migration.ts), DIR/app/refs/head.json when there is
 * one, DIR/snapshots/<hash>/contract.json. No database here. */
#ifndef BANDAGE_PRISMA8_DIR_H
#define BANDAGE_PRISMA8_DIR_H

#include <stddef.h>

#include <jansson.h>

/* Prisma's name for the contract before a baseline: a `from` of null. */
#define P8_EMPTY "empty"

/* One statement of an operation: sql with its parameters ($1...). */
struct p8_step {
    const char *description; /* "" when the package gives none */
    const char *sql;
    int n_params;
    const char **params;     /* text; NULL for a JSON null */
};

struct p8_operation {
    const char *id, *label;
    const char *cls;         /* operationClass: additive, widening, destructive, data */
    struct p8_step *pre, *exec, *post;
    int n_pre, n_exec, n_post;
    char *json;              /* the operation as the ledger records it when run */
    char *skip_json;         /* ...and when skipped (its postchecks held already) */
};

struct p8_package {
    char *name;              /* the directory */
    const char *from;        /* P8_EMPTY for a baseline */
    const char *to;
    const char *hash;        /* migrationHash, verified against the package */
    const char *created_at;
    const char **invariants; /* providedInvariants, sorted */
    size_t n_invariants;
    struct p8_operation *ops;
    size_t n_ops;
    json_t *meta, *ops_json; /* the files, owned: the strings above point into them */
};

/* A contract snapshot, read when first asked for (prisma8_contract). */
struct p8_contract {
    char *hash;
    char *json;              /* canonical JSON: prisma_contract.contract.contract_json;
                                NULL when there is none that reads and is of this hash */
    char *profile_hash;      /* its profileHash; NULL when it has none */
    char *schema;            /* its storage's first namespace: Prisma's lock key names it */
};

struct prisma8_dir {
    char *path;
    struct p8_package *items; /* in byte order of name */
    size_t count;
    struct p8_contract *contracts; /* the snapshots asked for so far */
    size_t n_contracts;
    const char *head;         /* the newest contract: refs/head.json's, else the one `to`
                                 that no migration leaves; NULL when there are no packages */
    const struct p8_contract *head_contract;
};

/* 1 when path is a Prisma 8 migrations directory (path/app holds a
 * directory with a migration.json), else 0. */
int prisma8_dir_detect(const char *path);

/* Reads and verifies path: every package's migrationHash (canonjson.c) and
 * providedInvariants, one newest contract, its snapshot. 0, or an exit
 * code with err set to one line naming the file and the fix: 64 for what
 * cannot be read (a missing file, another contract space), 65 for a
 * package that does not verify or a graph without one newest contract. */
int prisma8_dir_read(const char *path, struct prisma8_dir *out, char *err, size_t errlen);
void prisma8_dir_free(struct prisma8_dir *d);

/* The snapshot of contract hash (read now if it was not yet), NULL when it
 * has none that reads and whose storage hash is its name. */
const struct p8_contract *prisma8_contract(struct prisma8_dir *d, const char *hash);

/* 1 when hash is a contract of the graph (P8_EMPTY is, with a baseline). */
int prisma8_is_node(const struct prisma8_dir *d, const char *hash);

/* Prisma's path from contract `from` to `to`: the shortest (BFS), each
 * contract's migrations tried in the order createdAt, to, migrationHash.
 * path (room for d->count) gets the packages' indexes in order. 1 when
 * there is one (*len 0 when from is to), 0 when there is none, -1 when
 * memory ran out. */
int prisma8_path(const struct prisma8_dir *d, const char *from, const char *to, size_t *path,
                 size_t *len);

#endif
