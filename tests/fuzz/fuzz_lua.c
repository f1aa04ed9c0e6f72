/*
 * fuzz_lua.c - the file parsers written in Lua, through the host's Lua
 * state (host_prepare_state: the same libraries and embedded modules as
 * ncpflash itself):
 *
 *   ini    progcfg.load (QConn flash_prog_cfg.ini) in a scratch folder that
 *          holds a few images, a partition table and a two-match wildcard
 *   bfpt   partition.parse + describe + find
 *   bfnp   header.parse + describe + check + identify (BL616 layout)
 *   efuse  efuse.parse_file + decode + format_decode + plan (BL616 map)
 *   ota    ota.parse (strict and not) + describe
 *
 * Input byte 0 is a mode byte, the rest is the file.  Mode bit 0 clear:
 * the driver repairs magic, lengths and CRCs first, so that the fuzzer gets
 * past the checks into the code behind them.  A raised ncpflash error
 * object (errors.is) is a clean refusal; any other Lua error (a string
 * error from string.unpack, indexing nil, ...) is a finding.
 *
 * Coverage: the Lua VM (Debian's liblua5.4) is not instrumented, so a line
 * hook hashes (chunk, previous line, line) into an extra-counters array
 * that libFuzzer reads as coverage (section __libfuzzer_extra_counters):
 * new Lua line-to-line edges count as new coverage.
 *
 * libFuzzer's entry point has no context argument, so the Lua state, the
 * scratch folder and the counters live in statics (test code only; src/
 * keeps its no-mutable-static rule).
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "host.h"

static const char fz_lua_driver[] =
"local what, target, data, dir = ...\n"
"local errors = require 'ncpflash.errors'\n"
"local codec = require 'ncpflash.core.codec'\n"
"local partition = require 'ncpflash.partition'\n"
"local function put(s, off, v) return s:sub(1, off) .. v .. s:sub(off + #v + 1) end\n"
"local function crc_at(s, off, from, to)\n"
"  if #s < off + 4 then return s end\n"
"  return put(s, off, string.pack('<I4', codec.crc32(s:sub(from, to))))\n"
"end\n"
"if what == 'setup' then\n"
"  local function w(name, bytes) local f = assert(io.open(dir .. '/' .. name, 'wb')); f:write(bytes); f:close() end\n"
"  w('fw.bin', ('\\x11'):rep(300))\n"
"  w('boot2_v1.bin', ('\\x22'):rep(100))\n"
"  w('a_v1.bin', 'a'); w('a_v2.bin', 'aa'); w('empty.bin', '')\n"
"  w('pt.bin', partition.build{\n"
"    {name = 'Boot2', type = 16, address0 = 0, size0 = 0xE000},\n"
"    {name = 'FW', type = 0, address0 = 0x10000, address1 = 0x110000, size0 = 0x100000, size1 = 0x100000},\n"
"    {name = 'mfg', type = 10, address0 = 0x210000, size0 = 0x100}})\n"
"  return true\n"
"end\n"
"local mode = data:byte(1) or 0\n"
"local fix = mode & 1 == 0\n"
"data = data:sub(2)\n"
"local T = {}\n"
"function T.bfpt(d)\n"
"  if fix and #d >= 16 then\n"
"    local count = string.unpack('<I2', d, 7) % 17\n"
"    d = put(put(d, 0, 'BFPT'), 6, string.pack('<I2', count))\n"
"    d = crc_at(d, 12, 1, 12)\n"
"    d = crc_at(d, 16 + 36 * count, 17, 16 + 36 * count)\n"
"  end\n"
"  local pt = partition.parse(d, {file = 'fuzz'})\n"
"  partition.describe(pt); partition.find(pt, 'FW'); partition.find(pt, 'fw')\n"
"end\n"
"function T.bfnp(d)\n"
"  local header = require 'ncpflash.header'\n"
"  local bl616 = require('ncpflash.chip').load('bl616')\n"
"  if fix and #d >= 256 then\n"
"    d = put(d, 0, 'BFNP')\n"
"    if mode & 2 == 0 then d = put(put(d, 8, 'FCFG'), 100, 'PCFG') end\n"
"    d = crc_at(d, 96, 13, 96); d = crc_at(d, 116, 105, 116); d = crc_at(d, 252, 1, 252)\n"
"  end\n"
"  local h = header.parse(bl616, d, {file = 'fuzz'})\n"
"  header.describe(h); header.identify(d); header.check(bl616, d, 'fuzz')\n"
"end\n"
"function T.ota(d)\n"
"  local ota = require 'ncpflash.ota'\n"
"  if fix and #d >= 512 then\n"
"    d = put(d, 0, ota.MAGIC)\n"
"    if mode & 2 == 0 then\n"
"      d = put(put(d, 20, string.pack('<I4', #d - 512)), 64, codec.sha256(d:sub(513)))\n"
"    end\n"
"  end\n"
"  local h = ota.parse(d, {file = 'fuzz'}); ota.describe(h)\n"
"  ota.parse(d, {file = 'fuzz', strict = true})\n"
"end\n"
"function T.efuse(d)\n"
"  local efuse = require 'ncpflash.efuse'\n"
"  local map = efuse.load_map('bl616', 'st67w611m1')\n"
"  local sv = map.saved\n"
"  if fix and mode & 2 == 0 then\n"
"    local body = d:sub(1, map.size)\n"
"    body = body .. ('\\0'):rep(map.size - #body)\n"
"    d = efuse.encode_saved(body, map)\n"
"  elseif fix and #d == sv.size then\n"
"    d = put(d, 4, ('\\0'):rep(sv.data_offset - 4))\n"
"  end\n"
"  local f = efuse.parse_file(d, 'fuzz', map)\n"
"  local list = efuse.decode(f.data, map)\n"
"  efuse.format_decode(list, {})\n"
"  local zero = ('\\0'):rep(map.size)\n"
"  local p = efuse.plan(zero, f.data, efuse.derive_mask(f.data), map)\n"
"  efuse.plan_text(p)\n"
"  efuse.plan(f.data, zero, efuse.derive_mask(zero), map)\n"
"end\n"
"function T.ini(d)\n"
"  local progcfg = require 'ncpflash.progcfg'\n"
"  local path = dir .. '/fuzz.ini'\n"
"  local f = assert(io.open(path, 'wb')); f:write(d); f:close()\n"
"  progcfg.load(path, {template = {_vxxx = '_v*'}})\n"
"end\n"
"local fn = assert(T[target], 'unknown fuzz target')\n"
"local ok, e = xpcall(fn, function(err)\n"
"  if errors.is(err) then return err end\n"
"  return debug.traceback(tostring(err), 2)\n"
"end, data)\n"
"if ok or errors.is(e) then return true end\n"
"return false, e\n";

struct fz_lua {
	lua_State *L;
	char dir[64];
	uintptr_t prev; /* hash of the previous line event */
};

static struct fz_lua *fz_lua_state(void);

#ifndef NCP_FUZZ_NO_ENTRY
#define FZ_COUNTERS 65536u
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t fz_lua_counters[FZ_COUNTERS];

static void fz_lua_hook(lua_State *L, lua_Debug *ar)
{
	struct fz_lua *s = fz_lua_state();
	if (!lua_getinfo(L, "S", ar))
		return;
	uintptr_t h = (uintptr_t)ar->source * 31u + (uintptr_t)ar->currentline * 2654435761u;
	uintptr_t i = (h ^ (s->prev >> 1)) % FZ_COUNTERS;
	if (fz_lua_counters[i] < 255)
		fz_lua_counters[i]++;
	s->prev = h;
}
#endif

static int fz_lua_prepare(lua_State *L)
{
	host_prepare_state(L, NULL);
	return 0;
}

static void fz_lua_cleanup(void);

static struct fz_lua *fz_lua_state(void)
{
	static struct fz_lua s;

	if (s.L)
		return &s;
	snprintf(s.dir, sizeof s.dir, "/tmp/ncpflash-fuzz-XXXXXX");
	if (!mkdtemp(s.dir))
		return NULL;
	s.L = luaL_newstate();
	if (!s.L)
		return NULL;
	lua_pushcfunction(s.L, fz_lua_prepare);
	if (lua_pcall(s.L, 0, 0, 0) != LUA_OK ||
	    luaL_loadbufferx(s.L, fz_lua_driver, sizeof fz_lua_driver - 1,
			     "=fuzz_driver", "t") != LUA_OK) {
		fprintf(stderr, "fuzz_lua: %s\n", lua_tostring(s.L, -1));
		abort();
	}
	lua_setfield(s.L, LUA_REGISTRYINDEX, "ncpflash.fuzz_driver");
	lua_getfield(s.L, LUA_REGISTRYINDEX, "ncpflash.fuzz_driver");
	lua_pushliteral(s.L, "setup");
	lua_pushnil(s.L);
	lua_pushliteral(s.L, "");
	lua_pushstring(s.L, s.dir);
	if (lua_pcall(s.L, 4, 1, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_lua: setup: %s\n", lua_tostring(s.L, -1));
		abort();
	}
	lua_settop(s.L, 0);
#ifndef NCP_FUZZ_NO_ENTRY
	lua_sethook(s.L, fz_lua_hook, LUA_MASKLINE, 0);
#endif
	atexit(fz_lua_cleanup);
	return &s;
}

/* Removes the scratch folder (it holds plain files only). */
static void fz_lua_cleanup(void)
{
	struct fz_lua *s = fz_lua_state();
	if (!s)
		return;
	DIR *d = opendir(s->dir);
	struct dirent *e;
	char path[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(s->dir);
	lua_close(s->L);
	s->L = NULL;
}

int ncp_fuzz_lua(const char *target, const uint8_t *data, size_t n)
{
	struct fz_lua *s = fz_lua_state();
	if (!s)
		return 0;
	lua_State *L = s->L;
	lua_settop(L, 0);
	lua_getfield(L, LUA_REGISTRYINDEX, "ncpflash.fuzz_driver");
	lua_pushliteral(L, "run");
	lua_pushstring(L, target);
	lua_pushlstring(L, (const char *)data, n);
	lua_pushstring(L, s->dir);
	int rc = 0;
	if (lua_pcall(L, 4, 2, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_lua %s: driver failed: %s\n", target,
			lua_tostring(L, -1));
		rc = -1;
	} else if (!lua_toboolean(L, -2)) {
		fprintf(stderr, "fuzz_lua %s: not an ncpflash error: %s\n", target,
			lua_tostring(L, -1));
		rc = -1;
	}
	lua_settop(L, 0);
	return rc;
}
