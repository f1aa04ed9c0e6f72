/*
 * efuse.c - the 512-byte eFuse, the MAC slots and the secure (ECDH) path.
 *
 * OR semantics: a write can only set bits.  Write locks (word at offset 124,
 * little-endian), as read from protocol.md 6.7 and Bouffalo's BL616 eFuse key
 * table: bit 16 wr_lock_wifi_mac protects bytes 20..27, bits 17..20
 * wr_lock_key_slot_0..3 protect the 16-byte key slots at 28, 44, 60, 76.
 * A locked byte is silently not programmed (the controller just does not
 * burn it; a read-back verify shows it).  Read locks: bits 27..30
 * rd_lock_key_slot_0..3 make those slots read as zero.  Locks written by a
 * command take effect for the next command.
 *
 * MAC slots: 20 (factory, filled from the chip id), 100 and 112; 6 bytes
 * as stored (the host prints them reversed) + a zero-bit count byte.
 * 0x42 returns the last non-empty slot as stored + CRC32 (LE) of those 6
 * bytes; 0x43 writes the first empty slot.
 *
 * Secure path (protocol.md 6.8): 0x90 makes a fresh P-256 key for the
 * session, returns X||Y, session key = first 16 bytes of the ECDH X
 * coordinate, AES-128-CBC with a zero IV per command (no padding).  0x91
 * returns AES(random 32) || r || s, an ECDSA-P256/SHA-256 signature over the
 * random bytes made with ncpsim's own test key (--print-test-key).
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "ncpsim.h"

static const char test_key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiTRFRprMjtwtQxtj\n"
	"utMlzzZGSS0qXgCcuoJr1yL93ayhRANCAASOROOAw+aRQz64y3E28Vzxs4W5Qv13\n"
	"8kk5n2Gj9rbWsKK03hkj1dTmrl1KnZwlMTpP+F+KaKfoAbh2DrNHSlBI\n"
	"-----END PRIVATE KEY-----\n";

static const uint32_t mac_slots[3] = { 20, 100, 112 };

static uint32_t lock_word(const struct efuse *e)
{
	const uint8_t *w = e->mem + 124;
	return (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 | (uint32_t)w[3] << 24;
}

static bool write_locked(uint32_t lw, uint32_t off)
{
	if (off >= 20 && off < 28)
		return lw & (1u << 16);
	if (off >= 28 && off < 92)
		return lw & (1u << (17 + (off - 28) / 16));
	return false;
}

static bool read_locked(uint32_t lw, uint32_t off)
{
	if (off >= 28 && off < 92)
		return lw & (1u << (27 + (off - 28) / 16));
	return false;
}

static uint8_t zero_bits(const uint8_t *m, size_t n)
{
	unsigned z = 0;
	for (size_t i = 0; i < n; i++)
		for (unsigned b = 0; b < 8; b++)
			z += !((m[i] >> b) & 1);
	return (uint8_t)z;
}

void efuse_default(struct efuse *e, const uint8_t chip_id[6])
{
	memset(e->mem, 0, EFUSE_SIZE);
	memcpy(e->mem + 20, chip_id, 6);
	e->mem[26] = zero_bits(chip_id, 6);
	e->dirty = true;
}

unsigned efuse_write(struct efuse *e, uint32_t start, const uint8_t *d, size_t n)
{
	if (start > EFUSE_SIZE || n > EFUSE_SIZE - start)
		return 0x0402;
	uint32_t lw = lock_word(e);
	for (size_t i = 0; i < n; i++) {
		uint32_t off = start + (uint32_t)i;
		if (write_locked(lw, off))
			continue;
		uint8_t v = e->mem[off] | d[i];
		if (v != e->mem[off]) {
			e->mem[off] = v;
			e->dirty = true;
		}
	}
	return 0;
}

unsigned efuse_read(const struct efuse *e, uint32_t start, uint32_t n, uint8_t *out)
{
	if (start > EFUSE_SIZE || n > EFUSE_SIZE - start)
		return 0x0405;
	uint32_t lw = lock_word(e);
	for (uint32_t i = 0; i < n; i++)
		out[i] = read_locked(lw, start + i) ? 0 : e->mem[start + i];
	return 0;
}

static bool slot_empty(const struct efuse *e, uint32_t off)
{
	for (int i = 0; i < 6; i++)
		if (e->mem[off + i])
			return false;
	return true;
}

void efuse_read_mac(const struct efuse *e, uint8_t mac[6])
{
	memset(mac, 0, 6);
	for (int i = 2; i >= 0; i--)
		if (!slot_empty(e, mac_slots[i])) {
			memcpy(mac, e->mem + mac_slots[i], 6);
			return;
		}
}

unsigned efuse_write_mac(struct efuse *e, const uint8_t mac[6])
{
	for (int i = 0; i < 3; i++) {
		uint32_t off = mac_slots[i];
		if (!slot_empty(e, off))
			continue;
		uint8_t rec[7];
		memcpy(rec, mac, 6);
		rec[6] = zero_bits(mac, 6);
		efuse_write(e, off, rec, 7);
		return slot_empty(e, off) ? 0x0408 : 0;
	}
	return 0x0408;
}

static EVP_PKEY *load_test_key(void)
{
	BIO *bio = BIO_new_mem_buf(test_key_pem, (int)sizeof test_key_pem - 1);
	if (!bio)
		return NULL;
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return k;
}

int efuse_print_test_key(FILE *out)
{
	EVP_PKEY *k = load_test_key();
	if (!k)
		return -1;
	int ok = PEM_write_PUBKEY(out, k);
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

static EVP_PKEY *pk_from_xy(const uint8_t xy[64])
{
	uint8_t pt[65];
	pt[0] = 0x04;
	memcpy(pt + 1, xy, 64);
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;
	if (ctx && EVP_PKEY_fromdata_init(ctx) > 0)
		EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	if (pk) { /* reject points that are not on the curve */
		EVP_PKEY_CTX *c2 = EVP_PKEY_CTX_new(pk, NULL);
		int ok = c2 && EVP_PKEY_public_check(c2) > 0;
		EVP_PKEY_CTX_free(c2);
		if (!ok) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
	}
	return pk;
}

unsigned efuse_ecdh(struct efuse *e, const uint8_t host_pk[64], uint8_t dev_pk[64])
{
	unsigned rc = 0x0603;
	EVP_PKEY *peer = pk_from_xy(host_pk);
	if (!peer)
		return 0x0601;
	EVP_PKEY *mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!mine) {
		EVP_PKEY_free(peer);
		return 0x0602;
	}
	uint8_t pub[65], secret[32];
	size_t plen = 0, slen = sizeof secret;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
	if (EVP_PKEY_get_octet_string_param(mine, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &plen) > 0 &&
	    plen == 65 && ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
	    EVP_PKEY_derive(ctx, secret, &slen) > 0 && slen == 32) {
		memcpy(dev_pk, pub + 1, 64);
		memcpy(e->session, secret, 16);
		e->have_session = true;
		if (e->dev_key)
			EVP_PKEY_free(e->dev_key);
		e->dev_key = mine;
		mine = NULL;
		rc = 0;
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(peer);
	return rc;
}

unsigned efuse_aes(const struct efuse *e, bool encrypt, const uint8_t *in, size_t n, uint8_t *out)
{
	if (!e->have_session)
		return 0x0603;
	if (n % 16)
		return encrypt ? 0x0606 : 0x0605;
	if (n == 0)
		return 0;
	static const uint8_t iv[16];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0, ok = c &&
		EVP_CipherInit_ex(c, EVP_aes_128_cbc(), NULL, e->session, iv, encrypt ? 1 : 0) > 0 &&
		EVP_CIPHER_CTX_set_padding(c, 0) > 0 &&
		EVP_CipherUpdate(c, out, &l1, in, (int)n) > 0 &&
		EVP_CipherFinal_ex(c, out + l1, &l2) > 0 && (size_t)(l1 + l2) == n;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : (encrypt ? 0x0606 : 0x0605);
}

unsigned efuse_challenge(struct efuse *e, uint8_t out[96])
{
	uint8_t rnd[32];
	if (!e->have_session)
		return 0x0603;
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return 0x0604;
	unsigned rc = efuse_aes(e, true, rnd, 32, out);
	if (rc)
		return rc;
	EVP_PKEY *k = load_test_key();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[128];
	size_t dlen = sizeof der;
	rc = 0x0606;
	if (k && md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) > 0 &&
	    EVP_DigestSign(md, der, &dlen, rnd, sizeof rnd) > 0) {
		const unsigned char *p = der;
		ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
		if (sig) {
			const BIGNUM *r, *s;
			ECDSA_SIG_get0(sig, &r, &s);
			if (BN_bn2binpad(r, out + 32, 32) == 32 && BN_bn2binpad(s, out + 64, 32) == 32)
				rc = 0;
			ECDSA_SIG_free(sig);
		}
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(k);
	return rc;
}

void efuse_free(struct efuse *e)
{
	if (e->dev_key)
		EVP_PKEY_free(e->dev_key);
	e->dev_key = NULL;
	e->have_session = false;
}
