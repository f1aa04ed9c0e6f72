/* fuzz_ini.c - libFuzzer entry for the Lua "ini" parser (see fuzz_lua.c). */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ncp_fuzz_lua("ini", data, size))
		abort();
	return 0;
}
