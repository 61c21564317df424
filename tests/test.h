/* test.h - the tiny test protocol every plm test binary follows: one "PASS name" or
 * "FAIL name: why" line per check on stdout; tests/run.sh counts them. */
#ifndef PLM_TEST_H
#define PLM_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures;

#define TEST_CHECK(cond, name, ...)                                                                                    \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            printf("PASS %s\n", name);                                                                                 \
        } else {                                                                                                       \
            printf("FAIL %s: ", name);                                                                                 \
            printf(__VA_ARGS__);                                                                                       \
            printf(" (%s:%d)\n", __FILE__, __LINE__);                                                                  \
            test_failures++;                                                                                           \
        }                                                                                                              \
        fflush(stdout);                                                                                                \
    } while (0)

/* Under the sanitizer build the slow, heavy tests scale down or skip. */
static inline int test_sanitized(void) { return getenv("PLM_SANITIZE") != NULL; }

#define TEST_EXIT() return test_failures ? 1 : 0

#endif
