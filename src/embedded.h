/* embedded.h - the Lua library and recipes compiled into the binary
 * (generated as build/gen/embedded.c by tools/embed.c). */
#ifndef NCP_EMBEDDED_H
#define NCP_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
	const char *path; /* relative to the source root: "lua/ncpflash/x.lua" */
	const unsigned char *data;
	size_t size;
};

/* Terminated by an entry whose path is NULL. */
extern const struct embedded_file embedded_files[];

/* The entry for PATH, or NULL (host.c). */
const struct embedded_file *host_embedded_find(const char *path);

#endif
