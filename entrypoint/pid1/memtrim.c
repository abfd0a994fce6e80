#include "memtrim.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Only code mappings: never written, so dropping their page-table entries
 * loses nothing (MADV_DONTNEED on a written private mapping would discard
 * its changes: data, relocated GOTs). The kernel maps up to 64 KiB around
 * each page fault on a file, so the phases leave far more resident than the
 * supervise loop will ever run; this gives it back. */
long memtrim_release_code(void)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    char line[512];
    long released = 0;
    if (!maps)
        return -1;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char perms[5], path[256] = "";
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255s", &start, &end, perms, path) < 3)
            continue;
        if (strcmp(perms, "r-xp") != 0 || path[0] != '/')
            continue; /* not file-backed code: [vdso], anonymous, data */
        if (madvise((void *)start, end - start, MADV_DONTNEED) == 0)
            released += (long)(end - start);
    }
    fclose(maps);
    return released;
}
