#ifndef CFUZZDRIVER_H
#define CFUZZDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// Hands the process to libFuzzer with `test` as the target (libFuzzer's LLVMFuzzerRunDriver)
/// and returns its exit status. Only the quick fuzzing build (FUZZ_COVERAGE=1, `scripts/fuzz
/// --ci`) has libFuzzer linked in; elsewhere this returns -1 without doing anything.
int fuzz_run_driver(int argc, char **argv, int (*test)(const uint8_t *data, size_t size));

#endif
