/* bandage's own exit codes (sysexits.h where one fits); see README. */
#ifndef BANDAGE_EXITCODES_H
#define BANDAGE_EXITCODES_H

enum exit_code {
    EXIT_OK = 0,
    EXIT_USAGE = 64,        /* EX_USAGE: usage or configuration error */
    EXIT_SCHEMA = 65,       /* EX_DATAERR: the schema file failed to apply */
    EXIT_UNAVAILABLE = 69,  /* EX_UNAVAILABLE: database not up before --wait-timeout */
    EXIT_INTERNAL = 70,     /* EX_SOFTWARE */
    EXIT_HOOK = 73,         /* a --before-reset / --schema-command hook failed */
    EXIT_REFUSED = 77,      /* EX_NOPERM: authentication failed, or no interlock */
    EXIT_NOT_EXECUTABLE = 126,
    EXIT_NOT_FOUND = 127
};

#endif
