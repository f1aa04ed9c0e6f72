/*
 * l_image.c - ncpflash.core.codec: crc32, sha256 (one-shot and streaming),
 * streaming XZ encoder, xz_decode, hex/unhex (AES and ECDH: l_crypto.c).
 */
#include <string.h>

#include "host.h"
#include "image.h"

#define SHA_MT "ncpflash.image.sha256"
#define XZ_MT "ncpflash.image.xz_encoder"
#define XZ_CHUNK 65536u

/* image.crc32(s [, crc]) -> integer */
static int l_crc32(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	lua_Integer c = luaL_optinteger(L, 2, 0);
	if (c < 0 || c > 0xFFFFFFFFLL)
		luaL_argerror(L, 2, "crc must be 0..0xFFFFFFFF");
	lua_pushinteger(L, img_crc32((uint32_t)c, s, n));
	return 1;
}

/* image.sha256(s) -> 32-byte string */
static int l_sha256(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	uint8_t d[IMG_SHA256_LEN];
	if (img_sha256(s, n, d) != 0)
		return luaL_error(L, "sha256: libcrypto failure");
	lua_pushlstring(L, (const char *)d, sizeof(d));
	return 1;
}

/* ---- streaming SHA-256 ---- */

struct l_sha {
	struct img_sha256 h;
	int done; /* final() called or closed */
};

static struct l_sha *check_sha(lua_State *L)
{
	struct l_sha *u = luaL_checkudata(L, 1, SHA_MT);
	if (u->done)
		luaL_error(L, "sha256: hash already finalised or closed");
	return u;
}

static int l_sha256_new(lua_State *L)
{
	struct l_sha *u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->h.ctx = NULL;
	u->done = 1;
	luaL_setmetatable(L, SHA_MT);
	if (img_sha256_init(&u->h) != 0)
		return luaL_error(L, "sha256_new: libcrypto failure");
	u->done = 0;
	return 1;
}

static int l_sha_update(lua_State *L)
{
	struct l_sha *u = check_sha(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	if (img_sha256_update(&u->h, s, n) != 0)
		return luaL_error(L, "sha256: libcrypto failure");
	lua_settop(L, 1);
	return 1;
}

static int l_sha_final(lua_State *L)
{
	struct l_sha *u = check_sha(L);
	uint8_t d[IMG_SHA256_LEN];
	u->done = 1;
	if (img_sha256_final(&u->h, d) != 0)
		return luaL_error(L, "sha256: libcrypto failure");
	lua_pushlstring(L, (const char *)d, sizeof(d));
	return 1;
}

static int l_sha_close(lua_State *L)
{
	struct l_sha *u = luaL_checkudata(L, 1, SHA_MT);
	img_sha256_free(&u->h);
	u->done = 1;
	return 0;
}

/* ---- streaming XZ encoder ---- */

struct l_xz {
	struct img_xz x;
	int closed;   /* released (close/gc, error, or after finish) */
	int finished; /* finish() returned */
	uint64_t total_in, total_out;
};

static struct l_xz *check_xz_open(lua_State *L)
{
	struct l_xz *u = luaL_checkudata(L, 1, XZ_MT);
	if (u->finished)
		luaL_error(L, "xz_encoder: already finished");
	if (u->closed)
		luaL_error(L, "xz_encoder: closed");
	return u;
}

static lzma_check parse_check(lua_State *L, int idx, const char *s)
{
	if (strcmp(s, "crc32") == 0)
		return LZMA_CHECK_CRC32;
	if (strcmp(s, "crc64") == 0)
		return LZMA_CHECK_CRC64;
	if (strcmp(s, "sha256") == 0)
		return LZMA_CHECK_SHA256;
	if (strcmp(s, "none") == 0)
		return LZMA_CHECK_NONE;
	luaL_argerror(L, idx, "opts.check must be crc32, crc64, sha256 or none");
	return LZMA_CHECK_NONE;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *key, lua_Integer def,
			   lua_Integer lo, lua_Integer hi)
{
	lua_Integer v = def;
	if (!lua_isnoneornil(L, idx) && lua_getfield(L, idx, key) != LUA_TNIL) {
		int isnum;
		v = lua_tointegerx(L, -1, &isnum);
		if (!isnum || v < lo || v > hi)
			luaL_argerror(L, idx, lua_pushfstring(L, "opts.%s must be an integer %I..%I",
							     key, lo, hi));
	}
	if (!lua_isnoneornil(L, idx))
		lua_pop(L, 1);
	return v;
}

/* Creates the encoder userdata from opts at idx; leaves it on the stack. */
static struct l_xz *new_encoder(lua_State *L, int idx)
{
	if (!lua_isnoneornil(L, idx))
		luaL_checktype(L, idx, LUA_TTABLE);
	lua_Integer dict = opt_int(L, idx, "dict", IMG_XZ_DICT_DEFAULT, LZMA_DICT_SIZE_MIN,
				   1536LL << 20);
	lua_Integer preset = opt_int(L, idx, "preset", IMG_XZ_PRESET_DEFAULT, 0, 9);
	int extreme = 0;
	lzma_check check = LZMA_CHECK_CRC32;
	if (!lua_isnoneornil(L, idx)) {
		if (lua_getfield(L, idx, "check") != LUA_TNIL) {
			const char *c = lua_tostring(L, -1);
			check = parse_check(L, idx, c ? c : "?");
		}
		lua_pop(L, 1);
		lua_getfield(L, idx, "extreme");
		extreme = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	struct l_xz *u = lua_newuserdatauv(L, sizeof(*u), 0);
	memset(u, 0, sizeof(*u));
	u->closed = 1;
	luaL_setmetatable(L, XZ_MT);
	char err[128];
	uint32_t p = (uint32_t)preset | (extreme ? LZMA_PRESET_EXTREME : 0);
	if (img_xz_encoder_init(&u->x, (uint32_t)dict, p, check, err, sizeof(err)) != 0)
		luaL_error(L, "xz_encoder: %s", err);
	u->closed = 0;
	return u;
}

/* Runs the coder over in[0..n-1] and pushes everything produced. */
static void run_xz(lua_State *L, struct l_xz *u, const uint8_t *in, size_t n, int finish)
{
	luaL_Buffer b;
	char err[128];
	luaL_buffinit(L, &b);
	u->total_in += n;
	for (;;) {
		uint8_t *out = (uint8_t *)luaL_prepbuffsize(&b, XZ_CHUNK);
		size_t used, made;
		int rc = img_xz_code(&u->x, in, n, finish, out, XZ_CHUNK, &used, &made, err,
				     sizeof(err));
		if (rc < 0) {
			u->closed = 1;
			luaL_error(L, "xz_encoder: %s", err);
		}
		luaL_addsize(&b, made);
		u->total_out += made;
		in += used;
		n -= used;
		if (rc == 1)
			break;
		if (!finish && n == 0 && made < XZ_CHUNK)
			break;
	}
	luaL_pushresult(&b);
}

/* Pushes the rest of the stream and releases the coder. */
static void finish_xz(lua_State *L, struct l_xz *u)
{
	run_xz(L, u, NULL, 0, 1);
	u->finished = 1;
	img_xz_end(&u->x);
	u->closed = 1;
}

/* image.xz_encoder{dict=32768, check="crc32", preset=6, extreme=false} */
static int l_xz_encoder(lua_State *L)
{
	new_encoder(L, 1);
	return 1;
}

/* e:feed(data) -> compressed bytes produced so far (may be "") */
static int l_xz_feed(lua_State *L)
{
	struct l_xz *u = check_xz_open(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	run_xz(L, u, (const uint8_t *)s, n, 0);
	return 1;
}

/* e:finish() -> the rest of the stream; releases the coder. */
static int l_xz_finish(lua_State *L)
{
	finish_xz(L, check_xz_open(L));
	return 1;
}

/* e:stats() -> total_in, total_out */
static int l_xz_stats(lua_State *L)
{
	struct l_xz *u = luaL_checkudata(L, 1, XZ_MT);
	lua_pushinteger(L, (lua_Integer)u->total_in);
	lua_pushinteger(L, (lua_Integer)u->total_out);
	return 2;
}

static int l_xz_close(lua_State *L)
{
	struct l_xz *u = luaL_checkudata(L, 1, XZ_MT);
	img_xz_end(&u->x);
	u->closed = 1;
	return 0;
}

/* image.xz(data, opts) -> whole .xz stream (one-shot encoder) */
static int l_xz(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	struct l_xz *u = new_encoder(L, 2);
	int ui = lua_gettop(L);
	run_xz(L, u, (const uint8_t *)s, n, 0);
	finish_xz(L, u);
	lua_concat(L, 2);
	lua_remove(L, ui);
	return 1;
}

struct l_xzdec {
	struct img_xz x;
};

static int l_xzdec_gc(lua_State *L)
{
	struct l_xzdec *u = lua_touserdata(L, 1);
	img_xz_end(&u->x);
	return 0;
}

/* image.xz_decode(s [, max_out]) -> s; raises "input" on bad data */
static int l_xz_decode(lua_State *L)
{
	size_t n;
	const uint8_t *in = (const uint8_t *)luaL_checklstring(L, 1, &n);
	lua_Integer max = luaL_optinteger(L, 2, (lua_Integer)1 << 34);
	/* userdata with __gc so an error below cannot leak the decoder */
	struct l_xzdec *u = lua_newuserdatauv(L, sizeof(*u), 0);
	memset(u, 0, sizeof(*u));
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, l_xzdec_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	char err[128];
	if (img_xz_decoder_init(&u->x, 0, err, sizeof(err)) != 0)
		return luaL_error(L, "xz_decode: %s", err);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	lua_Integer total = 0;
	for (;;) {
		uint8_t *out = (uint8_t *)luaL_prepbuffsize(&b, XZ_CHUNK);
		size_t used, made;
		int rc = img_xz_code(&u->x, in, n, 1, out, XZ_CHUNK, &used, &made, err,
				     sizeof(err));
		if (rc < 0)
			return ncp_error_fields(L, 0, "input", "xz_decode: %s", err);
		luaL_addsize(&b, made);
		total += (lua_Integer)made;
		if (total > max)
			return ncp_error_fields(L, 0, "input", "xz_decode: output larger than %lld bytes",
					 (long long)max);
		in += used;
		n -= used;
		if (rc == 1)
			break;
		if (used == 0 && made == 0)
			return ncp_error_fields(L, 0, "input", "xz_decode: truncated stream");
	}
	img_xz_end(&u->x);
	luaL_pushresult(&b);
	return 1;
}

/* ---- hex ---- */

static int l_hex(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, 2 * n + 1);
	img_hex(out, (const uint8_t *)s, n);
	luaL_pushresultsize(&b, 2 * n);
	return 1;
}

static int l_unhex(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	if (n % 2)
		return ncp_error_fields(L, 0, "input", "unhex: odd number of hex digits (%zu)", n);
	luaL_Buffer b;
	uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, n / 2 + 1);
	if (img_unhex(out, s, n / 2) != 0)
		return ncp_error_fields(L, 0, "input", "unhex: not a hex string");
	luaL_pushresultsize(&b, n / 2);
	return 1;
}

int luaopen_ncpflash_core_codec(lua_State *L)
{
	static const luaL_Reg sha_m[] = {
		{"update", l_sha_update},
		{"final", l_sha_final},
		{"close", l_sha_close},
		{NULL, NULL},
	};
	static const luaL_Reg xz_m[] = {
		{"feed", l_xz_feed},
		{"finish", l_xz_finish},
		{"stats", l_xz_stats},
		{"close", l_xz_close},
		{NULL, NULL},
	};
	static const luaL_Reg fns[] = {
		{"crc32", l_crc32},
		{"sha256", l_sha256},
		{"sha256_new", l_sha256_new},
		{"xz_encoder", l_xz_encoder},
		{"xz", l_xz},
		{"xz_decode", l_xz_decode},
		{"hex", l_hex},
		{"unhex", l_unhex},
		{NULL, NULL},
	};
	if (luaL_newmetatable(L, SHA_MT)) {
		luaL_newlib(L, sha_m);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_sha_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_sha_close);
		lua_setfield(L, -2, "__close");
	}
	lua_pop(L, 1);
	if (luaL_newmetatable(L, XZ_MT)) {
		luaL_newlib(L, xz_m);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_xz_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_xz_close);
		lua_setfield(L, -2, "__close");
	}
	lua_pop(L, 1);
	luaL_newlib(L, fns);
	return 1;
}
