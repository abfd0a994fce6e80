/* PID 1 lives as long as the container, but once the app runs it needs only
 * the few pages of its supervise loop. */
#ifndef BANDAGE_MEMTRIM_H
#define BANDAGE_MEMTRIM_H

/* Unmaps from this process the pages of its file-backed code and constant
 * data (r-xp and unwritten r--p mappings: bandage's, and the shared
 * libraries' in a dynamic build) that it touched so far: the database, TLS
 * and HTTP code and tables of the phases.
 * They stay in the page cache and fault back in if ever run again. Returns
 * the number of bytes released from the resident set (estimate), or -1. */
long memtrim_release_code(void);

#endif
