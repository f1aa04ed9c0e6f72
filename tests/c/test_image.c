/*
 * test_image.c - unit tests of src/image.c (crc32, sha256, xz with tiny
 * buffers, hex).  Prints "ok NAME" / "not ok NAME: why".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "check.h"

static void tohex(char *out, const uint8_t *in, size_t n)
{
	img_hex(out, in, n);
	out[2 * n] = 0;
}

/* Compress in[0..n) feeding `step` bytes at a time into an output buffer of
 * `ocap` bytes per call; returns the malloc'ed stream and its length. */
static uint8_t *xz_all(const uint8_t *in, size_t n, size_t step, size_t ocap, size_t *outlen)
{
	struct img_xz x;
	char err[128];
	if (img_xz_encoder_init(&x, IMG_XZ_DICT_DEFAULT, IMG_XZ_PRESET_DEFAULT, LZMA_CHECK_CRC32,
				err, sizeof(err)) != 0)
		return NULL;
	size_t cap = n + 4096, len = 0, pos = 0;
	uint8_t *out = malloc(cap);
	uint8_t *tmp = malloc(ocap);
	int rc = 0;
	while (out && tmp && rc == 0) {
		size_t want = n - pos < step ? n - pos : step;
		int fin = pos + want == n;
		size_t used, made;
		rc = img_xz_code(&x, in + pos, want, fin, tmp, ocap, &used, &made, err, sizeof(err));
		if (rc < 0 || len + made > cap)
			break;
		memcpy(out + len, tmp, made);
		len += made;
		pos += used;
	}
	img_xz_end(&x);
	img_xz_end(&x); /* idempotent */
	free(tmp);
	if (rc != 1) {
		free(out);
		return NULL;
	}
	*outlen = len;
	return out;
}

static uint8_t *unxz_all(const uint8_t *in, size_t n, size_t ocap, size_t *outlen)
{
	struct img_xz x;
	char err[128];
	if (img_xz_decoder_init(&x, 0, err, sizeof(err)) != 0)
		return NULL;
	size_t cap = 1 << 20, len = 0, pos = 0;
	uint8_t *out = malloc(cap);
	uint8_t *tmp = malloc(ocap);
	int rc = 0;
	while (out && tmp && rc == 0) {
		size_t used, made;
		rc = img_xz_code(&x, in + pos, n - pos, 1, tmp, ocap, &used, &made, err, sizeof(err));
		if (rc < 0 || len + made > cap || (used == 0 && made == 0 && rc == 0))
			break;
		memcpy(out + len, tmp, made);
		len += made;
		pos += used;
	}
	img_xz_end(&x);
	free(tmp);
	if (rc != 1) {
		free(out);
		return NULL;
	}
	*outlen = len;
	return out;
}

int main(void)
{
	char h[200];
	uint8_t d[32];

	CHECK("crc32 123456789", img_crc32(0, "123456789", 9) == 0xCBF43926u, "0x%08X",
	      img_crc32(0, "123456789", 9));
	CHECK("crc32 continued", img_crc32(img_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "wrong");

	img_sha256("abc", 3, d);
	tohex(h, d, 32);
	CHECK("sha256 abc", !strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	      "%s", h);
	struct img_sha256 s;
	img_sha256_init(&s);
	img_sha256_update(&s, "a", 1);
	img_sha256_update(&s, "bc", 2);
	uint8_t d2[32];
	img_sha256_final(&s, d2);
	CHECK("sha256 streaming", !memcmp(d, d2, 32), "differs");
	CHECK("sha256 update after final fails", img_sha256_update(&s, "x", 1) == -1, "accepted");
	img_sha256_free(&s);

	size_t n = 200000;
	uint8_t *data = malloc(n);
	uint32_t x = 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = i < n / 2 ? (uint8_t)"flash erase write "[i % 18] : (uint8_t)(x >> 16);
	}
	size_t la = 0, lb = 0, lc = 0;
	uint8_t *a = xz_all(data, n, n, 1 << 20, &la);
	uint8_t *b = xz_all(data, n, 1000, 1, &lb); /* 1-byte output buffer */
	CHECK("xz with a 1-byte output buffer equals big buffers", a && b && la == lb &&
	      !memcmp(a, b, la), "la=%zu lb=%zu", la, lb);
	CHECK("xz header: CRC32 check, LZMA2, dict byte 6", a && la > 20 && a[7] == 0x01 &&
	      a[14] == 0x21 && a[16] == 0x06, "bad header");
	uint8_t *c = a ? unxz_all(a, la, 7, &lc) : NULL;
	CHECK("xz decodes back with a 7-byte output buffer", c && lc == n && !memcmp(c, data, n),
	      "lc=%zu", lc);
	free(c);
	if (a && la > 100) {
		a[la / 2] ^= 0x55;
		c = unxz_all(a, la, 4096, &lc);
		CHECK("xz corrupt stream is an error", c == NULL, "decoded");
		free(c);
		c = unxz_all(a, 30, 4096, &lc);
		CHECK("xz truncated stream is an error", c == NULL, "decoded");
		free(c);
	}
	free(a);
	free(b);
	free(data);

	struct img_xz z;
	char err[128];
	CHECK("xz dict below minimum refused",
	      img_xz_encoder_init(&z, 1024, 6, LZMA_CHECK_CRC32, err, sizeof(err)) == -1, "accepted");
	CHECK("xz preset 42 refused",
	      img_xz_encoder_init(&z, 32768, 42, LZMA_CHECK_CRC32, err, sizeof(err)) == -1, "accepted");

	uint8_t u[4];
	CHECK("unhex", img_unhex(u, "0aFf", 2) == 0 && u[0] == 0x0A && u[1] == 0xFF, "wrong");
	CHECK("unhex bad digit", img_unhex(u, "0g", 1) == -1, "accepted");

	return failures ? 1 : 0;
}
