#include "memtrim.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Only read-only file mappings without a private copy of any page (the
 * smaps "Anonymous:" count is 0): code and constant data, never written, so
 * dropping their page-table entries loses nothing (MADV_DONTNEED on a
 * written private mapping would discard its changes: data, a relocated
 * RELRO). The kernel maps up to 64 KiB around each page fault on a file, so
 * the phases leave far more resident than the supervise loop will ever use;
 * this gives it back, and MADV_RANDOM keeps later faults to the page asked
 * for where the kernel honours it. */
static long release(unsigned long start, unsigned long end)
{
    if (madvise((void *)start, end - start, MADV_DONTNEED) != 0)
        return 0;
    madvise((void *)start, end - start, MADV_RANDOM);
    return (long)(end - start);
}

long memtrim_release_code(void)
{
    FILE *smaps = fopen("/proc/self/smaps", "re");
    char line[512];
    unsigned long start = 0, end = 0;
    int candidate = 0;
    long released = 0;
    if (!smaps)
        return -1;
    while (fgets(line, sizeof line, smaps)) {
        unsigned long a, b;
        char perms[5], path[256] = "";
        long anonymous;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %255s", &a, &b, perms, path) >= 3) {
            start = a;
            end = b;
            /* not [vdso], anonymous memory or writable data */
            candidate = path[0] == '/' && (strcmp(perms, "r-xp") == 0 ||
                                           strcmp(perms, "r--p") == 0);
        } else if (candidate && sscanf(line, "Anonymous: %ld kB", &anonymous) == 1) {
            if (anonymous == 0)
                released += release(start, end);
            candidate = 0;
        }
    }
    fclose(smaps);
    return released;
}
