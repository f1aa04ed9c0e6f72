/*
 * l_gpio.c - ncpflash.core.gpio: GPIO lines for the BOOT / CHIP_EN straps,
 * through one of two backends:
 *
 *   kernel  Linux GPIO character devices, uAPI v2 (never sysfs). Linux
 *           only: elsewhere request() raises a "port" error that says so.
 *   fake    no hardware at all: every level is recorded with its monotonic
 *           time (lines:log()). For tests and dry runs of a wiring; it
 *           runs on every platform. Chosen with opts.fake = true (the Lua
 *           side sets it for NCPFLASH_GPIO_FAKE=FILE, docs/api/connect.md).
 *
 *   gpio.request(chip, offsets, values, opts) -> lines
 *       chip     "/dev/gpiochip0" (or "gpiochip0")
 *       offsets  {17, 27}   line offsets on that chip
 *       values   {true, false}   initial output levels (pin high = true)
 *       opts     {consumer = "ncpflash", fake = false}
 *     kernel: requests the lines as outputs with one GPIO_V2_GET_LINE_IOCTL;
 *     they stay ours until lines:close() (or garbage collection), when the
 *     kernel releases them (the levels are then up to the driver).
 *   lines:set{[i] = bool, ...}   i = index into `offsets`; one
 *     GPIO_V2_LINE_SET_VALUES_IOCTL for all changed lines (same instant)
 *   lines:get() -> {bool, ...}  the levels last set
 *   lines:log() -> {{t=, offset=, value=}, ...}  (fake only; {} otherwise): the
 *     levels at the request, then every change (kept after close)
 *   lines:info() -> {chip=, offsets={...}, fake=bool}
 *   lines:close()
 *   gpio.available   true where the kernel backend exists
 *
 * Why the uAPI v2 ioctls and not libgpiod: the whole job is one request
 * and a handful of set-values calls (~100 lines), the header ships with
 * linux-libc-dev, and libgpiod's C API changed incompatibly between 1.x
 * and 2.x (both are in current distributions), which would mean two code
 * paths and one more run-time dependency. v2 needs Linux >= 5.10.
 *
 * Errors: code "port" (chip missing, permission, line busy, not Linux),
 * with the errno text; misuse raises a string error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"

#if defined(__linux__)
#include <fcntl.h>
#include <linux/gpio.h>
#include <sys/ioctl.h>
#include <unistd.h>
#define HAVE_GPIO_V2 1
#else
#define HAVE_GPIO_V2 0
#endif

#define GPIO_MT "ncpflash.gpio.lines"
#define MAX_LINES 8
#define MAX_LOG 4096

struct gpio_event {
	double t;
	unsigned offset;
	int value;
};

struct gpio_lines;

/* A backend: request (raises on failure), set (0, or -1 with errno),
 * release (idempotent). */
struct gpio_backend {
	int fake;
	void (*request)(lua_State *L, struct gpio_lines *g, const char *consumer);
	int (*set)(struct gpio_lines *g, uint64_t mask, uint64_t bits);
	void (*release)(struct gpio_lines *g);
};

struct gpio_lines {
	const struct gpio_backend *be;
	int fd; /* kernel: line request fd, -1 when closed */
	int closed;
	unsigned n;
	unsigned offsets[MAX_LINES];
	int values[MAX_LINES];
	char chip[64];
	struct gpio_event *log; /* fake: user value 1 of the userdata */
	size_t log_len;
};

static struct gpio_lines *check_lines(lua_State *L)
{
	struct gpio_lines *g = luaL_checkudata(L, 1, GPIO_MT);
	if (g->closed)
		luaL_error(L, "gpio lines: used after close");
	return g;
}

static void record(struct gpio_lines *g, unsigned i, int v)
{
	if (!g->log || g->log_len >= MAX_LOG)
		return;
	g->log[g->log_len].t = ncp_now();
	g->log[g->log_len].offset = g->offsets[i];
	g->log[g->log_len].value = v;
	g->log_len++;
}

#if HAVE_GPIO_V2
static void chip_path(const char *chip, char *out, size_t len)
{
	if (chip[0] == '/')
		snprintf(out, len, "%s", chip);
	else
		snprintf(out, len, "/dev/%s", chip);
}

static void kernel_request(lua_State *L, struct gpio_lines *g, const char *consumer)
{
	char path[96];
	chip_path(g->chip, path, sizeof path);
	int cfd = open(path, O_RDWR | O_CLOEXEC);
	if (cfd < 0) {
		int e = errno;
		ncp_error(L, "port", "cannot open GPIO chip %s: %s%s", path, strerror(e),
				 e == EACCES ? " (add yourself to the group owning it, often 'gpio')"
					     : "");
	}
	struct gpio_v2_line_request req;
	memset(&req, 0, sizeof req);
	for (unsigned i = 0; i < g->n; i++) {
		req.offsets[i] = g->offsets[i];
		if (g->values[i])
			req.config.attrs[0].mask |= (uint64_t)1 << i;
	}
	req.num_lines = g->n;
	snprintf(req.consumer, sizeof req.consumer, "%s", consumer);
	req.config.flags = GPIO_V2_LINE_FLAG_OUTPUT;
	req.config.num_attrs = 1;
	req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
	req.config.attrs[0].attr.values = req.config.attrs[0].mask;
	if (ioctl(cfd, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
		int e = errno;
		close(cfd);
		ncp_error(L, "port", "cannot request lines on %s: %s%s", path, strerror(e),
				 e == EBUSY ? " (another program or a kernel driver owns a line)"
				 : e == EINVAL ? " (offset beyond the chip's lines, or kernel < 5.10 "
						 "without GPIO uAPI v2)"
					       : "");
	}
	close(cfd); /* the request fd keeps the lines */
	g->fd = req.fd;
}

static int kernel_set(struct gpio_lines *g, uint64_t mask, uint64_t bits)
{
	struct gpio_v2_line_values v = {.bits = bits, .mask = mask};
	return ioctl(g->fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &v);
}

static void kernel_release(struct gpio_lines *g)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}
#else
static void kernel_request(lua_State *L, struct gpio_lines *g, const char *consumer)
{
	(void)g;
	(void)consumer;
	ncp_error(L, "port", "GPIO lines (--reset gpio:...) need the Linux GPIO character "
		  "devices; this system has none (use DTR/RTS, rfc2217:// or --reset cmd:)");
}

static int kernel_set(struct gpio_lines *g, uint64_t mask, uint64_t bits)
{
	(void)g;
	(void)mask;
	(void)bits;
	errno = ENOSYS;
	return -1;
}

static void kernel_release(struct gpio_lines *g)
{
	(void)g;
}
#endif

static const struct gpio_backend kernel_backend = {
	0, kernel_request, kernel_set, kernel_release,
};

/* The fake backend: the log is a second userdata kept as user value 1 of
 * the lines, so it lives exactly as long as they do. */
static void fake_request(lua_State *L, struct gpio_lines *g, const char *consumer)
{
	(void)consumer;
	g->log = lua_newuserdatauv(L, MAX_LOG * sizeof *g->log, 0);
	lua_setiuservalue(L, -2, 1);
	for (unsigned i = 0; i < g->n; i++)
		record(g, i, g->values[i]);
}

static int fake_set(struct gpio_lines *g, uint64_t mask, uint64_t bits)
{
	for (unsigned i = 0; i < g->n; i++) {
		int v = (bits >> i) & 1;
		if ((mask >> i) & 1 && g->values[i] != v)
			record(g, i, v); /* the log holds changes only */
	}
	return 0;
}

static void fake_release(struct gpio_lines *g)
{
	(void)g;
}

static const struct gpio_backend fake_backend = {
	1, fake_request, fake_set, fake_release,
};


static int l_request(lua_State *L)
{
	const char *chip = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	luaL_checktype(L, 3, LUA_TTABLE);
	int fake = 0;
	const char *consumer = "ncpflash";
	if (lua_istable(L, 4)) {
		lua_getfield(L, 4, "fake");
		fake = lua_toboolean(L, -1);
		lua_getfield(L, 4, "consumer");
		if (lua_isstring(L, -1))
			consumer = lua_tostring(L, -1);
		lua_pop(L, 2);
	}
	lua_Integer n = luaL_len(L, 2);
	if (n < 1 || n > MAX_LINES)
		return luaL_error(L, "gpio.request: 1..%d offsets expected", MAX_LINES);
	if (strlen(chip) >= 64)
		return luaL_error(L, "gpio.request: chip name too long");
	struct gpio_lines *g = lua_newuserdatauv(L, sizeof *g, 1);
	memset(g, 0, sizeof *g);
	g->be = &kernel_backend;
	g->fd = -1;
	g->closed = 1; /* until the request succeeded */
	luaL_setmetatable(L, GPIO_MT);
	snprintf(g->chip, sizeof g->chip, "%s", chip);
	g->n = (unsigned)n;
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, 2, i);
		lua_Integer off = luaL_checkinteger(L, -1);
		if (off < 0 || off > 1023)
			return luaL_error(L, "gpio.request: bad line offset %d", (int)off);
		g->offsets[i - 1] = (unsigned)off;
		lua_geti(L, 3, i);
		g->values[i - 1] = lua_toboolean(L, -1);
		lua_pop(L, 2);
	}
	g->be = fake ? &fake_backend : &kernel_backend;
	g->be->request(L, g, consumer); /* raises on failure */
	g->closed = 0;
	return 1;
}

static int l_set(lua_State *L)
{
	struct gpio_lines *g = check_lines(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	uint64_t mask = 0, bits = 0;
	int newv[MAX_LINES];
	for (unsigned i = 0; i < g->n; i++) {
		lua_geti(L, 2, (lua_Integer)i + 1);
		newv[i] = g->values[i];
		if (!lua_isnil(L, -1)) {
			newv[i] = lua_toboolean(L, -1);
			mask |= (uint64_t)1 << i;
			if (newv[i])
				bits |= (uint64_t)1 << i;
		}
		lua_pop(L, 1);
	}
	if (!mask) {
		lua_pushboolean(L, 1);
		return 1;
	}
	if (g->be->set(g, mask, bits) < 0) {
		int e = errno;
		return ncp_error(L, "port", "setting GPIO lines on %s failed: %s", g->chip, strerror(e));
	}
	for (unsigned i = 0; i < g->n; i++)
		if (mask & ((uint64_t)1 << i))
			g->values[i] = newv[i];
	lua_pushboolean(L, 1);
	return 1;
}

static int l_get(lua_State *L)
{
	struct gpio_lines *g = check_lines(L);
	lua_createtable(L, (int)g->n, 0);
	for (unsigned i = 0; i < g->n; i++) {
		lua_pushboolean(L, g->values[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int l_log(lua_State *L)
{
	struct gpio_lines *g = luaL_checkudata(L, 1, GPIO_MT);
	lua_createtable(L, (int)g->log_len, 0);
	for (size_t i = 0; i < g->log_len; i++) {
		lua_createtable(L, 0, 3);
		lua_pushnumber(L, g->log[i].t);
		lua_setfield(L, -2, "t");
		lua_pushinteger(L, g->log[i].offset);
		lua_setfield(L, -2, "offset");
		lua_pushboolean(L, g->log[i].value);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

static int l_info(lua_State *L)
{
	struct gpio_lines *g = luaL_checkudata(L, 1, GPIO_MT);
	lua_createtable(L, 0, 3);
	lua_pushstring(L, g->chip);
	lua_setfield(L, -2, "chip");
	lua_pushboolean(L, g->be->fake);
	lua_setfield(L, -2, "fake");
	lua_createtable(L, (int)g->n, 0);
	for (unsigned i = 0; i < g->n; i++) {
		lua_pushinteger(L, g->offsets[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "offsets");
	return 1;
}

static int l_release(lua_State *L)
{
	struct gpio_lines *g = luaL_checkudata(L, 1, GPIO_MT);
	g->be->release(g);
	g->closed = 1;
	return 0;
}

int luaopen_ncpflash_core_gpio(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"set", l_set},   {"get", l_get},	  {"log", l_log},
		{"info", l_info}, {"close", l_release}, {NULL, NULL},
	};
	ncp_register_class(L, GPIO_MT, methods, l_release, NULL);
	static const luaL_Reg funcs[] = {{"request", l_request}, {NULL, NULL}};
	luaL_newlib(L, funcs);
	lua_pushboolean(L, HAVE_GPIO_V2);
	lua_setfield(L, -2, "available");
	return 1;
}
