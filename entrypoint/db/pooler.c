/* Is the server session bandage's own? Through a transaction or statement
 * pooler (PgBouncer, Supavisor, Neon's pooled address) each statement may run
 * in another server process, and a session advisory lock stays with a pooled
 * server connection after bandage has gone: every later start, and Prisma,
 * would wait for it. A quiet pool hands one client the same server process
 * every time, so comparing the server's pid across statements proves
 * nothing. Two facts do:
 *
 * - A pooler answers the login itself: the process id libpq was given
 *   (BackendKeyData, PQbackendPID) is the pooler's invention, not the server
 *   process that runs the statements (pg_backend_pid()). A plain TCP proxy
 *   (Railway's, a cloud SQL proxy) relays the server's own.
 * - Only a session pooler keeps the server process to one client for the
 *   client's life: a second client of a transaction pooler is given the
 *   server process of the first as soon as the first's statement is done
 *   (PgBouncer hands out the last one freed first), and a statement pooler
 *   refuses the second client's BEGIN.
 */
#include "pooler.h"

#include <stdlib.h>
#include <string.h>

#include "exitcodes.h"
#include "log.h"
#include "wait.h"

/* Second clients to try: each holds a transaction, so each takes another of
 * the pool's idle server processes until the first's comes round. */
#define PROBES 3
/* How long a second client may wait for a server process: a session pool
 * that is full keeps it waiting, which says the first's is not free. */
#define PROBE_WAIT_MS 2000

enum verdict { VERDICT_UNKNOWN, VERDICT_OWN, VERDICT_SHARED };

static int server_pid(PGconn *conn, int sfd, int *pid, struct db_error *err)
{
    PGresult *res = db_exec(conn, sfd, "SELECT pg_catalog.pg_backend_pid()", 0, NULL, err);
    if (!res)
        return -1;
    *pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* One second client, holding a transaction: the server process it got
 * (then compared with the first's), or a verdict of its own. */
static enum verdict probe_once(struct session *s, const struct config *cfg, int first,
                               PGconn **probe)
{
    char why[512];
    struct db_error err;
    *probe = wait_connect_once(cfg, s->sfd, why, sizeof why);
    if (!*probe) {
        log_debug("pooler check: a second connection failed (%s)", why);
        return VERDICT_UNKNOWN;
    }
    PGresult *res = db_exec_within(*probe, s->sfd, "BEGIN; SELECT pg_catalog.pg_backend_pid()",
                                   0, NULL, PROBE_WAIT_MS, &err);
    if (!res && err.timed_out)
        return VERDICT_UNKNOWN; /* no free server process: the first keeps its own */
    if (!res) {
        log_debug("pooler check: a second client's BEGIN failed (%s)", err.message);
        return err.stop_signal ? VERDICT_UNKNOWN : VERDICT_SHARED; /* a statement pooler */
    }
    int pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    log_debug("pooler check: a second client got server process %d (the first has %d)", pid,
              first);
    return pid == first ? VERDICT_SHARED : VERDICT_OWN;
}

/* Does the first client keep its server process while others hold theirs? */
static enum verdict probe(struct session *s, const struct config *cfg, int first)
{
    PGconn *probes[PROBES] = {NULL};
    enum verdict v = VERDICT_OWN;
    for (int i = 0; i < PROBES && v == VERDICT_OWN; i++) {
        struct db_error err;
        int again = 0;
        v = probe_once(s, cfg, first, &probes[i]);
        if (v == VERDICT_OWN && server_pid(s->conn, s->sfd, &again, &err) != 0)
            v = VERDICT_UNKNOWN;
        else if (v == VERDICT_OWN && again != first)
            v = VERDICT_SHARED;
    }
    for (int i = 0; i < PROBES; i++)
        PQfinish(probes[i]);
    return v;
}

int pooler_check(struct session *s, const struct config *cfg)
{
    struct db_error err;
    int first = 0;
    if (server_pid(s->conn, s->sfd, &first, &err) != 0)
        return session_failed(s, "checking the connection", &err, EXIT_INTERNAL);
    if (first == PQbackendPID(s->conn))
        return 0;
    log_debug("pooler check: server process %d, announced as %d: a pooler relays the "
              "connection", first, PQbackendPID(s->conn));
    s->report->relayed = 1;
    enum verdict v = probe(s, cfg, first);
    if (v != VERDICT_SHARED) {
        log_info("the connection goes through a session pooler: server process %d stays "
                 "bandage's while it is connected", first);
        return 0;
    }
    log_error("the database connection goes through a transaction or statement pooler (a "
              "second client was given the server process of the first, or refused a "
              "transaction): bandage's locks would not hold there, nor be released with it; "
              "set DIRECT_URL (or --direct-url) to the database's direct, unpooled URL");
    report_add_error(s->report, s->phase ? s->phase : "reset", "pooler",
                     "connection through a transaction pooler; set DIRECT_URL");
    return EXIT_USAGE;
}
