/*
 * l_port.c - ncpflash.core.port, the Lua binding of the transports.
 *
 *   port.open(url [, opts]) -> p      url: device path | pty path |
 *                                     rfc2217://host:port | socket://host:port
 *       opts: baud (115200), trace (false | "stderr" | file path, appended),
 *             trace_label (string), connect_timeout (s, default 3)
 *   port.list() -> { {name=, description=, transport=, vid=, pid=,
 *                     manufacturer=, product=, serial=, by_id=}, ... }
 *
 *   p:read(n [, timeout=1.0]) -> string (short = deadline passed; never raises
 *                                on timeout)
 *   p:expect(bytes [, timeout=1.0]) -> true, consumed | false, seen
 *   p:write(bytes)                 whole string or raise (deadline 5 s + 2x wire time)
 *   p:drain([timeout=5]) -> true | false, reason
 *   p:flush_input()
 *   p:set_baud(n) -> true | false, reason      p:baud() -> n
 *   p:set_dtr(b) / p:set_rts(b) / p:set_lines{dtr=, rts=} -> true | false, reason
 *   p:send_break([seconds=0.25]) -> true | false, reason
 *   p:info() -> {url=, kind=, baud=, lines=, ...}
 *   p:close()      also __close and __gc (one idempotent release)
 *
 * I/O failures raise error objects with code "port" (fields url=, and for
 * open failures reason = "missing"|"busy"|"refused"|"protocol"|"io");
 * SIGINT/SIGTERM during a wait raises code "interrupted"; a malformed URL
 * raises code "usage". Misuse (bad arguments, closed port) raises a string.
 */
#include "l_port.h"
#include "host.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define DEFAULT_TIMEOUT 1.0
#define CHUNK 256

static struct port **toport(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, NCP_PORT_MT);
}

struct port *ncp_checkport(lua_State *L, int idx)
{
	struct port **pp = toport(L, idx);

	if (!*pp)
		luaL_error(L, "attempt to use a closed port");
	return *pp;
}

static int raise_rc(lua_State *L, struct port *p, int rc)
{
	lua_createtable(L, 0, 1);
	lua_pushstring(L, p->url);
	lua_setfield(L, -2, "url");
	if (rc == PORT_EINTR)
		return ncp_error_fields(L, lua_gettop(L), "interrupted",
					"interrupted while using %s", p->url);
	return ncp_error_fields(L, lua_gettop(L), "port", "%s",
				port_errmsg(p));
}

size_t ncp_port_read(lua_State *L, struct port *p, uint8_t *buf, size_t n,
		     double timeout_s)
{
	int r = port_read(p, buf, n, timeout_s);

	if (r < 0)
		raise_rc(L, p, r);
	return (size_t)r;
}

void ncp_port_write(lua_State *L, struct port *p, const uint8_t *buf, size_t n)
{
	int r = port_write(p, buf, n, port_write_timeout(p, n));

	if (r < 0)
		raise_rc(L, p, r);
}

/* Line-style result: true | false, reason | raise. */
static int line_result(lua_State *L, struct port *p, int rc)
{
	if (rc == PORT_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (rc == PORT_UNSUPPORTED || rc == PORT_ETIMEDOUT) {
		lua_pushboolean(L, 0);
		lua_pushstring(L, port_errmsg(p));
		return 2;
	}
	return raise_rc(L, p, rc);
}

static double opt_timeout(lua_State *L, int idx, double def)
{
	double t = luaL_optnumber(L, idx, def);

	luaL_argcheck(L, t >= 0, idx, "timeout must be >= 0");
	return t;
}

/* ---- methods ---- */

static int p_read(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2);
	double t = opt_timeout(L, 3, DEFAULT_TIMEOUT);
	luaL_Buffer b;

	luaL_argcheck(L, n >= 0 && n <= (1 << 26), 2, "count out of range");
	char *buf = luaL_buffinitsize(L, &b, (size_t)n);
	size_t got = ncp_port_read(L, p, (uint8_t *)buf, (size_t)n, t);
	luaL_pushresultsize(&b, got);
	return 1;
}

static int p_expect(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	size_t m;
	const char *want = luaL_checklstring(L, 2, &m);
	double deadline = ncp_now() + opt_timeout(L, 3, DEFAULT_TIMEOUT);
	luaL_Buffer b;

	luaL_argcheck(L, m > 0, 2, "empty byte string");
	luaL_buffinit(L, &b);
	for (;;) {
		double left = deadline - ncp_now();
		char *dst = luaL_prepbuffsize(&b, CHUNK);
		int r = port_read_some(p, (uint8_t *)dst, CHUNK,
				       left > 0 ? left : 0);
		if (r < 0)
			return raise_rc(L, p, r);
		size_t before = luaL_bufflen(&b);
		luaL_addsize(&b, (size_t)r);
		size_t len = luaL_bufflen(&b);
		const char *all = luaL_buffaddr(&b);
		size_t from = before >= m ? before - m + 1 : 0;
		const char *hit = r > 0 ? ncp_memmem(all + from, len - from, want, m)
					: NULL;
		if (hit) {
			size_t end = (size_t)(hit - all) + m;
			if (port_unread(p, (const uint8_t *)all + end,
					len - end) < 0)
				return raise_rc(L, p, PORT_EIO);
			luaL_buffsub(&b, len - end);
			luaL_pushresult(&b);
			lua_pushboolean(L, 1);
			lua_insert(L, -2);
			return 2;
		}
		if (r == 0 && ncp_now() >= deadline) {
			luaL_pushresult(&b);
			lua_pushboolean(L, 0);
			lua_insert(L, -2);
			return 2;
		}
	}
}

static int p_write(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);

	ncp_port_write(L, p, (const uint8_t *)s, n);
	return 0;
}

static int p_drain(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	double t = opt_timeout(L, 2, 5.0);

	return line_result(L, p, port_drain(p, t));
}

static int p_flush_input(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	int rc = port_flush_input(p);

	if (rc < 0)
		return raise_rc(L, p, rc);
	return 0;
}

static int p_set_baud(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	lua_Integer baud = luaL_checkinteger(L, 2);

	luaL_argcheck(L, baud > 0 && baud <= 100000000, 2, "baud out of range");
	return line_result(L, p, port_set_baud(p, (int)baud));
}

static int p_baud(lua_State *L)
{
	lua_pushinteger(L, ncp_checkport(L, 1)->baud);
	return 1;
}

static int p_set_dtr(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);

	luaL_checkany(L, 2);
	return line_result(L, p, port_set_lines(p, lua_toboolean(L, 2), -1));
}

static int p_set_rts(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);

	luaL_checkany(L, 2);
	return line_result(L, p, port_set_lines(p, -1, lua_toboolean(L, 2)));
}

static int opt_line(lua_State *L, int t, const char *name)
{
	int v;

	if (lua_getfield(L, t, name) == LUA_TNIL)
		v = -1;
	else {
		luaL_argcheck(L, lua_isboolean(L, -1), t,
			      "dtr/rts must be booleans");
		v = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	return v;
}

static int p_set_lines(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);

	luaL_checktype(L, 2, LUA_TTABLE);
	int dtr = opt_line(L, 2, "dtr"), rts = opt_line(L, 2, "rts");
	return line_result(L, p, port_set_lines(p, dtr, rts));
}

static int p_send_break(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	double s = opt_timeout(L, 2, 0.25);

	return line_result(L, p, port_send_break(p, s));
}

static void set_str(lua_State *L, const char *k, const char *v)
{
	if (v) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, k);
	}
}

static void set_int(lua_State *L, const char *k, int v)
{
	if (v >= 0) {
		lua_pushinteger(L, v);
		lua_setfield(L, -2, k);
	}
}

static int p_info(lua_State *L)
{
	struct port *p = ncp_checkport(L, 1);
	struct port_info in;

	port_get_info(p, &in);
	lua_createtable(L, 0, 12);
	set_str(L, "url", p->url);
	set_str(L, "kind", p->kind);
	set_int(L, "baud", p->baud);
	lua_pushboolean(L, p->lines);
	lua_setfield(L, -2, "lines");
	lua_pushboolean(L, p->trace != NULL);
	lua_setfield(L, -2, "trace");
	set_str(L, "name", in.name);
	set_str(L, "description", in.description);
	set_str(L, "manufacturer", in.manufacturer);
	set_str(L, "product", in.product);
	set_str(L, "serial", in.serial);
	set_str(L, "by_id", in.by_id);
	set_str(L, "low_latency", in.low_latency);
	set_int(L, "usb_vid", in.usb_vid);
	set_int(L, "usb_pid", in.usb_pid);
	set_str(L, "host", in.host);
	set_int(L, "tcp_port", in.tcp_port);
	return 1;
}

static int p_release(lua_State *L)
{
	struct port **pp = toport(L, 1);

	if (*pp) {
		struct port *p = *pp;
		*pp = NULL; /* mark closed before releasing */
		port_close(p);
	}
	return 0;
}

static int p_tostring(lua_State *L)
{
	struct port **pp = toport(L, 1);

	if (*pp)
		lua_pushfstring(L, "port %s (%s)", (*pp)->url, (*pp)->kind);
	else
		lua_pushliteral(L, "port (closed)");
	return 1;
}

/* ---- module functions ---- */

static const char *const failure_names[] = {
	[PORT_FAIL_IO] = "io",           [PORT_FAIL_MISSING] = "missing",
	[PORT_FAIL_BUSY] = "busy",       [PORT_FAIL_REFUSED] = "refused",
	[PORT_FAIL_URL] = "url",         [PORT_FAIL_PROTO] = "protocol",
	[PORT_FAIL_INTERRUPTED] = "interrupted",
};

static int m_open(lua_State *L)
{
	const char *url = luaL_checkstring(L, 1);
	struct port_opts o = {.baud = 115200, .connect_timeout = 3.0};
	const char *trace = NULL;
	char err[768];
	enum port_open_failure why;

	if (!lua_isnoneornil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		if (lua_getfield(L, 2, "baud") != LUA_TNIL) {
			lua_Integer b = luaL_checkinteger(L, -1);
			luaL_argcheck(L, b > 0 && b <= 100000000, 2,
				      "opts.baud out of range");
			o.baud = (int)b;
		}
		if (lua_getfield(L, 2, "trace") == LUA_TSTRING)
			trace = lua_tostring(L, -1);
		else
			luaL_argcheck(L, !lua_toboolean(L, -1), 2,
				      "opts.trace must be false, \"stderr\" or a path");
		if (lua_getfield(L, 2, "trace_label") != LUA_TNIL)
			o.trace_label = luaL_checkstring(L, -1);
		if (lua_getfield(L, 2, "connect_timeout") != LUA_TNIL)
			o.connect_timeout = luaL_checknumber(L, -1);
	}

	struct port **pp = lua_newuserdatauv(L, sizeof *pp, 0);
	*pp = NULL;
	luaL_setmetatable(L, NCP_PORT_MT);

	if (trace && strcmp(trace, "stderr") == 0) {
		o.trace = stderr;
	} else if (trace) {
		o.trace = fopen(trace, "a");
		if (!o.trace)
			return ncp_error(L, "port", "cannot open trace file %s",
					 trace);
		o.trace_owned = 1;
	}
	struct port *p = port_open(url, &o, err, sizeof err, &why);
	if (!p) {
		if (o.trace_owned)
			fclose(o.trace);
		lua_createtable(L, 0, 2);
		lua_pushstring(L, url);
		lua_setfield(L, -2, "url");
		lua_pushstring(L, failure_names[why]);
		lua_setfield(L, -2, "reason");
		return ncp_error_fields(L, lua_gettop(L),
					why == PORT_FAIL_URL ? "usage" :
					why == PORT_FAIL_INTERRUPTED ? "interrupted" :
					"port", "%s", err);
	}
	*pp = p;
	return 1;
}

/* port.list(): sorted by name */
static void add_entry(void *ctx, const struct port_listing *e)
{
	lua_State *L = ctx;
	lua_Integer n = (lua_Integer)luaL_len(L, -1), at = n + 1;

	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i);
		lua_getfield(L, -1, "name");
		int before = strcmp(e->name, lua_tostring(L, -1)) < 0;
		lua_pop(L, 2);
		if (before) {
			at = i;
			break;
		}
	}
	for (lua_Integer i = n; i >= at; i--) {
		lua_geti(L, -1, i);
		lua_seti(L, -2, i + 1);
	}
	lua_createtable(L, 0, 9);
	set_str(L, "name", e->name);
	set_str(L, "description", e->description);
	set_str(L, "transport", e->transport);
	set_int(L, "vid", e->usb_vid);
	set_int(L, "pid", e->usb_pid);
	set_str(L, "manufacturer", e->manufacturer);
	set_str(L, "product", e->product);
	set_str(L, "serial", e->serial);
	set_str(L, "by_id", e->by_id);
	lua_seti(L, -2, at);
}

static int m_list(lua_State *L)
{
	char err[256];

	lua_newtable(L);
	if (port_list(add_entry, L, err, sizeof err) != PORT_OK)
		return ncp_error(L, "port", "%s", err);
	return 1;
}

static const luaL_Reg methods[] = {
	{"read", p_read},
	{"expect", p_expect},
	{"write", p_write},
	{"drain", p_drain},
	{"flush_input", p_flush_input},
	{"set_baud", p_set_baud},
	{"baud", p_baud},
	{"set_dtr", p_set_dtr},
	{"set_rts", p_set_rts},
	{"set_lines", p_set_lines},
	{"send_break", p_send_break},
	{"info", p_info},
	{"close", p_release},
	{NULL, NULL},
};

static const luaL_Reg funcs[] = {
	{"open", m_open},
	{"list", m_list},
	{NULL, NULL},
};

int luaopen_ncpflash_core_port(lua_State *L)
{
	ncp_register_class(L, NCP_PORT_MT, methods, p_release, p_tostring);
	luaL_getmetatable(L, NCP_PORT_MT);
	lua_pushliteral(L, "ncpflash.port");
	lua_setfield(L, -2, "__metatable"); /* getmetatable(p) == "ncpflash.port" */
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
