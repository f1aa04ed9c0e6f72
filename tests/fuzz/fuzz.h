/*
 * fuzz.h - the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Each ncp_fuzz_X() runs one input and returns 0 when the code under test
 * behaved (including a clean refusal of the input), or -1 after printing
 * a finding to stderr.  The libFuzzer entry points (one binary per target,
 * `make fuzz`) abort() on -1; build/tests/test_fuzz_regress replays
 * the files in tests/fuzz/regress/TARGET and tests/fuzz/corpus/TARGET through the
 * same functions in `make test`.
 */
#ifndef NCP_FUZZ_H
#define NCP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int ncp_fuzz_isp(const uint8_t *data, size_t n);
int ncp_fuzz_rfc2217(const uint8_t *data, size_t n);
/* target: "ini", "bfpt", "bfnp", "efuse", "ota" (see fuzz_lua.c) */
int ncp_fuzz_lua(const char *target, const uint8_t *data, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
