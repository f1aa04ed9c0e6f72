/*
 * image.c - crc32, sha256, xz, hex (see image.h).
 */
#include "image.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
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
