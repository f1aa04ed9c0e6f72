/*
 * crypto.c - P-256 ECDH, AES-128-CBC, ECDSA verify, PEM keys (crypto.h).
 * OpenSSL 3 EVP/OSSL_PARAM interfaces only; no deprecated EC_KEY calls.
 */
#include "crypto.h"

#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

static int is_p256(const EVP_PKEY *k)
{
	char group[64];
	size_t glen = 0;
	if (!k || !EVP_PKEY_is_a(k, "EC"))
		return 0;
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
					   sizeof group, &glen) != 1)
		return 0;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
	       strcmp(group, "secp256r1") == 0;
}

ncc_key *ncc_keygen(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

void ncc_key_free(ncc_key *k)
{
	EVP_PKEY_free(k);
}

int ncc_public_xy(const ncc_key *k, uint8_t xy[64])
{
	uint8_t pt[65];
	size_t n = 0;
	if (!is_p256(k))
		return -1;
	/* uncompressed form is the default for keys we make or import */
	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					    pt, sizeof pt, &n) != 1 ||
	    n != 65 || pt[0] != 0x04) {
		BIGNUM *x = NULL, *y = NULL;
		int rc = -1;
		if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
		    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
		    BN_bn2binpad(x, xy, 32) == 32 && BN_bn2binpad(y, xy + 32, 32) == 32)
			rc = 0;
		BN_free(x);
		BN_free(y);
		return rc;
	}
	memcpy(xy, pt + 1, 64);
	return 0;
}

ncc_key *ncc_key_from_xy(const uint8_t xy[64])
{
	uint8_t pt[65];
	char group[] = "prime256v1";
	EVP_PKEY *pk = NULL;
	pt[0] = 0x04;
	memcpy(pt + 1, xy, 64);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
			pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	if (pk) {
		/* fromdata does not promise a curve check: do it explicitly */
		EVP_PKEY_CTX *c2 = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		int ok = c2 && EVP_PKEY_public_check(c2) == 1;
		EVP_PKEY_CTX_free(c2);
		if (!ok) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	}
	return pk;
}

ncc_key *ncc_key_from_pem(const char *pem, size_t len)
{
	if (!pem || len == 0 || len > 64 * 1024)
		return NULL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return NULL;
	EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!k) {
		/* a private key file: use its public half (never a passphrase) */
		(void)BIO_reset(bio);
		char empty[] = "";
		k = PEM_read_bio_PrivateKey(bio, NULL, NULL, empty);
	}
	BIO_free(bio);
	if (k && !is_p256(k)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (k) {
		/* normalise to a public-only key */
		uint8_t xy[64];
		EVP_PKEY *pub = ncc_public_xy(k, xy) == 0 ? ncc_key_from_xy(xy) : NULL;
		EVP_PKEY_free(k);
		k = pub;
	}
	return k;
}

int ncc_derive(ncc_key *mine, const uint8_t peer_xy[64], uint8_t shared[32])
{
	EVP_PKEY *peer = ncc_key_from_xy(peer_xy);
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t buf[66];
	size_t n = sizeof buf;
	int rc = -1;
	if (!peer || !is_p256(mine))
		goto out;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	if (ctx && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, buf, &n) == 1 && n == 32) {
		memcpy(shared, buf, 32);
		rc = 0;
	}
out:
	OPENSSL_cleanse(buf, sizeof buf);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return rc;
}

int ncc_aes128_cbc(int encrypt, const uint8_t key[16], const uint8_t iv[16],
		   const uint8_t *in, size_t len, uint8_t *out)
{
	if (len % 16)
		return -2;
	if (len == 0)
		return 0;
	if (len > 0x7FFFFFF0u)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0;
	int ok = c &&
		 EVP_CipherInit_ex2(c, EVP_aes_128_cbc(), key, iv, encrypt ? 1 : 0, NULL) == 1 &&
		 EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
		 EVP_CipherUpdate(c, out, &l1, in, (int)len) == 1 &&
		 EVP_CipherFinal_ex(c, out + l1, &l2) == 1 && (size_t)(l1 + l2) == len;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int ncc_ecdsa_verify_digest(ncc_key *pub, const uint8_t digest[32],
			    const uint8_t sig_rs[64])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig_rs, 32, NULL);
	BIGNUM *s = BN_bin2bn(sig_rs + 32, 32, NULL);
	unsigned char *der = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int rc = -1, dlen, v;
	if (!sig || !r || !s || !is_p256(pub))
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by sig now */
	dlen = i2d_ECDSA_SIG(sig, &der);
	if (dlen <= 0)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	if (!ctx || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		goto out;
	v = EVP_PKEY_verify(ctx, der, (size_t)dlen, digest, 32);
	rc = v == 1; /* 0 or an error (malformed signature): invalid */
out:
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return rc;
}

int ncc_ecdsa_verify(ncc_key *pub, const uint8_t *msg, size_t len,
		     const uint8_t sig_rs[64])
{
	uint8_t digest[32];
	unsigned int n = 0;
	if (EVP_Digest(msg, len, digest, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -1;
	return ncc_ecdsa_verify_digest(pub, digest, sig_rs);
}
