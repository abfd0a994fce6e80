/* Substring assertions shared by the cmocka unit tests (include after
 * <cmocka.h>). */
#ifndef BANDAGE_TEST_ASSERT_TEXT_H
#define BANDAGE_TEST_ASSERT_TEXT_H

#include <string.h>

#define assert_contains(hay, needle)                                                  \
    do {                                                                              \
        const char *h_ = (hay), *n_ = (needle);                                       \
        if (!h_ || !strstr(h_, n_))                                                   \
            fail_msg("expected \"%s\" to contain \"%s\"", h_ ? h_ : "(null)", n_);    \
    } while (0)

#define assert_not_contains(hay, needle)                                              \
    do {                                                                              \
        const char *h_ = (hay), *n_ = (needle);                                       \
        if (h_ && strstr(h_, n_))                                                     \
            fail_msg("expected \"%s\" not to contain \"%s\"", h_, n_);                \
    } while (0)

#endif
