/*
 * image.c - crc32, sha256, xz, hex, aes-128-cbc, ECDH P-256 (see image.h).
 */
#include "image.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <zlib.h>

uint32_t img_crc32(uint32_t crc, const void *buf, size_t len)
{
	const Bytef *p = buf;
	uLong c = crc;
	while (len > 0) {
		uInt chunk = len > 0x40000000u ? 0x40000000u : (uInt)len;
		c = crc32(c, p, chunk);
		p += chunk;
		len -= chunk;
	}
	return (uint32_t)c;
}

/* ---- SHA-256 ---- */

int img_sha256(const void *buf, size_t len, uint8_t out[IMG_SHA256_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != IMG_SHA256_LEN)
		return -1;
	return 0;
}

int img_sha256_init(struct img_sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	h->ctx = NULL;
	if (!c)
		return -1;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return -1;
	}
	h->ctx = c;
	return 0;
}

int img_sha256_update(struct img_sha256 *h, const void *buf, size_t len)
{
	if (!h->ctx)
		return -1;
	return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -1;
}

int img_sha256_final(struct img_sha256 *h, uint8_t out[IMG_SHA256_LEN])
{
	unsigned int n = 0;
	if (!h->ctx)
		return -1;
	int ok = EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == IMG_SHA256_LEN;
	img_sha256_free(h);
	return ok ? 0 : -1;
}

void img_sha256_free(struct img_sha256 *h)
{
	if (h->ctx) {
		EVP_MD_CTX_free(h->ctx);
		h->ctx = NULL;
	}
}

/* ---- XZ ---- */

const char *img_lzma_strerror(lzma_ret r)
{
	switch (r) {
	case LZMA_OK:
		return "ok";
	case LZMA_STREAM_END:
		return "stream end";
	case LZMA_NO_CHECK:
		return "no integrity check";
	case LZMA_UNSUPPORTED_CHECK:
		return "unsupported integrity check";
	case LZMA_GET_CHECK:
		return "integrity check type known";
	case LZMA_MEM_ERROR:
		return "out of memory";
	case LZMA_MEMLIMIT_ERROR:
		return "memory limit reached";
	case LZMA_FORMAT_ERROR:
		return "not an .xz stream";
	case LZMA_OPTIONS_ERROR:
		return "unsupported options";
	case LZMA_DATA_ERROR:
		return "corrupt data";
	case LZMA_BUF_ERROR:
		return "truncated or no progress possible";
	case LZMA_PROG_ERROR:
		return "programming error";
	default:
		return "unknown liblzma error";
	}
}

static int xz_fail(struct img_xz *x, lzma_ret r, const char *what, char *err,
		   size_t errlen)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s (liblzma %d)", what,
			 img_lzma_strerror(r), (int)r);
	img_xz_end(x);
	return -1;
}

int img_xz_encoder_init(struct img_xz *x, uint32_t dict, uint32_t preset,
			lzma_check check, char *err, size_t errlen)
{
	const lzma_stream init = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	memset(x, 0, sizeof(*x));
	x->strm = init;
	if (lzma_lzma_preset(&opt, preset)) {
		if (err && errlen)
			snprintf(err, errlen, "xz: unsupported preset %u", preset);
		return -1;
	}
	if (dict < LZMA_DICT_SIZE_MIN) {
		if (err && errlen)
			snprintf(err, errlen, "xz: dictionary %u below the minimum %u",
				 dict, (unsigned)LZMA_DICT_SIZE_MIN);
		return -1;
	}
	opt.dict_size = dict;
	lzma_filter filters[2] = {
		{.id = LZMA_FILTER_LZMA2, .options = &opt},
		{.id = LZMA_VLI_UNKNOWN, .options = NULL},
	};
	lzma_ret r = lzma_stream_encoder(&x->strm, filters, check);
	if (r != LZMA_OK)
		return xz_fail(x, r, "xz encoder", err, errlen);
	x->active = 1;
	return 0;
}

int img_xz_decoder_init(struct img_xz *x, uint64_t memlimit, char *err,
			size_t errlen)
{
	const lzma_stream init = LZMA_STREAM_INIT;
	memset(x, 0, sizeof(*x));
	x->strm = init;
	lzma_ret r = lzma_stream_decoder(&x->strm, memlimit ? memlimit : UINT64_MAX, 0);
	if (r != LZMA_OK)
		return xz_fail(x, r, "xz decoder", err, errlen);
	x->active = 1;
	return 0;
}

int img_xz_code(struct img_xz *x, const uint8_t *in, size_t n, int finish,
		uint8_t *out, size_t cap, size_t *in_used, size_t *out_made,
		char *err, size_t errlen)
{
	*in_used = 0;
	*out_made = 0;
	if (x->finished)
		return 1;
	if (!x->active) {
		if (err && errlen)
			snprintf(err, errlen, "xz: coder already released");
		return -1;
	}
	x->strm.next_in = in;
	x->strm.avail_in = n;
	x->strm.next_out = out;
	x->strm.avail_out = cap;
	lzma_ret r = lzma_code(&x->strm, finish ? LZMA_FINISH : LZMA_RUN);
	*in_used = n - x->strm.avail_in;
	*out_made = cap - x->strm.avail_out;
	x->strm.next_in = NULL;
	x->strm.next_out = NULL;
	x->strm.avail_in = 0;
	x->strm.avail_out = 0;
	if (r == LZMA_STREAM_END) {
		x->finished = 1;
		return 1;
	}
	if (r == LZMA_OK)
		return 0;
	if (r == LZMA_BUF_ERROR && (*in_used || *out_made))
		return 0;
	return xz_fail(x, r, "xz", err, errlen);
}

void img_xz_end(struct img_xz *x)
{
	if (x->active) {
		lzma_end(&x->strm);
		x->active = 0;
	}
}

/* ---- hex ---- */

void img_hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int img_unhex(uint8_t *out, const char *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- AES-128-CBC ---- */

int img_aes128_cbc(int encrypt, const uint8_t key[16], const uint8_t iv[16],
		   const uint8_t *in, size_t len, uint8_t *out)
{
	if (len % 16 != 0 || len > 0x7FFFFFF0u)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		return -1;
	int ok = EVP_CipherInit_ex(c, EVP_aes_128_cbc(), NULL, key, iv, encrypt ? 1 : 0) == 1 &&
		 EVP_CIPHER_CTX_set_padding(c, 0) == 1;
	int n1 = 0, n2 = 0;
	if (ok && len)
		ok = EVP_CipherUpdate(c, out, &n1, in, (int)len) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out + n1, &n2) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok && (size_t)(n1 + n2) == len ? 0 : -1;
}

/* ---- ECDH P-256 (EC_POINT arithmetic; none of it deprecated in 3.0) ---- */

static int bn_to32(const BIGNUM *bn, uint8_t out[32])
{
	return BN_bn2binpad(bn, out, 32) == 32 ? 0 : -1;
}

/* pub = priv * G, written as X||Y. */
static int point_xy(const EC_GROUP *g, const EC_POINT *pt, uint8_t xy[64], BN_CTX *ctx)
{
	BIGNUM *x = BN_new(), *y = BN_new();
	int rc = -1;
	if (x && y && EC_POINT_get_affine_coordinates(g, pt, x, y, ctx) == 1 &&
	    bn_to32(x, xy) == 0 && bn_to32(y, xy + 32) == 0)
		rc = 0;
	BN_free(x);
	BN_free(y);
	return rc;
}

static int scalar_ok(const EC_GROUP *g, const BIGNUM *k)
{
	const BIGNUM *order = EC_GROUP_get0_order(g);
	return !BN_is_zero(k) && order && BN_cmp(k, order) < 0;
}

int img_ecdh_public(const uint8_t priv[32], uint8_t pub[64])
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *k = BN_bin2bn(priv, 32, NULL);
	EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
	int rc = -1;
	if (g && ctx && k && pt && scalar_ok(g, k) &&
	    EC_POINT_mul(g, pt, k, NULL, NULL, ctx) == 1)
		rc = point_xy(g, pt, pub, ctx);
	EC_POINT_free(pt);
	BN_clear_free(k);
	BN_CTX_free(ctx);
	EC_GROUP_free(g);
	return rc;
}

int img_ecdh_keypair(uint8_t priv[32], uint8_t pub[64])
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *k = BN_new();
	int rc = -1;
	if (g && k) {
		for (int tries = 0; tries < 8 && rc != 0; tries++) {
			if (BN_priv_rand_range(k, EC_GROUP_get0_order(g)) != 1)
				break;
			if (BN_is_zero(k))
				continue;
			if (bn_to32(k, priv) == 0 && img_ecdh_public(priv, pub) == 0)
				rc = 0;
		}
	}
	BN_clear_free(k);
	EC_GROUP_free(g);
	if (rc != 0)
		memset(priv, 0, 32);
	return rc;
}

int img_ecdh_derive(const uint8_t priv[32], const uint8_t peer[64], uint8_t shared[32])
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BN_CTX *ctx = BN_CTX_new();
	BIGNUM *k = BN_bin2bn(priv, 32, NULL);
	EC_POINT *p = g ? EC_POINT_new(g) : NULL;
	EC_POINT *r = g ? EC_POINT_new(g) : NULL;
	uint8_t oct[65];
	uint8_t xy[64];
	int rc = -1;
	oct[0] = 0x04;
	memcpy(oct + 1, peer, 64);
	/* oct2point checks that the point is on the curve. */
	if (g && ctx && k && p && r && scalar_ok(g, k) &&
	    EC_POINT_oct2point(g, p, oct, sizeof(oct), ctx) == 1 &&
	    EC_POINT_is_at_infinity(g, p) == 0 &&
	    EC_POINT_mul(g, r, NULL, p, k, ctx) == 1 &&
	    EC_POINT_is_at_infinity(g, r) == 0 && point_xy(g, r, xy, ctx) == 0) {
		memcpy(shared, xy, 32);
		rc = 0;
	}
	memset(xy, 0, sizeof(xy));
	EC_POINT_free(r);
	EC_POINT_free(p);
	BN_clear_free(k);
	BN_CTX_free(ctx);
	EC_GROUP_free(g);
	return rc;
}
