/* harness.h -- a tiny assert harness: CHECK counts, the last line is "N passed, N failed". */
#ifndef PN_HARNESS_H
#define PN_HARNESS_H
#include <stdio.h>

extern int h_pass, h_fail;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            h_pass++;                                                                \
        } else {                                                                     \
            h_fail++;                                                                \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ == b_) {                                                                 \
            h_pass++;                                                                   \
        } else {                                                                        \
            h_fail++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                          \
        }                                                                               \
    } while (0)

#define RUN(fn)                                 \
    do {                                        \
        int f0_ = h_fail;                       \
        fn();                                   \
        printf("%-44s %s\n", #fn, h_fail == f0_ ? "ok" : "FAILED"); \
        fflush(stdout);                         \
    } while (0)

#define HARNESS_DONE()                                  \
    do {                                                \
        printf("%d passed, %d failed\n", h_pass, h_fail); \
        return h_fail ? 1 : 0;                          \
    } while (0)
#endif
