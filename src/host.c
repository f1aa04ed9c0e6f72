/*
 * host.c - owns the Lua state: opens the libraries, registers the C modules
 * and the embedded Lua library, sanitises module loading, runs
 * ncpflash.main under one protected call and turns the result into the
 * process exit code.
 *
 * Module loading (package.searchers, in order):
 *   1. package.preload (the C modules ncpflash.core.*)
 *   2. disk roots (registry NCP_ROOTS: --lua-path DIR/lua, user config dir),
 *      text chunks only. A root is a path (ROOT/lua: any module, as
 *      ROOT/lua/ncpflash/x.lua or ROOT/lua/x.lua) or a table {path=, only={prefix,
 *      ...}}: then only "ncpflash.<prefix>..." modules, as ROOT/<prefix>/x.lua
 *      (ROOT/boards/x.lua, chips/, reset/): a stray ROOT/flash.lua shadows nothing
 *   3. the embedded library (lua/ compiled into the binary)
 * The stock path/cpath searchers are removed: nothing is loaded from the
 * current directory and no native modules are loaded.
 *
 * Signals: SIGINT and SIGTERM are blocked and polled (ncp_interrupt_pending),
 * so no C global is needed; a count hook turns a pending signal into an
 * "interrupted" error while Lua code runs.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "embedded.h"
#include "host.h"

static int error_push(lua_State *L, int fields, const char *code,
		      const char *fmt, va_list ap)
{
	if (fields)
		fields = lua_absindex(L, fields);
	if (strcmp(code, "interrupted") == 0) {
		/* A job leaves the signal pending for its sibling jobs and the
		 * parent (which consumes it once every job has ended); it only
		 * remembers that it has raised it. */
		struct host_job *job = host_job_of(L);
		if (job)
			atomic_store(&job->interrupted, 1);
		else
			ncp_interrupt_consume();
	}
	lua_newtable(L);
	if (fields && lua_istable(L, fields)) {
		lua_pushnil(L);
		while (lua_next(L, fields)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_settable(L, -4);
		}
	}
	lua_pushstring(L, code);
	lua_setfield(L, -2, "code");
	/* C printf formatting (lua_pushvfstring lacks %zu, %02X, %.2f, ...) */
	char small[512];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof small) {
		char *big = lua_newuserdatauv(L, (size_t)n + 1, 0);
		vsnprintf(big, (size_t)n + 1, fmt, ap2);
		lua_pushstring(L, big);
		lua_remove(L, -2);
	} else {
		lua_pushstring(L, n >= 0 ? small : fmt);
	}
	va_end(ap2);
	lua_setfield(L, -2, "message");
	luaL_setmetatable(L, NCP_ERROR_MT);
	return lua_error(L);
}

int ncp_error(lua_State *L, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	return error_push(L, 0, code, fmt, ap); /* does not return */
}

int ncp_error_fields(lua_State *L, int fields, const char *code,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	return error_push(L, fields, code, fmt, ap); /* does not return */
}

static int error_tostring(lua_State *L)
{
	lua_getfield(L, 1, "message");
	if (!lua_isstring(L, -1)) {
		lua_getfield(L, 1, "code");
		lua_pushfstring(L, "error %s", luaL_optstring(L, -1, "?"));
	}
	return 1;
}

static void error_metatable(lua_State *L)
{
	luaL_newmetatable(L, NCP_ERROR_MT);
	lua_pushcfunction(L, error_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushstring(L, "ncpflash.error");
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}

void ncp_register_class(lua_State *L, const char *name, const luaL_Reg *methods,
			lua_CFunction release, lua_CFunction tostring)
{
	if (luaL_newmetatable(L, name)) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
		if (release) {
			lua_pushcfunction(L, release);
			lua_setfield(L, -2, "__gc");
			lua_pushcfunction(L, release);
			lua_setfield(L, -2, "__close");
		}
		if (tostring) {
			lua_pushcfunction(L, tostring);
			lua_setfield(L, -2, "__tostring");
		}
	}
	lua_pop(L, 1);
}

/* --- module searchers ---------------------------------------------------- */

static int load_text_file(lua_State *L, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	fclose(f);
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		return lua_error(L);
	lua_pushstring(L, path);
	return 2;
}

static int search_roots(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	luaL_Buffer b;
	lua_getfield(L, LUA_REGISTRYINDEX, NCP_ROOTS);
	if (!lua_istable(L, -1))
		return 0;
	int roots = lua_gettop(L);
	const char *rel = luaL_gsub(L, name, ".", "/");
	const char *short_rel = strncmp(rel, "ncpflash/", 9) == 0 ? rel + 9 : NULL;
	lua_Integer n = luaL_len(L, roots);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, roots, i);
		int limited = lua_istable(L, -1);
		int allowed = 1;
		if (limited) { /* {path=, only={...}}: the short form under those folders only */
			allowed = 0;
			lua_getfield(L, -1, "only");
			if (short_rel && lua_istable(L, -1)) {
				lua_Integer m = luaL_len(L, -1);
				for (lua_Integer k = 1; k <= m && !allowed; k++) {
					lua_geti(L, -1, k);
					const char *pre = lua_tostring(L, -1);
					allowed = pre && strncmp(short_rel, pre, strlen(pre)) == 0;
					lua_pop(L, 1);
				}
			}
			lua_pop(L, 1);
			lua_getfield(L, -1, "path");
			lua_replace(L, -2);
		}
		const char *root = allowed ? lua_tostring(L, -1) : NULL;
		for (int pass = limited ? 1 : 0; root && pass < 2; pass++) {
			const char *r = pass ? short_rel : rel;
			if (!r)
				continue;
			luaL_buffinit(L, &b);
			luaL_addstring(&b, root);
			luaL_addchar(&b, '/');
			luaL_addstring(&b, r);
			luaL_addstring(&b, ".lua");
			luaL_pushresult(&b);
			int got = load_text_file(L, lua_tostring(L, -1));
			if (got)
				return got;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pushfstring(L, "no file for '%s' in the --lua-path/config roots", name);
	return 1;
}

const struct embedded_file *host_embedded_find(const char *path)
{
	for (const struct embedded_file *e = embedded_files; e->path; e++)
		if (strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static int search_embedded(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *rel = luaL_gsub(L, name, ".", "/");
	const char *path = lua_pushfstring(L, "lua/%s.lua", rel);
	const struct embedded_file *e = host_embedded_find(path);
	if (!e) {
		lua_pushfstring(L, "'%s' is not built in", name);
		return 1;
	}
	const char *chunk = lua_pushfstring(L, "@%s", path);
	if (luaL_loadbufferx(L, (const char *)e->data, e->size, chunk, "t"))
		return lua_error(L);
	lua_pushstring(L, path);
	return 2;
}

static void setup_loading(lua_State *L, const char *lua_path)
{
	static const struct {
		const char *name;
		lua_CFunction open;
	} cmods[] = {
		{"ncpflash.core.sys", luaopen_ncpflash_core_sys},
		{"ncpflash.core.port", luaopen_ncpflash_core_port},
		{"ncpflash.core.isp", luaopen_ncpflash_core_isp},
		{"ncpflash.core.codec", luaopen_ncpflash_core_codec},
		{"ncpflash.core.crypto", luaopen_ncpflash_core_crypto},
		{"ncpflash.core.gpio", luaopen_ncpflash_core_gpio},
		{"ncpflash.core.jobs", luaopen_ncpflash_core_jobs},
		{"ncpflash.core.db", luaopen_ncpflash_core_db},
		{"ncpflash.core.http", luaopen_ncpflash_core_http},
	};
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	for (size_t i = 0; i < sizeof cmods / sizeof cmods[0]; i++) {
		lua_pushcfunction(L, cmods[i].open);
		lua_setfield(L, -2, cmods[i].name);
	}
	lua_pop(L, 1);
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "path");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "cpath");
	/* searchers = { preload, roots, embedded } */
	lua_getfield(L, -1, "searchers");
	lua_rawgeti(L, -1, 1);
	lua_newtable(L);
	lua_insert(L, -2);
	lua_rawseti(L, -2, 1);
	lua_pushcfunction(L, search_roots);
	lua_rawseti(L, -2, 2);
	lua_pushcfunction(L, search_embedded);
	lua_rawseti(L, -2, 3);
	lua_setfield(L, -3, "searchers");
	lua_pop(L, 2);

	lua_newtable(L);
	if (lua_path) {
		lua_pushfstring(L, "%s/lua", lua_path);
		lua_rawseti(L, -2, 1);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, NCP_ROOTS);
}

/* --- running -------------------------------------------------------------- */

struct host_job *host_job_of(lua_State *L)
{
	return *(struct host_job **)lua_getextraspace(L);
}

/* A pending SIGINT/SIGTERM, or (in a jobs thread) the parent's cancel flag,
 * becomes an "interrupted" error while Lua code runs. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct host_job *job = host_job_of(L);
	if (job && atomic_load(&job->interrupted))
		return; /* raised once already: let the cleanup run */
	if (ncp_interrupt_pending() || (job && job->cancel && atomic_load(job->cancel)))
		ncp_error(L, "interrupted", "interrupted");
}

static int msghandler(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TTABLE)
		return 1; /* structured errors keep their shape */
	const char *msg = lua_tostring(L, 1);
	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)",
				      luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

void host_prepare_state(lua_State *L, const char *lua_path)
{
	luaL_openlibs(L);
	error_metatable(L);
	setup_loading(L, lua_path);
}

/* Runs in protected mode: require "ncpflash.main" and call main(argv). */
static int pmain(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = (char **)lua_touserdata(L, 2);
	const char *lua_path = lua_tostring(L, 3);
	host_prepare_state(L, lua_path);
	lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 10000);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "ncpflash.main");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "main");
	lua_createtable(L, argc, 1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_call(L, 1, 1);
	return 1;
}

static const char *find_lua_path(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--lua-path") == 0 && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--lua-path=", 11) == 0)
			return argv[i] + 11;
	}
	return getenv("NCPFLASH_LUA_PATH");
}

int host_run(int argc, char **argv)
{
	struct ncp_os_state st;
	ncp_os_init(&st);
	int code = host_main(argc, argv, NULL);
	ncp_os_done(&st);
	return code;
}

/* One run of ncpflash.main in a fresh Lua state: the process's own run, or
 * one device job (ncpflash.core.jobs runs this in its own thread; `job`
 * then carries the event pipe and the cancel flag).  Nothing here is
 * shared between states. */
int host_main(int argc, char **argv, struct host_job *job)
{
	lua_State *L = luaL_newstate();
	if (!L) {
		fputs("ncpflash: out of memory\n", stderr);
		return 1;
	}
	*(struct host_job **)lua_getextraspace(L) = job;
	lua_pushcfunction(L, msghandler);
	lua_pushcfunction(L, pmain);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	const char *lp = find_lua_path(argc, argv);
	if (lp)
		lua_pushstring(L, lp);
	else
		lua_pushnil(L);
	int status = lua_pcall(L, 3, 1, 1);
	int code;
	if (status == LUA_OK) {
		code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
	} else {
		/* main.lua reports its own errors; this is the last resort
		 * for errors in main.lua itself. */
		if (lua_type(L, -1) == LUA_TTABLE)
			lua_getfield(L, -1, "message");
		fprintf(stderr, "ncpflash: %s\n", luaL_optstring(L, -1, "error"));
		code = 1;
	}
	lua_close(L);
	return code;
}
