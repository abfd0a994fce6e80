#include "cabundle.h"

#include <stdlib.h>
#include <unistd.h>

const char *ca_bundle_path(void)
{
    static const char *const candidates[] = {
        "/etc/ssl/certs/ca-certificates.crt",               /* Debian, Ubuntu, Alpine, distroless */
        "/etc/pki/tls/certs/ca-bundle.crt",                 /* Fedora, RHEL */
        "/etc/ssl/ca-bundle.pem",                           /* openSUSE */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* RHEL 7+ */
        "/etc/ssl/cert.pem",                                /* Alpine, BSDs */
        NULL};
    const char *env = getenv("SSL_CERT_FILE");
    if (env && env[0])
        return env;
    for (int i = 0; candidates[i]; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}
