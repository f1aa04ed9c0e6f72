/*
 * crypto.h - the primitives of the secure eFuse path (protocol.md 6.8) on
 * OpenSSL 3 libcrypto EVP: P-256 key pairs and ECDH, AES-128-CBC without
 * padding, ECDSA-P256/SHA-256 verification, PEM public keys.
 *
 * Points are exchanged as 64 bytes X||Y (big-endian coordinates), as on the
 * wire. Functions return 0 on success and a negative value on failure; they
 * never print and keep no global state. Keys are opaque EVP_PKEY pointers
 * (struct evp_pkey_st), released with ncc_key_free.
 */
#ifndef NCP_CRYPTO_H
#define NCP_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

struct evp_pkey_st;
typedef struct evp_pkey_st ncc_key;

/* A fresh P-256 key pair, or NULL. */
ncc_key *ncc_keygen(void);
void ncc_key_free(ncc_key *k);

/* The public point of k as X||Y. */
int ncc_public_xy(const ncc_key *k, uint8_t xy[64]);

/* A public P-256 key from X||Y (the point must lie on the curve), or NULL. */
ncc_key *ncc_key_from_xy(const uint8_t xy[64]);

/* A public key from PEM text ("PUBLIC KEY", or an EC private key whose
 * public half is used), or NULL when it is no P-256 key. */
ncc_key *ncc_key_from_pem(const char *pem, size_t len);

/* ECDH: the X coordinate of mine.priv * peer (32 bytes). */
int ncc_derive(ncc_key *mine, const uint8_t peer_xy[64], uint8_t shared[32]);

/* AES-128-CBC, no padding; len must be a multiple of 16 (else -2). */
int ncc_aes128_cbc(int encrypt, const uint8_t key[16], const uint8_t iv[16],
		   const uint8_t *in, size_t len, uint8_t *out);

/* ECDSA-P256 over SHA-256(msg) with the signature as r||s (64 bytes).
 * Returns 1 valid, 0 invalid, negative on an internal failure. */
int ncc_ecdsa_verify(ncc_key *pub, const uint8_t *msg, size_t len,
		     const uint8_t sig_rs[64]);

/* The same over a SHA-256 digest computed elsewhere (e.g. by the chip: a boot image's hash). */
int ncc_ecdsa_verify_digest(ncc_key *pub, const uint8_t digest[32],
			    const uint8_t sig_rs[64]);

#endif
