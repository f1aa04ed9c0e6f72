/* fuzz_ota.c - libFuzzer entry for the Lua "ota" parser (see fuzz_lua.c). */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ncp_fuzz_lua("ota", data, size))
		abort();
	return 0;
}
