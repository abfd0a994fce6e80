#include "prisma8_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canonjson.h"
#include "exitcodes.h"

#define SPACE "app"
#define SNAPSHOTS "snapshots"
#define REFS "refs"

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, errlen, "--migrations: ");
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t len = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    return out;
}

/* Prisma's readdir file types: a symlink is not a directory. */
static int is_directory(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries Prisma skips in a space's directory. */
static int skipped_entry(const char *name)
{
    return name[0] == '.' || name[0] == '_' || strcmp(name, REFS) == 0;
}

/* 1 when dir holds a directory with a migration.json. */
static int holds_packages(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        char *sub = skipped_entry(e->d_name) ? NULL : join3(dir, e->d_name, NULL);
        char *manifest = sub ? join3(sub, "migration.json", NULL) : NULL;
        found = sub && manifest && is_directory(sub) && exists(manifest);
        free(manifest);
        free(sub);
    }
    if (d)
        closedir(d);
    return found;
}

int prisma8_dir_detect(const char *path)
{
    char *app = join3(path, SPACE, NULL);
    int found = app && is_directory(app) && holds_packages(app);
    free(app);
    return found;
}

/* ---- one package ------------------------------------------------------------- */

static json_t *load(const char *path, const char *shown, char *err, size_t errlen, int *rc)
{
    json_error_t error;
    json_t *v;
    if (!exists(path)) {
        *rc = fail(err, errlen, EXIT_USAGE, "%s is missing: a Prisma 8 migration package "
                   "holds migration.json and ops.json (prisma migration plan writes them)", shown);
        return NULL;
    }
    v = json_load_file(path, CANON_JSON_DECODE, &error);
    if (!v)
        *rc = fail(err, errlen, EXIT_SCHEMA, "%s, line %d: %s: it is not the JSON Prisma wrote; "
                   "restore it from version control", shown, error.line, error.text);
    return v;
}

static const char *string_member(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* migration.json as Prisma's schema has it: exactly these keys. */
static int check_meta(const json_t *meta)
{
    static const char *const keys[] = {"from", "to", "migrationHash", "providedInvariants",
                                       "createdAt"};
    const json_t *from = json_object_get(meta, "from"), *inv;
    size_t i;
    if (!json_is_object(meta) || json_object_size(meta) != 5)
        return -1;
    for (i = 0; i < 5; i++)
        if (!json_object_get(meta, keys[i]))
            return -1;
    if (!(json_is_null(from) || (json_is_string(from) && json_string_length(from) > 0)) ||
        !string_member(meta, "to") || !string_member(meta, "migrationHash") ||
        !string_member(meta, "createdAt"))
        return -1;
    inv = json_object_get(meta, "providedInvariants");
    if (!json_is_array(inv))
        return -1;
    for (i = 0; i < json_array_size(inv); i++)
        if (!json_is_string(json_array_get(inv, i)))
            return -1;
    return 0;
}

/* sha256hex(canon([sha256hex(canon(meta without migrationHash)), sha256hex(canon(ops))])) */
static int package_hash(const json_t *meta, const json_t *ops, char out[CANON_SHA256_HEX + 1])
{
    char h[2][CANON_SHA256_HEX + 1], pair[2 * CANON_SHA256_HEX + 8];
    json_t *stripped = json_copy((json_t *)meta);
    int rc = -1;
    if (stripped && json_object_del(stripped, "migrationHash") == 0 &&
        canon_json_sha256(stripped, h[0]) == 0 && canon_json_sha256(ops, h[1]) == 0) {
        snprintf(pair, sizeof pair, "[\"%s\",\"%s\"]", h[0], h[1]);
        rc = canon_sha256_hex(pair, strlen(pair), out);
    }
    json_decref(stripped);
    return rc;
}

static int by_utf16(const void *a, const void *b)
{
    return canon_utf16_compare(*(const char *const *)a, *(const char *const *)b);
}

/* Text for a parameter: strings as they are; numbers and booleans as
 * node-postgres would send them. -1 for arrays and objects. */
static int param_text(json_t *params, size_t i)
{
    json_t *p = json_array_get(params, i);
    char number[CANON_NUMBER_MAX];
    if (json_is_string(p) || json_is_null(p))
        return 0;
    if (json_is_boolean(p))
        return json_array_set_new(params, i, json_string(json_is_true(p) ? "true" : "false"));
    if (!json_is_number(p))
        return -1;
    canon_number(json_number_value(p), number);
    return json_array_set_new(params, i, json_string(number));
}

static int read_steps(json_t *list, struct p8_step **out, int *n)
{
    size_t count = json_array_size(list);
    if (!json_is_array(list))
        return -1;
    *n = (int)count;
    *out = calloc(count + 1, sizeof **out);
    if (!*out)
        return -1;
    for (size_t i = 0; i < count; i++) {
        json_t *step = json_array_get(list, i), *params = json_object_get(step, "params");
        struct p8_step *s = &(*out)[i];
        s->sql = string_member(step, "sql");
        s->description = string_member(step, "description");
        if (!s->description)
            s->description = "";
        if (!s->sql || (params && !json_is_array(params)))
            return -1;
        s->n_params = (int)json_array_size(params);
        s->params = calloc((size_t)s->n_params + 1, sizeof *s->params);
        if (!s->params)
            return -1;
        for (int k = 0; k < s->n_params; k++) {
            if (param_text(params, (size_t)k) != 0)
                return -1;
            s->params[k] = json_string_value(json_array_get(params, (size_t)k));
        }
    }
    return 0;
}

/* The ledger's record of an operation whose postchecks held before it ran
 * (Prisma's createPostcheckPreSatisfiedSkipRecord). */
static char *skip_record(json_t *op)
{
    static const char *const kept[] = {"id", "label", "summary", "operationClass", "target"};
    json_t *rec = json_object(), *meta = json_object_get(op, "meta");
    json_t *merged = json_is_object(meta) ? json_copy(meta) : json_object();
    struct jbuf b;
    char *out = NULL;
    for (size_t i = 0; rec && i < sizeof kept / sizeof *kept; i++)
        if (json_object_get(op, kept[i]))
            json_object_set(rec, kept[i], json_object_get(op, kept[i]));
    json_t *runner = json_object();
    json_object_set_new(runner, "skipped", json_true());
    json_object_set_new(runner, "reason", json_string("postcheck_pre_satisfied"));
    json_object_set_new(merged, "runner", runner); /* json_pack would link its parser too */
    json_object_set_new(rec, "precheck", json_array());
    json_object_set_new(rec, "execute", json_array());
    json_object_set(rec, "postcheck", json_object_get(op, "postcheck"));
    json_object_set_new(rec, "meta", merged);
    jbuf_init(&b);
    if (rec && canon_json(rec, &b) == 0)
        out = strdup(b.data);
    jbuf_free(&b);
    json_decref(rec);
    return out;
}

static char *canonical(const json_t *v)
{
    struct jbuf b;
    char *out = NULL;
    jbuf_init(&b);
    if (canon_json(v, &b) == 0)
        out = strdup(b.data);
    jbuf_free(&b);
    return out;
}

static int is_class(const char *cls)
{
    return cls && (strcmp(cls, "additive") == 0 || strcmp(cls, "widening") == 0 ||
                   strcmp(cls, "destructive") == 0 || strcmp(cls, "data") == 0);
}

/* One operation; the records for the ledger are made before the
 * parameters are turned into text. */
static int read_operation(json_t *op, struct p8_operation *o)
{
    o->id = string_member(op, "id");
    o->label = string_member(op, "label");
    o->cls = string_member(op, "operationClass");
    if (!json_is_object(op) || !o->id || !o->label || !is_class(o->cls) ||
        (json_object_get(op, "invariantId") && !string_member(op, "invariantId")))
        return -1;
    o->json = canonical(op);
    o->skip_json = skip_record(op);
    if (!o->json || !o->skip_json)
        return -1;
    return read_steps(json_object_get(op, "precheck"), &o->pre, &o->n_pre) == 0 &&
                   read_steps(json_object_get(op, "execute"), &o->exec, &o->n_exec) == 0 &&
                   read_steps(json_object_get(op, "postcheck"), &o->post, &o->n_post) == 0
               ? 0 : -1;
}

/* providedInvariants must be the operations' invariantIds, sorted, each once. */
static int check_invariants(struct p8_package *p)
{
    json_t *inv = json_object_get(p->meta, "providedInvariants");
    size_t n = 0;
    p->invariants = calloc(p->n_ops + 1, sizeof *p->invariants);
    if (!p->invariants)
        return -1;
    for (size_t i = 0; i < p->n_ops; i++) {
        const char *id = string_member(json_array_get(p->ops_json, i), "invariantId");
        for (size_t k = 0; id && k < n; k++)
            if (strcmp(p->invariants[k], id) == 0)
                return -1;
        if (id)
            p->invariants[n++] = id;
    }
    qsort(p->invariants, n, sizeof *p->invariants, by_utf16);
    p->n_invariants = n;
    if (json_array_size(inv) != n)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(json_string_value(json_array_get(inv, i)), p->invariants[i]) != 0)
            return -1;
    return 0;
}

static int verify_package(struct p8_package *p, const char *shown, char *err, size_t errlen)
{
    char hash[CANON_SHA256_HEX + 1];
    if (check_meta(p->meta) != 0)
        return fail(err, errlen, EXIT_SCHEMA, "%s/migration.json is not a Prisma 8 manifest "
                    "(from, to, migrationHash, providedInvariants, createdAt and no more): "
                    "restore it from version control", shown);
    p->to = string_member(p->meta, "to");
    p->from = string_member(p->meta, "from") ? string_member(p->meta, "from") : P8_EMPTY;
    p->hash = string_member(p->meta, "migrationHash");
    p->created_at = string_member(p->meta, "createdAt");
    if (!json_is_array(p->ops_json))
        return fail(err, errlen, EXIT_SCHEMA, "%s/ops.json is not a list of operations: "
                    "restore it from version control", shown);
    if (package_hash(p->meta, p->ops_json, hash) != 0)
        return fail(err, errlen, EXIT_INTERNAL, "%s: hashing the package failed (out of memory, "
                    "or OpenSSL)", shown);
    if (strcmp(hash, p->hash) != 0)
        return fail(err, errlen, EXIT_SCHEMA, "%s: migrationHash %.12s… does not match the "
                    "package (its migration.json and ops.json hash to %.12s…): it was changed "
                    "after Prisma planned it; restore it from version control, or plan the "
                    "change as a new migration (npx prisma migration plan); nothing was applied",
                    shown, p->hash, hash);
    return 0;
}

static int read_operations(struct p8_package *p, const char *shown, char *err, size_t errlen)
{
    p->n_ops = json_array_size(p->ops_json);
    p->ops = calloc(p->n_ops + 1, sizeof *p->ops);
    if (!p->ops)
        return fail(err, errlen, EXIT_INTERNAL, "out of memory");
    for (size_t i = 0; i < p->n_ops; i++)
        if (read_operation(json_array_get(p->ops_json, i), &p->ops[i]) != 0)
            return fail(err, errlen, EXIT_SCHEMA, "%s/ops.json: operation %zu is not one "
                        "Prisma 8 writes (id, label, operationClass, precheck, execute and "
                        "postcheck lists of sql with text parameters): restore it from version "
                        "control", shown, i + 1);
    if (check_invariants(p) != 0)
        return fail(err, errlen, EXIT_SCHEMA, "%s: providedInvariants in migration.json are "
                    "not the invariantIds of ops.json (Prisma's "
                    "MIGRATION.PROVIDED_INVARIANTS_MISMATCH): restore the package from version "
                    "control", shown);
    return 0;
}

static int read_package(const char *path, struct p8_package *p, char *err, size_t errlen)
{
    char *dir = join3(path, SPACE, p->name), *meta = dir ? join3(dir, "migration.json", NULL) : NULL;
    char *ops = dir ? join3(dir, "ops.json", NULL) : NULL;
    char shown[1024];
    int rc = 0;
    snprintf(shown, sizeof shown, "%s/%s/%s", path, SPACE, p->name);
    if (!meta || !ops)
        rc = fail(err, errlen, EXIT_INTERNAL, "out of memory");
    if (rc == 0 && !(p->meta = load(meta, meta, err, errlen, &rc)))
        rc = rc ? rc : EXIT_INTERNAL;
    if (rc == 0 && !(p->ops_json = load(ops, ops, err, errlen, &rc)))
        rc = rc ? rc : EXIT_INTERNAL;
    if (rc == 0)
        rc = verify_package(p, shown, err, errlen);
    if (rc == 0)
        rc = read_operations(p, shown, err, errlen);
    free(ops);
    free(meta);
    free(dir);
    return rc;
}

/* ---- the directory ----------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct p8_package *)a)->name, ((const struct p8_package *)b)->name);
}

static int list_packages(const char *path, struct prisma8_dir *d, char *err, size_t errlen)
{
    char *app = join3(path, SPACE, NULL);
    DIR *dir = app ? opendir(app) : NULL;
    struct dirent *e;
    size_t cap = 0;
    int rc = 0;
    if (!dir)
        rc = fail(err, errlen, EXIT_USAGE, "cannot list %s/%s: %s", path, SPACE, strerror(errno));
    while (rc == 0 && (e = readdir(dir))) {
        char *sub = skipped_entry(e->d_name) ? NULL : join3(app, e->d_name, NULL);
        if (sub && is_directory(sub)) {
            if (d->count == cap) {
                struct p8_package *grown = realloc(d->items, (cap = cap ? cap * 2 : 32) *
                                                             sizeof *grown);
                if (!grown)
                    rc = fail(err, errlen, EXIT_INTERNAL, "out of memory");
                else
                    d->items = grown;
            }
            if (rc == 0) {
                memset(&d->items[d->count], 0, sizeof *d->items);
                if (!(d->items[d->count++].name = strdup(e->d_name)))
                    rc = fail(err, errlen, EXIT_INTERNAL, "out of memory");
            }
        }
        free(sub);
    }
    if (dir)
        closedir(dir);
    free(app);
    if (rc == 0 && d->count > 1)
        qsort(d->items, d->count, sizeof *d->items, by_name);
    return rc;
}

/* Extension spaces (DIR/<space>/<dir>/migration.json) are applied by
 * Prisma before the app's, each under its own marker: bandage does not. */
static int refuse_other_spaces(const char *path, char *err, size_t errlen)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    int rc = 0;
    while (dir && rc == 0 && (e = readdir(dir))) {
        if (skipped_entry(e->d_name) || strcmp(e->d_name, SPACE) == 0 ||
            strcmp(e->d_name, SNAPSHOTS) == 0)
            continue;
        char *sub = join3(path, e->d_name, NULL);
        if (sub && is_directory(sub) && holds_packages(sub))
            rc = fail(err, errlen, EXIT_USAGE, "%s holds the migrations of contract space \"%s\" "
                      "(an extension's): bandage applies the app space only; apply them with "
                      "npx prisma db migrate", sub, e->d_name);
        free(sub);
    }
    if (dir)
        closedir(dir);
    return rc;
}

/* ---- snapshots ----------------------------------------------------------------- */

static int index_key(const char *key, unsigned long long *value)
{
    size_t len = strlen(key);
    if (len == 0 || len > 10 || (len > 1 && key[0] == '0') || strspn(key, "0123456789") != len)
        return 0;
    *value = strtoull(key, NULL, 10);
    return *value <= 4294967294ULL;
}

/* storage's first namespace as JavaScript enumerates an object (array-index
 * keys first, in numeric order, then the others as written), Prisma's
 * unbound one left out: Object.keys(...).find(id => id !== "__unbound__"). */
static char *first_namespace(const json_t *contract)
{
    const json_t *ns = json_object_get(json_object_get(contract, "storage"), "namespaces");
    const char *key, *first = NULL, *lowest = NULL;
    unsigned long long value, best = 0;
    json_t *member;
    json_object_foreach((json_t *)ns, key, member) {
        if (index_key(key, &value) && (!lowest || value < best)) {
            lowest = key;
            best = value;
        } else if (!first && !index_key(key, &value) && strcmp(key, "__unbound__") != 0) {
            first = key;
        }
    }
    return strdup(lowest ? lowest : first ? first : "__unbound__");
}

/* Prisma reads a snapshot tolerantly: one that is missing, does not parse
 * or is not of its hash is no snapshot (json stays NULL). 0, or -1 when
 * memory ran out. */
static int read_snapshot(const char *path, const char *hash, struct p8_contract *c)
{
    char *file = strchr(hash, '/') || hash[0] == '.' ? NULL
                                                      : join3(path, SNAPSHOTS, hash);
    char *json_path = file ? join3(file, "contract.json", NULL) : NULL;
    json_t *v = json_path ? json_load_file(json_path, CANON_JSON_DECODE, NULL) : NULL;
    const char *stored = json_string_value(
        json_object_get(json_object_get(v, "storage"), "storageHash"));
    int rc = (c->hash = strdup(hash)) ? 0 : -1;
    if (rc == 0 && v && stored && strcmp(stored, hash) == 0) {
        c->json = canonical(v);
        c->profile_hash = string_member(v, "profileHash") ? strdup(string_member(v, "profileHash"))
                                                          : NULL;
        c->schema = first_namespace(v);
        rc = c->json && c->schema ? 0 : -1;
    }
    json_decref(v);
    free(json_path);
    free(file);
    return rc;
}

/* Snapshots are read when first asked for (a run needs those of the
 * contracts it reaches, and a start with nothing pending only the newest's:
 * a long history's snapshots are megabytes). Room for one per package. */
static int make_snapshot_cache(struct prisma8_dir *d, char *err, size_t errlen)
{
    d->contracts = calloc(d->count + 1, sizeof *d->contracts);
    return d->contracts ? 0 : fail(err, errlen, EXIT_INTERNAL, "out of memory");
}

/* ---- the graph ------------------------------------------------------------------- */

int prisma8_is_node(const struct prisma8_dir *d, const char *hash)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->items[i].from, hash) == 0 || strcmp(d->items[i].to, hash) == 0)
            return 1;
    return 0;
}

static int leaves(const struct prisma8_dir *d, const char *hash)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->items[i].from, hash) == 0)
            return 1;
    return 0;
}

/* refs/head.json, Prisma's head ref, when the project has one: its hash. */
static int read_head_ref(const char *path, struct prisma8_dir *d, char *err, size_t errlen)
{
    char *file = join3(path, SPACE, REFS "/head.json");
    json_t *ref = file && exists(file) ? json_load_file(file, CANON_JSON_DECODE, NULL) : NULL;
    const char *hash = string_member(ref, "hash");
    int rc = 0;
    if (ref && (!hash || !prisma8_is_node(d, hash)))
        rc = fail(err, errlen, EXIT_SCHEMA, "%s names no contract of the migrations: point it "
                  "at one (npx prisma migration ref), or remove it", file);
    else if (ref && json_array_size(json_object_get(ref, "invariants")) > 0)
        rc = fail(err, errlen, EXIT_USAGE, "%s requires invariants: bandage does not choose "
                  "paths by invariants; apply with npx prisma db migrate", file);
    for (size_t i = 0; ref && rc == 0 && i < d->count; i++)
        if (strcmp(d->items[i].to, hash) == 0)
            d->head = d->items[i].to;
    json_decref(ref);
    free(file);
    return rc;
}

/* The newest contract: the one `to` no migration leaves; when every one is
 * left (a rollback migration last), the `to` of the newest migration. */
static int find_head(const char *path, struct prisma8_dir *d, char *err, size_t errlen)
{
    const struct p8_package *first = NULL, *newest = NULL;
    int rc = read_head_ref(path, d, err, errlen);
    if (rc != 0 || d->head || d->count == 0)
        return rc;
    for (size_t i = 0; i < d->count; i++) {
        const struct p8_package *p = &d->items[i];
        if (!newest || strcmp(p->created_at, newest->created_at) > 0)
            newest = p;
        if (leaves(d, p->to) || (first && strcmp(first->to, p->to) == 0))
            continue;
        if (first)
            return fail(err, errlen, EXIT_SCHEMA, "the migrations in %s/%s end in two contracts: "
                        "%.12s… (migration %s) and %.12s… (migration %s): the history branched; "
                        "plan one branch again on top of the other (npx prisma migration plan "
                        "--from %s), then deploy", path, SPACE, first->to, first->name, p->to,
                        p->name, first->name);
        first = p;
    }
    d->head = first ? first->to : newest->to;
    return 0;
}

static int check_head_snapshot(const char *path, struct prisma8_dir *d, char *err, size_t errlen)
{
    if (!d->head)
        return 0;
    d->head_contract = prisma8_contract(d, d->head);
    if (d->head_contract)
        return 0;
    return fail(err, errlen, EXIT_USAGE, "%s/%s/%s/contract.json, the newest contract's snapshot, "
                "is missing or is not of that contract: bandage records its profile hash in "
                "prisma_contract.marker; restore it from version control (npx prisma migration "
                "plan writes it)", path, SNAPSHOTS, d->head);
}

int prisma8_dir_read(const char *path, struct prisma8_dir *out, char *err, size_t errlen)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (!(out->path = strdup(path)))
        rc = fail(err, errlen, EXIT_INTERNAL, "out of memory");
    if (rc == 0)
        rc = refuse_other_spaces(path, err, errlen);
    if (rc == 0)
        rc = list_packages(path, out, err, errlen);
    for (size_t i = 0; rc == 0 && i < out->count; i++)
        rc = read_package(path, &out->items[i], err, errlen);
    if (rc == 0)
        rc = make_snapshot_cache(out, err, errlen);
    if (rc == 0)
        rc = find_head(path, out, err, errlen);
    if (rc == 0)
        rc = check_head_snapshot(path, out, err, errlen);
    if (rc != 0)
        prisma8_dir_free(out);
    return rc;
}

static void free_contract(struct p8_contract *c)
{
    free(c->hash);
    free(c->json);
    free(c->profile_hash);
    free(c->schema);
    memset(c, 0, sizeof *c);
}

const struct p8_contract *prisma8_contract(struct prisma8_dir *d, const char *hash)
{
    struct p8_contract *c = NULL;
    for (size_t i = 0; i < d->n_contracts && !c; i++)
        if (strcmp(d->contracts[i].hash, hash) == 0)
            c = &d->contracts[i];
    if (!c && d->n_contracts < d->count + 1) {
        c = &d->contracts[d->n_contracts];
        if (read_snapshot(d->path, hash, c) == 0) {
            d->n_contracts++;
        } else { /* out of memory: as if there were none */
            free_contract(c);
            c = NULL;
        }
    }
    return c && c->json ? c : NULL;
}

static void free_steps(struct p8_step *s, int n)
{
    for (int i = 0; s && i < n; i++)
        free(s[i].params);
    free(s);
}

static void free_package(struct p8_package *p)
{
    for (size_t k = 0; p->ops && k < p->n_ops; k++) {
        free_steps(p->ops[k].pre, p->ops[k].n_pre);
        free_steps(p->ops[k].exec, p->ops[k].n_exec);
        free_steps(p->ops[k].post, p->ops[k].n_post);
        free(p->ops[k].json);
        free(p->ops[k].skip_json);
    }
    free(p->ops);
    free(p->invariants);
    json_decref(p->meta);
    json_decref(p->ops_json);
    free(p->name);
}

void prisma8_dir_free(struct prisma8_dir *d)
{
    for (size_t i = 0; i < d->count; i++)
        free_package(&d->items[i]);
    for (size_t i = 0; i < d->n_contracts; i++)
        free_contract(&d->contracts[i]);
    free(d->contracts);
    free(d->items);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* ---- paths ------------------------------------------------------------------------ */

/* Prisma's tie-break between two migrations out of one contract. */
static int tie_break(const void *x, const void *y, void *dir)
{
    const struct prisma8_dir *d = dir;
    const struct p8_package *a = &d->items[*(const size_t *)x];
    const struct p8_package *b = &d->items[*(const size_t *)y];
    int c = strcmp(a->created_at, b->created_at);
    if (c == 0)
        c = strcmp(a->to, b->to);
    return c ? c : strcmp(a->hash, b->hash);
}

static int queued(const char *const *queue, size_t n, const char *hash)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(queue[i], hash) == 0)
            return 1;
    return 0;
}

static size_t walk_back(const size_t *via, const size_t *parent, size_t at, size_t *path)
{
    size_t len = 0;
    for (size_t k = at; k != 0; k = parent[k])
        path[len++] = via[k];
    for (size_t i = 0; i < len / 2; i++) {
        size_t t = path[i];
        path[i] = path[len - 1 - i];
        path[len - 1 - i] = t;
    }
    return len;
}

int prisma8_path(const struct prisma8_dir *d, const char *from, const char *to, size_t *path,
                 size_t *len)
{
    size_t n = d->count, q = 1, *order = malloc((n + 1) * sizeof *order);
    size_t *via = malloc((n + 2) * sizeof *via), *parent = malloc((n + 2) * sizeof *parent);
    const char **queue = malloc((n + 2) * sizeof *queue);
    int found = 0;
    *len = 0;
    if (!order || !via || !parent || !queue)
        found = -1;
    for (size_t i = 0; found == 0 && i < n; i++)
        order[i] = i;
    if (found == 0)
        qsort_r(order, n, sizeof *order, tie_break, (void *)d);
    if (found == 0)
        queue[0] = from;
    for (size_t at = 0; found == 0 && at < q; at++) {
        if (strcmp(queue[at], to) == 0) {
            *len = walk_back(via, parent, at, path);
            found = 1;
        }
        for (size_t k = 0; found == 0 && k < n; k++) {
            const struct p8_package *p = &d->items[order[k]];
            if (strcmp(p->from, queue[at]) != 0 || queued(queue, q, p->to))
                continue;
            queue[q] = p->to;
            via[q] = order[k];
            parent[q++] = at;
        }
    }
    free(order);
    free(via);
    free(parent);
    free(queue);
    return found;
}
