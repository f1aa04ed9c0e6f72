/*
 * l_sys.c - ncpflash.core.sys: what Lua lacks for a command-line tool.
 *
 *   now() -> s                monotonic clock
 *   sleep(s)                  interruptible (raises "interrupted")
 *   isatty(fd) -> bool        term_cols() -> n (0 when unknown)
 *   listdir(path) -> names | nil, err      (sorted, without . and ..)
 *   stat(path) -> {type=, size=, mtime=} | nil, err
 *   realpath(path) -> p | nil, err         mkdirs(path) -> true | nil, err
 *   create_new(path) -> file | nil, err, exists   a new file, never an existing one (O_EXCL):
 *                             a Lua file handle open for writing; exists = the path was taken
 *   replace(from, to) -> true | nil, err   atomic rename over an existing file
 *                             (rename(2); MoveFileEx on Windows)
 *   getenv(name)              pid()
 *   spawn(argv, {stdin=, stdout=, stderr=, append=}) -> pid  (paths; "null")
 *                             argv may be a string: a command line for the
 *                             platform's shell (/bin/sh -c; cmd.exe /c)
 *   wait(pid, timeout) -> status, rusage | nil  (status 128+sig when killed;
 *                             rusage = {utime=, stime=, maxrss_kib=} of the child)
 *   kill(pid [, "TERM"|"KILL"|"INT"])
 *   platform                  "linux" | "windows" | "macos" | "posix"
 *   path_sep                  "/" or "\\" (Windows; "/" is accepted there too)
 *   error(code, message, fields)  new_error(...) -> e   is_error(v) -> bool
 *   interrupted() -> bool     embedded([prefix]) -> list of embedded paths
 *   embedded_source(path) -> text | nil
 *   set_roots(list)           module search roots (see host.c)
 *   version
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedded.h"
#include "host.h"

#ifndef NCP_VERSION
#define NCP_VERSION "unknown"
#endif

static int l_now(lua_State *L)
{
	lua_pushnumber(L, ncp_now());
	return 1;
}

static int l_sleep(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	double deadline = ncp_now() + (s > 0 ? s : 0);
	for (;;) {
		if (ncp_interrupt_pending())
			return ncp_error(L, "interrupted", "interrupted");
		double left = deadline - ncp_now();
		if (left <= 0)
			return 0;
		/* the interrupt is polled, not delivered: short slices */
		ncp_nap(left > 0.05 ? 0.05 : left);
	}
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, ncp_isatty((int)luaL_checkinteger(L, 1)));
	return 1;
}

static int l_term_cols(lua_State *L)
{
	lua_pushinteger(L, ncp_term_cols());
	return 1;
}

static int fail(lua_State *L, const char *what)
{
	int e = errno;
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, strerror(e));
	return 2;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int l_listdir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	DIR *d = opendir(path);
	if (!d)
		return fail(L, path);
	lua_newtable(L);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		lua_pushstring(L, de->d_name);
		lua_rawseti(L, -2, ++n);
	}
	closedir(d);
	/* sort in Lua-visible order via table.sort equivalent */
	const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, -2, i);
		names[i - 1] = lua_tostring(L, -1);
		lua_pop(L, 1); /* still referenced by the table */
	}
	qsort(names, (size_t)n, sizeof(char *), cmp_str);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int l_stat(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
#if defined(_WIN32) /* the default struct stat has a 32-bit size there: an 8 GB file would look small */
	struct _stat64 st;
	if (_stat64(path, &st))
#else
	struct stat st;
	if (stat(path, &st))
#endif
		return fail(L, path);
	lua_createtable(L, 0, 3);
	lua_pushstring(L, S_ISREG(st.st_mode) ? "file" :
			  S_ISDIR(st.st_mode) ? "dir" : "other");
	lua_setfield(L, -2, "type");
	lua_pushinteger(L, (lua_Integer)st.st_size);
	lua_setfield(L, -2, "size");
	lua_pushinteger(L, (lua_Integer)st.st_mtime);
	lua_setfield(L, -2, "mtime");
	return 1;
}

static int l_realpath(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char *r = ncp_realpath(path);
	if (!r)
		return fail(L, path);
	lua_pushstring(L, r);
	free(r);
	return 1;
}

static int close_stream(lua_State *L)
{
	luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
	int ok = fclose(p->f) == 0;
	return luaL_fileresult(L, ok, NULL);
}

static int l_create_new(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	luaL_Stream *p = lua_newuserdatauv(L, sizeof *p, 0);
	p->closef = NULL; /* not a file yet: __gc does nothing */
	luaL_setmetatable(L, LUA_FILEHANDLE);
	int fd = ncp_open(path, O_WRONLY | O_CREAT | O_EXCL, 0644); /* children do not inherit it */
	if (fd < 0) {
		int e = errno;
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(e));
		lua_pushboolean(L, e == EEXIST);
		return 3;
	}
	p->f = fdopen(fd, "wb");
	if (!p->f) {
		int e = errno;
		close(fd);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(e));
		lua_pushboolean(L, 0);
		return 3;
	}
	p->closef = close_stream;
	return 1;
}

/* Where the first directory to create starts: after "/", "C:\", "\\host\share\". */
static size_t path_root(const char *p)
{
	size_t i = 0;
	if (ncp_is_sep('\\') && ncp_is_sep(p[0]) && ncp_is_sep(p[1])) {
		int seps = 0; /* \\server\share\ */
		for (i = 2; p[i] && seps < 2; i++)
			if (ncp_is_sep(p[i]))
				seps++;
		return i;
	}
	if (ncp_is_sep('\\') && p[0] && p[1] == ':')
		i = 2;
	while (ncp_is_sep(p[i]))
		i++;
	return i;
}

static int l_mkdirs(lua_State *L)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	char *buf = lua_newuserdatauv(L, len + 1, 0);
	memcpy(buf, path, len + 1);
	for (size_t i = path_root(buf); i <= len; i++) {
		if (!ncp_is_sep(buf[i]) && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		struct stat st;
		if (i > 0 && !ncp_is_sep(buf[i - 1]) && ncp_mkdir(buf) &&
		    !(errno == EEXIST || (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))))
			return fail(L, buf);
		buf[i] = c;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_replace(lua_State *L)
{
	const char *from = luaL_checkstring(L, 1);
	const char *to = luaL_checkstring(L, 2);
	if (ncp_replace(from, to)) {
		int e = errno;
		lua_pushnil(L);
		lua_pushfstring(L, "cannot replace %s with %s: %s", to, from, strerror(e));
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_getenv(lua_State *L)
{
	lua_pushstring(L, getenv(luaL_checkstring(L, 1)));
	return 1;
}

static int l_pid(lua_State *L)
{
	lua_pushinteger(L, ncp_getpid());
	return 1;
}

static const char *opt_path(lua_State *L, int opts, const char *field)
{
	if (!opts)
		return NULL;
	lua_getfield(L, opts, field);
	const char *p = lua_tostring(L, -1); /* stays alive in the opts table */
	lua_pop(L, 1);
	return p;
}

static int l_spawn(lua_State *L)
{
	int opts = lua_istable(L, 2) ? 2 : 0;
	struct ncp_child c = {0};
	char err[512];
	long long id;

	if (lua_type(L, 1) == LUA_TSTRING) {
		c.shell = lua_tostring(L, 1);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_Integer n = luaL_len(L, 1);
		luaL_argcheck(L, n >= 1, 1, "empty argv");
		const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_geti(L, 1, i);
			argv[i - 1] = luaL_checkstring(L, -1);
			lua_pop(L, 1); /* the string stays alive in the argv table */
		}
		argv[n] = NULL;
		c.argv = argv;
	}
	c.in = opt_path(L, opts, "stdin");
	c.out = opt_path(L, opts, "stdout");
	c.err = opt_path(L, opts, "stderr");
	if (opts) {
		lua_getfield(L, opts, "append");
		c.append = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	if (ncp_spawn(&c, &id, err, sizeof err)) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushinteger(L, (lua_Integer)id);
	return 1;
}

static int l_wait(lua_State *L)
{
	lua_Integer pid = luaL_checkinteger(L, 1);
	double timeout = luaL_optnumber(L, 2, -1);
	double deadline = ncp_now() + timeout;
	for (;;) {
		int st;
		struct ncp_usage u;
		int r = ncp_wait((long long)pid, &st, &u);
		if (r > 0) {
			lua_pushinteger(L, st);
			/* the child's resource usage (benchmarks) */
			lua_createtable(L, 0, 3);
			lua_pushnumber(L, u.utime);
			lua_setfield(L, -2, "utime");
			lua_pushnumber(L, u.stime);
			lua_setfield(L, -2, "stime");
			lua_pushinteger(L, (lua_Integer)u.maxrss_kib);
			lua_setfield(L, -2, "maxrss_kib");
			return 2;
		}
		if (r < 0)
			return fail(L, "waitpid");
		if (timeout >= 0 && ncp_now() >= deadline)
			return 0;
		ncp_nap(0.005);
	}
}

static int l_kill(lua_State *L)
{
	static const char *const names[] = {"TERM", "KILL", "INT", NULL};
	lua_Integer pid = luaL_checkinteger(L, 1);
	int how = luaL_checkoption(L, 2, "TERM", names);
	lua_pushboolean(L, ncp_kill((long long)pid, how) == 0);
	return 1;
}

static int l_error(lua_State *L)
{
	const char *code = luaL_checkstring(L, 1);
	const char *msg = luaL_optstring(L, 2, code);
	return ncp_error_fields(L, lua_istable(L, 3) ? 3 : 0, code, "%s", msg);
}

static int l_new_error(lua_State *L)
{
	lua_settop(L, 3);
	lua_pushcfunction(L, l_error);
	lua_insert(L, 1);
	lua_pcall(L, 3, 1, 0);
	return 1;
}

static int l_is_error(lua_State *L)
{
	int is = 0;
	if (lua_getmetatable(L, 1)) {
		luaL_getmetatable(L, NCP_ERROR_MT);
		is = lua_rawequal(L, -1, -2);
	}
	lua_pushboolean(L, is);
	return 1;
}

static int l_interrupted(lua_State *L)
{
	lua_pushboolean(L, ncp_interrupt_pending());
	return 1;
}

static int l_embedded(lua_State *L)
{
	size_t plen;
	const char *prefix = luaL_optlstring(L, 1, "", &plen);
	lua_newtable(L);
	int n = 0;
	for (const struct embedded_file *e = embedded_files; e->path; e++)
		if (strncmp(e->path, prefix, plen) == 0) {
			lua_pushstring(L, e->path);
			lua_rawseti(L, -2, ++n);
		}
	return 1;
}

static int l_embedded_source(lua_State *L)
{
	const struct embedded_file *e = host_embedded_find(luaL_checkstring(L, 1));
	if (!e)
		return 0;
	lua_pushlstring(L, (const char *)e->data, e->size);
	return 1;
}

static int l_set_roots(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushvalue(L, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, NCP_ROOTS);
	return 0;
}

static int l_get_roots(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, NCP_ROOTS);
	return 1;
}

int luaopen_ncpflash_core_sys(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"now", l_now},           {"sleep", l_sleep},
		{"isatty", l_isatty},     {"term_cols", l_term_cols},
		{"listdir", l_listdir},   {"stat", l_stat},
		{"realpath", l_realpath}, {"mkdirs", l_mkdirs},
		{"create_new", l_create_new},
		{"replace", l_replace},
		{"getenv", l_getenv},     {"pid", l_pid},
		{"spawn", l_spawn},       {"wait", l_wait},
		{"kill", l_kill},         {"error", l_error},
		{"new_error", l_new_error}, {"is_error", l_is_error},
		{"interrupted", l_interrupted}, {"embedded", l_embedded},
		{"embedded_source", l_embedded_source},
		{"set_roots", l_set_roots}, {"get_roots", l_get_roots},
		{NULL, NULL}};
	luaL_newlib(L, fns);
	lua_pushliteral(L, NCP_VERSION);
	lua_setfield(L, -2, "version");
#if defined(_WIN32)
	lua_pushliteral(L, "windows");
#elif defined(__linux__)
	lua_pushliteral(L, "linux");
#elif defined(__APPLE__)
	lua_pushliteral(L, "macos");
#else
	lua_pushliteral(L, "posix");
#endif
	lua_setfield(L, -2, "platform");
	lua_pushstring(L, ncp_is_sep('\\') ? "\\" : "/");
	lua_setfield(L, -2, "path_sep");
	luaL_getmetatable(L, NCP_ERROR_MT);
	lua_setfield(L, -2, "error_mt");
	return 1;
}
