/* Prisma 8's migrations at deploy, without Node: --migrations DIR with a
 * Prisma 8 directory (prisma8_dir.c) applies the path from
 * prisma_contract.marker to the newest contract as Prisma 8's runner does
 * (docs/internals.md "Prisma 8 packages"): one transaction for the run,
 * under Prisma's pg_advisory_xact_lock(hashtext('prisma_8.contract.marker:
 * <schema>:app')); per operation its postchecks (all true: skipped), its
 * prechecks, its statements, its postchecks; then the marker's
 * compare-and-set and the ledger and contract rows. */
#ifndef BANDAGE_PRISMA8_APPLY_H
#define BANDAGE_PRISMA8_APPLY_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "prisma8_dir.h"
#include "query.h"
#include "report/report.h"

/* The phase, after the reset if any: reads the marker outside a
 * transaction (with nothing pending that is all it does), checks the
 * pending statements (--migration-checks), then applies the path in one
 * transaction whose table locks are taken in short attempts (lockretry.c);
 * the marker is read again under Prisma's lock, so a `prisma db migrate`
 * that ran meanwhile is not applied twice. A marker on no path to the
 * newest contract is refused (65). With --plan, prints the packages and
 * their operation classes and changes nothing. Returns the exit code. */
int prisma8_migrate(PGconn *conn, int sfd, const struct config *cfg, struct prisma8_dir *dir,
                    struct deploy_report *report);

/* ---- for the reset ---------------------------------------------------------- */

/* One statement a reset runs: an operation's execute step. */
struct p8_statement {
    const struct p8_package *package;
    const struct p8_operation *op;
    const struct p8_step *step;
};

/* The execute steps of every operation on the path from no contract to the
 * newest, in order (*out malloc'ed). 0, or -1 with err set (no such path;
 * out of memory). */
int prisma8_statements(const struct prisma8_dir *dir, struct p8_statement **out, size_t *n,
                       char *err, size_t errlen);

/* In the reset's transaction, after its statements ran: prisma_contract as
 * Prisma's runner leaves it after applying that same path to an empty
 * database (the marker at the newest contract, one ledger row and contract
 * row per migration); ledger rows of earlier runs stay, as history. 0, or
 * -1 with err set. */
int prisma8_record_all_applied(PGconn *conn, int sfd, struct prisma8_dir *dir,
                               struct db_error *err);

#endif
