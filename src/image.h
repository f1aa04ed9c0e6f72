/*
 * image.h - checksums, hashes, XZ and crypto primitives (pure C, no Lua).
 *
 * crc32: zlib (poly 0xEDB88320, init/xorout 0xFFFFFFFF).
 * sha256: libcrypto EVP (AES/ECDH/ECDSA live in crypto.h).
 * xz: liblzma stream encoder with a single LZMA2 filter (protocol.md §4.5:
 *     32 KiB dictionary, CRC32 check for the BL616 ROM's decoder).
 */
#ifndef NCP_IMAGE_H
#define NCP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <lzma.h>

/* CRC-32 of buf continuing from crc (start with 0). */
uint32_t img_crc32(uint32_t crc, const void *buf, size_t len);

/* ---- SHA-256 ---- */
#define IMG_SHA256_LEN 32

/* One-shot; 0 on success, -1 on a libcrypto failure. */
int img_sha256(const void *buf, size_t len, uint8_t out[IMG_SHA256_LEN]);

struct img_sha256 {
	void *ctx; /* EVP_MD_CTX *, NULL once released */
};
int img_sha256_init(struct img_sha256 *h);
int img_sha256_update(struct img_sha256 *h, const void *buf, size_t len);
/* Writes the digest and releases the context. */
int img_sha256_final(struct img_sha256 *h, uint8_t out[IMG_SHA256_LEN]);
/* Idempotent. */
void img_sha256_free(struct img_sha256 *h);

/* ---- XZ ---- */
#define IMG_XZ_DICT_DEFAULT 32768u
#define IMG_XZ_PRESET_DEFAULT 6u

struct img_xz {
	lzma_stream strm;
	int active;   /* 1 between init and end */
	int finished; /* 1 after LZMA_STREAM_END */
};

/* Encoder: XZ container, one LZMA2 filter with dict_size `dict`, preset
 * `preset` (0..9, optionally | LZMA_PRESET_EXTREME), integrity `check`.
 * 0 on success; -1 with a message in err. */
int img_xz_encoder_init(struct img_xz *x, uint32_t dict, uint32_t preset,
			lzma_check check, char *err, size_t errlen);
/* Decoder for any .xz stream (memory limit `memlimit` bytes, 0 = none). */
int img_xz_decoder_init(struct img_xz *x, uint64_t memlimit, char *err,
			size_t errlen);
/*
 * Runs the coder: consumes from in[0..n-1], produces into out[0..cap-1].
 * finish != 0 means there is no more input after this.  *in_used and
 * *out_made report progress.  Returns 0 (call again while input remains or
 * the output was full), 1 at the end of the stream, -1 on error (message in
 * err).
 */
int img_xz_code(struct img_xz *x, const uint8_t *in, size_t n, int finish,
		uint8_t *out, size_t cap, size_t *in_used, size_t *out_made,
		char *err, size_t errlen);
/* Idempotent. */
void img_xz_end(struct img_xz *x);

/* Name of an lzma_ret for messages. */
const char *img_lzma_strerror(lzma_ret r);

/* ---- hex ---- */
/* Writes 2n lowercase hex digits (no terminator). */
void img_hex(char *out, const uint8_t *in, size_t n);
/* Parses 2n hex digits (either case) into n bytes; -1 on a bad digit. */
int img_unhex(uint8_t *out, const char *in, size_t n);

#endif
