/* fuzz_frames.c -- libFuzzer target: every input runs against a fresh stack with an
 * established connection (see fuzz_common.h). Crashes, leaks and UB are the findings. */
#include <stdio.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz z;
    if (size < 1)
        return 0;
    if (fz_setup(&z, data[0]) < 0) {
        fprintf(stderr, "fuzz: setup failed\n");
        abort();
    }
    fz_run(&z, data + 1, size - 1);
    if (z.l.bad_tx)
        abort();
    fz_teardown(&z);
    return 0;
}
