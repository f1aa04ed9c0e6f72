/*
 * l_crypto.c - ncpflash.core.crypto: the secure eFuse path's primitives.
 *
 *   crypto.ecdh_keypair()                 -> kp (P-256 key pair)
 *   kp:public_xy()                        -> 64 bytes X||Y (big-endian)
 *   kp:derive(peer_xy)                    -> 32-byte shared X coordinate
 *   kp:close()                            (also __close and __gc)
 *   crypto.aes128_cbc_encrypt(key, iv, data) / aes128_cbc_decrypt(...)
 *                                         no padding: #data % 16 == 0
 *   crypto.ecdsa_verify_p256(key, msg, sig_rs64) -> true | false
 *                                         key = PEM text or 64-byte X||Y
 *                                         (65 bytes with the 0x04 prefix too)
 *   crypto.ecdsa_verify_p256_digest(key, sha256_32, sig_rs64) -> true | false
 *                                         the same with SHA-256(msg) given
 *   crypto.pem_public_xy(pem_text)        -> 64 bytes X||Y
 *
 * Misuse (wrong types, wrong lengths, a closed key pair) raises a string
 * error; a key that is not a P-256 public key (bad PEM, point off the
 * curve) raises an "input" error object.
 */
#include <string.h>

#include "crypto.h"
#include "host.h"

#define KP_MT "ncpflash.crypto.keypair"

struct l_kp {
	ncc_key *k; /* NULL once closed */
};

static struct l_kp *check_kp(lua_State *L)
{
	struct l_kp *u = luaL_checkudata(L, 1, KP_MT);
	if (!u->k)
		luaL_error(L, "ecdh key pair is closed");
	return u;
}

static const uint8_t *check_len(lua_State *L, int idx, size_t want, const char *what)
{
	size_t n;
	const char *s = luaL_checklstring(L, idx, &n);
	if (n != want)
		luaL_error(L, "%s must be %d bytes, got %d", what, (int)want, (int)n);
	return (const uint8_t *)s;
}

static int l_keypair(lua_State *L)
{
	struct l_kp *u = lua_newuserdatauv(L, sizeof(*u), 0);
	u->k = NULL;
	luaL_setmetatable(L, KP_MT);
	u->k = ncc_keygen();
	if (!u->k)
		return luaL_error(L, "ecdh_keypair: libcrypto could not make a P-256 key");
	return 1;
}

static int l_kp_public(lua_State *L)
{
	struct l_kp *u = check_kp(L);
	uint8_t xy[64];
	if (ncc_public_xy(u->k, xy) != 0)
		return luaL_error(L, "public_xy: libcrypto failure");
	lua_pushlstring(L, (const char *)xy, sizeof xy);
	return 1;
}

static int l_kp_derive(lua_State *L)
{
	struct l_kp *u = check_kp(L);
	const uint8_t *peer = check_len(L, 2, 64, "peer public key (X||Y)");
	uint8_t sh[32];
	if (ncc_derive(u->k, peer, sh) != 0)
		return ncp_error(L, "input", "ecdh derive: the peer key is not a point on P-256");
	lua_pushlstring(L, (const char *)sh, sizeof sh);
	memset(sh, 0, sizeof sh);
	return 1;
}

static int l_kp_close(lua_State *L)
{
	struct l_kp *u = luaL_checkudata(L, 1, KP_MT);
	ncc_key_free(u->k);
	u->k = NULL;
	return 0;
}

static int l_kp_tostring(lua_State *L)
{
	struct l_kp *u = luaL_checkudata(L, 1, KP_MT);
	lua_pushstring(L, u->k ? "ecdh P-256 key pair" : "ecdh P-256 key pair (closed)");
	return 1;
}

static int aes(lua_State *L, int enc)
{
	const uint8_t *key = check_len(L, 1, 16, "AES-128 key");
	const uint8_t *iv = check_len(L, 2, 16, "AES IV");
	size_t n;
	const char *data = luaL_checklstring(L, 3, &n);
	if (n % 16)
		return luaL_error(L, "aes128_cbc: data length %d is not a multiple of 16 (no padding)",
				  (int)n);
	luaL_Buffer b;
	uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, n ? n : 1);
	if (ncc_aes128_cbc(enc, key, iv, (const uint8_t *)data, n, out) != 0)
		return luaL_error(L, "aes128_cbc: libcrypto failure");
	luaL_pushresultsize(&b, n);
	return 1;
}

static int l_aes_enc(lua_State *L)
{
	return aes(L, 1);
}

static int l_aes_dec(lua_State *L)
{
	return aes(L, 0);
}

/* A public key from argument idx: PEM text, X||Y, or 0x04||X||Y. */
static ncc_key *key_arg(lua_State *L, int idx)
{
	size_t n;
	const char *s = luaL_checklstring(L, idx, &n);
	ncc_key *k = NULL;
	if (n == 64)
		k = ncc_key_from_xy((const uint8_t *)s);
	else if (n == 65 && (uint8_t)s[0] == 0x04)
		k = ncc_key_from_xy((const uint8_t *)s + 1);
	else if (ncp_memmem(s, n, "-----BEGIN", 10))
		k = ncc_key_from_pem(s, n);
	else
		luaL_error(L, "public key must be PEM text or 64 bytes X||Y, got %d bytes", (int)n);
	return k;
}

static int l_ecdsa_verify(lua_State *L)
{
	size_t mlen;
	const char *msg = luaL_checklstring(L, 2, &mlen);
	const uint8_t *sig = check_len(L, 3, 64, "signature (r||s)");
	ncc_key *k = key_arg(L, 1);
	if (!k)
		return ncp_error(L, "input", "ecdsa_verify_p256: not a P-256 public key");
	int v = ncc_ecdsa_verify(k, (const uint8_t *)msg, mlen, sig);
	ncc_key_free(k);
	if (v < 0)
		return luaL_error(L, "ecdsa_verify_p256: libcrypto failure");
	lua_pushboolean(L, v == 1);
	return 1;
}

static int l_ecdsa_verify_digest(lua_State *L)
{
	const uint8_t *digest = check_len(L, 2, 32, "SHA-256 digest");
	const uint8_t *sig = check_len(L, 3, 64, "signature (r||s)");
	ncc_key *k = key_arg(L, 1);
	if (!k)
		return ncp_error(L, "input", "ecdsa_verify_p256_digest: not a P-256 public key");
	int v = ncc_ecdsa_verify_digest(k, digest, sig);
	ncc_key_free(k);
	if (v < 0)
		return luaL_error(L, "ecdsa_verify_p256_digest: libcrypto failure");
	lua_pushboolean(L, v == 1);
	return 1;
}

static int l_pem_public_xy(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	ncc_key *k = ncc_key_from_pem(s, n);
	uint8_t xy[64];
	if (!k)
		return ncp_error(L, "input", "not a PEM P-256 public key");
	int rc = ncc_public_xy(k, xy);
	ncc_key_free(k);
	if (rc != 0)
		return luaL_error(L, "pem_public_xy: libcrypto failure");
	lua_pushlstring(L, (const char *)xy, sizeof xy);
	return 1;
}

int luaopen_ncpflash_core_crypto(lua_State *L)
{
	static const luaL_Reg kp_m[] = {
		{"public_xy", l_kp_public},
		{"derive", l_kp_derive},
		{"close", l_kp_close},
		{NULL, NULL},
	};
	static const luaL_Reg fns[] = {
		{"ecdh_keypair", l_keypair},
		{"aes128_cbc_encrypt", l_aes_enc},
		{"aes128_cbc_decrypt", l_aes_dec},
		{"ecdsa_verify_p256", l_ecdsa_verify},
		{"ecdsa_verify_p256_digest", l_ecdsa_verify_digest},
		{"pem_public_xy", l_pem_public_xy},
		{NULL, NULL},
	};
	ncp_register_class(L, KP_MT, kp_m, l_kp_close, l_kp_tostring);
	luaL_newlib(L, fns);
	return 1;
}
