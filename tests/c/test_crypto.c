/*
 * test_crypto.c - unit tests of src/crypto.c: AES-128-CBC (NIST SP 800-38A
 * F.2.1/F.2.2), ECDH symmetry, ECDSA verify (signature made here with
 * libcrypto), points off the curve, PEM import.
 * Prints "ok NAME" / "not ok NAME: why"; exits 1 when anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto.h"
#include "check.h"

static void test_aes(void)
{
	uint8_t key[16], iv[16], pt[64], ct[64], out[64];
	unhex("2b7e151628aed2a6abf7158809cf4f3c", key, 16);
	unhex("000102030405060708090a0b0c0d0e0f", iv, 16);
	unhex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
	      "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710", pt, 64);
	unhex("7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2"
	      "73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7", ct, 64);
	int rc = ncc_aes128_cbc(1, key, iv, pt, 64, out);
	CHECK("aes128_cbc_encrypt_sp800_38a_f2_1", rc == 0 && memcmp(out, ct, 64) == 0, "rc %d", rc);
	rc = ncc_aes128_cbc(0, key, iv, ct, 64, out);
	CHECK("aes128_cbc_decrypt_sp800_38a_f2_2", rc == 0 && memcmp(out, pt, 64) == 0, "rc %d", rc);
	rc = ncc_aes128_cbc(1, key, iv, pt, 15, out);
	CHECK("aes128_cbc_rejects_partial_block", rc == -2, "rc %d", rc);
	rc = ncc_aes128_cbc(1, key, iv, pt, 0, out);
	CHECK("aes128_cbc_empty", rc == 0, "rc %d", rc);
}

static void test_ecdh(void)
{
	ncc_key *a = ncc_keygen(), *b = ncc_keygen();
	uint8_t apub[64], bpub[64], s1[32], s2[32];
	int ok = a && b && ncc_public_xy(a, apub) == 0 && ncc_public_xy(b, bpub) == 0 &&
		 ncc_derive(a, bpub, s1) == 0 && ncc_derive(b, apub, s2) == 0;
	CHECK("ecdh_derive_symmetric", ok && memcmp(s1, s2, 32) == 0, "derive failed or differs");
	CHECK("ecdh_keys_differ", ok && memcmp(apub, bpub, 64) != 0, "two key pairs are equal");
	uint8_t bad[64];
	memcpy(bad, bpub, 64);
	bad[63] ^= 1; /* (x, y+1) is not on the curve */
	CHECK("ecdh_rejects_off_curve", a && ncc_derive(a, bad, s1) != 0, "accepted");
	CHECK("key_from_xy_rejects_off_curve", ncc_key_from_xy(bad) == NULL, "accepted");
	ncc_key *c = ncc_key_from_xy(bpub);
	uint8_t cpub[64];
	CHECK("key_from_xy_roundtrip", c && ncc_public_xy(c, cpub) == 0 && memcmp(cpub, bpub, 64) == 0,
	      "differs");
	ncc_key_free(c);
	ncc_key_free(a);
	ncc_key_free(b);
}

/* Sign msg with k (libcrypto directly) into r||s. */
static int sign_rs(EVP_PKEY *k, const uint8_t *msg, size_t n, uint8_t rs[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[128];
	size_t dlen = sizeof der;
	int rc = -1;
	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSign(md, der, &dlen, msg, n) == 1) {
		const unsigned char *p = der;
		ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
		const BIGNUM *r, *s;
		if (sig) {
			ECDSA_SIG_get0(sig, &r, &s);
			if (BN_bn2binpad(r, rs, 32) == 32 && BN_bn2binpad(s, rs + 32, 32) == 32)
				rc = 0;
			ECDSA_SIG_free(sig);
		}
	}
	EVP_MD_CTX_free(md);
	return rc;
}

static void test_ecdsa(void)
{
	ncc_key *k = ncc_keygen();
	uint8_t xy[64], rs[64];
	const uint8_t msg[] = "thirty-two bytes of challenge!!";
	int ok = k && ncc_public_xy(k, xy) == 0 && sign_rs(k, msg, sizeof msg, rs) == 0;
	CHECK("ecdsa_sign_setup", ok, "could not sign");
	ncc_key *pub = ncc_key_from_xy(xy);
	CHECK("ecdsa_verify_valid", pub && ncc_ecdsa_verify(pub, msg, sizeof msg, rs) == 1, "rejected");
	rs[5] ^= 0x40;
	CHECK("ecdsa_verify_bad_sig", pub && ncc_ecdsa_verify(pub, msg, sizeof msg, rs) == 0, "accepted");
	rs[5] ^= 0x40;
	CHECK("ecdsa_verify_other_msg", pub && ncc_ecdsa_verify(pub, msg, sizeof msg - 1, rs) == 0,
	      "accepted");
	/* the digest form: SHA-256(msg) computed here, as the chip computes a boot image's hash */
	uint8_t digest[32];
	unsigned int dn = 0;
	EVP_Digest(msg, sizeof msg, digest, &dn, EVP_sha256(), NULL);
	CHECK("ecdsa_verify_digest_valid", pub && dn == 32 && ncc_ecdsa_verify_digest(pub, digest, rs) == 1,
	      "rejected");
	digest[0] ^= 1;
	CHECK("ecdsa_verify_digest_other", pub && ncc_ecdsa_verify_digest(pub, digest, rs) == 0, "accepted");
	memset(rs, 0, sizeof rs);
	CHECK("ecdsa_verify_zero_sig", pub && ncc_ecdsa_verify(pub, msg, sizeof msg, rs) == 0, "accepted");

	/* PEM export of the public key, then import */
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long plen = 0;
	if (bio && PEM_write_bio_PUBKEY(bio, k) == 1)
		plen = BIO_get_mem_data(bio, &pem);
	ncc_key *fromp = plen > 0 ? ncc_key_from_pem(pem, (size_t)plen) : NULL;
	uint8_t xy2[64];
	CHECK("pem_public_roundtrip", fromp && ncc_public_xy(fromp, xy2) == 0 && memcmp(xy, xy2, 64) == 0,
	      "differs");
	CHECK("pem_garbage_rejected", ncc_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n", 31) == NULL,
	      "accepted");
	ncc_key_free(fromp);
	BIO_free(bio);
	ncc_key_free(pub);
	ncc_key_free(k);
}

int main(void)
{
	test_aes();
	test_ecdh();
	test_ecdsa();
	return failures ? 1 : 0;
}
