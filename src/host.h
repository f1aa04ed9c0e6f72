/*
 * host.h - what every C module shares with the Lua host.
 *
 * Error shape (documented in README "Lua API"): misuse raises a plain
 * string error (luaL_argerror & co).  Expected failures raise an error
 * *table* {code = "...", message = "...", [more fields]} whose metatable
 * is the registry entry NCP_ERROR_MT (it has __tostring).  The host maps
 * `code` to the process exit code; nothing below main() calls exit().
 *
 * Stable codes: "usage" (2), "handshake" (3), "port" (3), "timeout" (4),
 * "device" (4), "protocol" (4), "verify" (5), "safety" (6), "input" (7),
 * "interrupted" (130); anything else exits 1.
 */
#ifndef NCP_HOST_H
#define NCP_HOST_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#define NCP_ERROR_MT "ncpflash.error"
/* Registry key of the module search roots (host.c searcher, sys.set_roots). */
#define NCP_ROOTS "ncpflash.roots"

/* Raise an expected failure: pushes {code=code, message=formatted} with the
 * error metatable and calls lua_error (does not return). */
int ncp_error(lua_State *L, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like ncp_error, but first sets the fields of the table at stack index
 * `fields` (a table, or 0 for none) into the error. */
int ncp_error_fields(lua_State *L, int fields, const char *code,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Monotonic clock in seconds. */
double ncp_now(void);

/* Non-zero when SIGINT/SIGTERM is pending (the host blocks them and polls;
 * long waits in C should slice their waits to <= 100 ms and check this,
 * then raise ncp_error(L, "interrupted", ...)). Does not consume it. */
int ncp_interrupt_pending(void);

/* Little-endian packing helpers. */
static inline void ncp_put_le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void ncp_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t ncp_get_le16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t ncp_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Host entry (main.c calls only this). Returns the process exit code. */
int host_run(int argc, char **argv);

/* A device job run by ncpflash.core.jobs (src/l_jobs.c) in its own thread
 * with its own Lua state. */
struct host_job {
	int event_fd;             /* write end of the pipe for JSON event lines */
	int index;                /* 1-based job number */
	const _Atomic int *cancel; /* non-zero: Lua code raises "interrupted" */
	_Atomic int interrupted;  /* set once the job has raised "interrupted" */
};

/* Run ncpflash.main(argv) in a fresh Lua state; job is NULL for the
 * process itself.  Returns the exit code.  Signals must already be blocked
 * in the calling thread (host_run does it; jobs threads inherit it). */
int host_main(int argc, char **argv, struct host_job *job);

/* Make a fresh state what ncpflash.main expects: standard libraries, the
 * error metatable, the C modules in package.preload and the searchers
 * (lua_path/lua, then the embedded files).  host_main does this; the fuzz
 * harnesses (tests/fuzz) use it to call the Lua parsers directly.  Call it
 * in protected mode (it may raise on out-of-memory). */
void host_prepare_state(lua_State *L, const char *lua_path);

/* The job a Lua state runs for, or NULL. */
struct host_job *host_job_of(lua_State *L);

/* luaopen_ functions of the C modules, registered by host.c in
 * package.preload under the names given. */
int luaopen_ncpflash_core_sys(lua_State *L);   /* "ncpflash.core.sys"   */
int luaopen_ncpflash_core_port(lua_State *L);  /* "ncpflash.core.port"  */
int luaopen_ncpflash_core_isp(lua_State *L);   /* "ncpflash.core.isp"   */
int luaopen_ncpflash_core_codec(lua_State *L); /* "ncpflash.core.codec" */
int luaopen_ncpflash_core_crypto(lua_State *L); /* "ncpflash.core.crypto" */
int luaopen_ncpflash_core_gpio(lua_State *L);  /* "ncpflash.core.gpio"  */
int luaopen_ncpflash_core_jobs(lua_State *L);  /* "ncpflash.core.jobs"  */
int luaopen_ncpflash_core_db(lua_State *L);    /* "ncpflash.core.db"    */
int luaopen_ncpflash_core_http(lua_State *L);  /* "ncpflash.core.http"  */

#endif
