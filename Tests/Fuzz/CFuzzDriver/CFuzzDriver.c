#include "CFuzzDriver.h"

#ifdef FUZZ_DRIVER_MAIN
// libFuzzer's entry for programs that keep their own main (compiler-rt, FuzzerDriver.cpp).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int fuzz_run_driver(int argc, char **argv, int (*test)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, test);
}
#else
int fuzz_run_driver(int argc, char **argv, int (*test)(const uint8_t *data, size_t size)) {
    (void)argc;
    (void)argv;
    (void)test;
    return -1;
}
#endif
