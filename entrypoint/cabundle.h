/* Where the system's CA bundle is. A static binary in a scratch image has no
 * compiled-in default that fits every distribution, so look for it. */
#ifndef BANDAGE_CABUNDLE_H
#define BANDAGE_CABUNDLE_H

/* SSL_CERT_FILE if set, else the first readable of the usual locations
 * (Debian/Ubuntu/Alpine, Fedora/RHEL, openSUSE, macOS-style); NULL if none. */
const char *ca_bundle_path(void);

#endif
