/* fuzz/fuzz.h -- the entry point every fuzz target defines.
 *
 * Each fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput. Built with clang -fsanitize=fuzzer it
 * runs under libFuzzer (make fuzz, make fuzz-run); linked with fuzz/standalone.c it replays a
 * corpus as a regression test (make fuzz-regress). A target must accept any bytes: it returns 0,
 * and abort()s only when it finds a real bug (a failed round trip), never on bad input.
 */
#ifndef FUZZ_FUZZ_H
#define FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional one-time setup; fuzz/standalone.c calls it when a target defines it. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
