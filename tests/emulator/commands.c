/*
 * commands.c - the ROM's command set (protocol.md 4, 10): one handler per
 * opcode, filling a struct reply.  Framing, checksums and timing live in
 * device.c; the flash and eFuse models in flash.c and efuse.c.
 */
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "ncpsim.h"

#define MAX_BAUD 20000000u
#define XZ_DICT 32768u

const char *op_name(int cmd)
{
	switch (cmd) {
	case 0x10: return "get_boot_info";
	case 0x11: return "load_boot_header";
	case 0x17: return "load_seg_header";
	case 0x18: return "load_seg_data";
	case 0x19: return "check_image";
	case 0x1A: return "run_image";
	case 0x20: return "change_rate";
	case 0x21: return "reset";
	case 0x22: return "clk_set";
	case 0x23: return "set_timeout";
	case 0x30: return "flash_erase";
	case 0x31: return "flash_write";
	case 0x32: return "flash_read";
	case 0x36: return "flash_read_jedec_id";
	case 0x3A: return "flash_write_check";
	case 0x3B: return "flash_set_para";
	case 0x3C: return "flash_chip_erase";
	case 0x3D: return "flash_read_sha";
	case 0x3E: return "flash_xip_read_sha";
	case 0x3F: return "flash_decompress_write";
	case 0x40: return "efuse_write";
	case 0x41: return "efuse_read";
	case 0x42: return "efuse_read_mac";
	case 0x43: return "efuse_write_mac";
	case 0x50: return "memory_write";
	case 0x51: return "memory_read";
	case 0x60: return "xip_read_start";
	case 0x61: return "xip_read_finish";
	case 0x80: return "efuse_security_write";
	case 0x81: return "efuse_security_read";
	case 0x90: return "ecdh_get_pk";
	case 0x91: return "ecdh_challenge";
	}
	return "unknown";
}

void r_ok(struct reply *r)
{
	r->buf[0] = 'O';
	r->buf[1] = 'K';
	r->len = 2;
}

void r_data(struct reply *r, const uint8_t *d, size_t n)
{
	r_ok(r);
	r->buf[2] = (uint8_t)n;
	r->buf[3] = (uint8_t)(n >> 8);
	memcpy(r->buf + 4, d, n);
	r->len = 4 + n;
}

void reply_fl(struct reply *r, unsigned code)
{
	r->buf[0] = 'F';
	r->buf[1] = 'L';
	r->buf[2] = (uint8_t)code;
	r->buf[3] = (uint8_t)(code >> 8);
	r->len = 4;
	r->fl = code;
}

static double pages_time(const struct sim *s, size_t n)
{
	return s->tm.realtime ? (double)((n + 255) / 256) * s->tm.page_s : 0;
}

void xz_end(struct sim *s)
{
	if (s->xz.active || s->xz.ended)
		lzma_end(&s->xz.strm);
	s->xz.active = s->xz.ended = false;
}

/* ---- memory (0x50/0x51) ------------------------------------------------ */

static const uint32_t known_regs[] = {
	0x6102DF04, /* A0 ROM timeout: upper half-word = ms (protocol.md 2.2) */
	0x2000F108, /* boot status word (5.5) */
	0x2000F038, /* BL808 post-sync write */
	0x4000F100, 0x4000F104, 0x40000018,
};

static int reg_slot(struct sim *s, uint32_t addr, bool create)
{
	bool known = false;
	for (size_t i = 0; i < sizeof known_regs / sizeof known_regs[0]; i++)
		known |= known_regs[i] == addr;
	if (!known)
		return -1;
	for (int i = 0; i < NREGS; i++)
		if (s->reg_addr[i] == addr)
			return i;
	if (!create)
		return -2; /* known, never written: reads 0 */
	for (int i = 0; i < NREGS; i++)
		if (s->reg_addr[i] == 0) {
			s->reg_addr[i] = addr;
			s->reg_val[i] = 0;
			return i;
		}
	return -1;
}

static bool in_ram(uint32_t addr, uint64_t len)
{
	return addr >= RAM_BASE && (uint64_t)addr - RAM_BASE + len <= RAM_SIZE;
}

static unsigned mem_write(struct sim *s, uint32_t addr, uint32_t val)
{
	if (in_ram(addr, 4)) {
		put_le32(s->ram + (addr - RAM_BASE), val);
		return 0;
	}
	int i = reg_slot(s, addr, true);
	if (i < 0)
		return 0x0502;
	s->reg_val[i] = val;
	if (addr == 0x6102DF04)
		s->rom_timeout = (double)(val >> 16) / 1000.0;
	return 0;
}

static unsigned mem_read(struct sim *s, uint32_t addr, uint32_t len, uint8_t *out)
{
	if (in_ram(addr, len)) {
		memcpy(out, s->ram + (addr - RAM_BASE), len);
		return 0;
	}
	if (len != 4)
		return 0x0505;
	int i = reg_slot(s, addr, 0);
	if (i == -1)
		return 0x0505;
	put_le32(out, i >= 0 ? s->reg_val[i] : 0);
	return 0;
}

/* ---- flash programming with the power-loss fault ----------------------- */

/* Programs n bytes; returns false when the power-loss fault fired. */
static bool program(struct sim *s, uint32_t addr, const uint8_t *d, size_t n)
{
	const struct fault *pl = fault_find(&s->faults, F_POWERLOSS);
	if (pl && s->flash.programmed + n >= pl->bytes) {
		size_t part = pl->bytes > s->flash.programmed ? (size_t)(pl->bytes - s->flash.programmed) : 0;
		if (part > n)
			part = n;
		flash_program(&s->flash, addr, d, part);
		state_save(s);
		fprintf(stderr, "ncpsim: power loss after %llu bytes programmed\n",
			(unsigned long long)s->flash.programmed);
		s->mode = M_DEAD;
		wire_purge_out(s);
		if (pl->exit_after)
			s->quit = true;
		return false;
	}
	if (part_can_program(s))
		flash_program(&s->flash, addr, d, n);
	return true;
}

/* A 0x31/0x3F payload or a 0x32 read (n = 4 + data) above --max-payload:
 * FL 0x0102, or with --oversize silent no answer and a ROM deaf until its
 * inactivity timeout. */
static void oversize(struct sim *s, struct reply *r, size_t n)
{
	size_t at = strlen(r->note);
	snprintf(r->note + at, sizeof r->note - at, " (4 + %zu > --max-payload %zu)", n - 4, s->id.max_payload);
	if (s->id.oversize_silent) {
		r->none = true;
		s->deaf_to_timeout = true;
		return;
	}
	reply_fl(r, 0x0102);
}

/* ---- 0x3F ---------------------------------------------------------------- */

static void cmd_xz(struct sim *s, const uint8_t *p, size_t n, struct reply *r)
{
	if (n < 5) {
		s->latched_err = 0x000B;
		reply_fl(r, 0x000B);
		return;
	}
	uint32_t addr = le32(p);
	snprintf(r->note, sizeof r->note, "addr=0x%08x len=%zu%s", addr, n - 4,
		 (addr & 0x80000000u) ? " new-stream" : "");
	if (n > s->id.max_payload) {
		oversize(s, r, n);
		return;
	}
	if (addr & 0x80000000u) {
		xz_end(s);
		uint32_t dest = addr & 0x7FFFFFFFu;
		if (dest >= s->flash.size) {
			s->latched_err = 0x0005;
			reply_fl(r, 0x0005);
			return;
		}
		/* The ROM preallocates a 32 KiB dictionary: refuse streams that need more. */
		lzma_filter f[2] = { { .id = LZMA_FILTER_LZMA2 }, { .id = LZMA_VLI_UNKNOWN } };
		lzma_options_lzma o = { .dict_size = XZ_DICT };
		f[0].options = &o;
		uint64_t limit = lzma_raw_decoder_memusage(f);
		limit = (limit == UINT64_MAX ? 0 : limit) + 4096; /* < the next dict step (48 KiB) */
		s->xz.strm = (lzma_stream)LZMA_STREAM_INIT;
		if (lzma_stream_decoder(&s->xz.strm, limit, 0) != LZMA_OK) {
			reply_fl(r, 0x000C);
			return;
		}
		s->xz.active = true;
		s->xz.dest = dest;
	}
	if (!s->xz.active) {
		if (s->xz.ended) { /* bytes after the end of the stream: ignored */
			r_ok(r);
			return;
		}
		s->latched_err = 0x000C;
		reply_fl(r, 0x000C);
		return;
	}
	uint8_t obuf[4096];
	size_t total = 0;
	lzma_stream *z = &s->xz.strm;
	z->next_in = p + 4;
	z->avail_in = n - 4;
	for (;;) {
		z->next_out = obuf;
		z->avail_out = sizeof obuf;
		lzma_ret ret = lzma_code(z, LZMA_RUN);
		size_t got = sizeof obuf - z->avail_out;
		if (got) {
			if (!flash_range_ok(&s->flash, s->xz.dest, got)) {
				xz_end(s);
				s->latched_err = 0x0006;
				reply_fl(r, 0x000B);
				return;
			}
			if (!program(s, s->xz.dest, obuf, got))
				return;
			s->xz.dest += (uint32_t)got;
			total += got;
		}
		if (ret == LZMA_STREAM_END) {
			s->xz.active = false;
			s->xz.ended = true;
			break;
		}
		if (ret != LZMA_OK) {
			xz_end(s);
			s->latched_err = 0x000C;
			reply_fl(r, 0x000C);
			return;
		}
		if (z->avail_in == 0 && got < sizeof obuf)
			break;
	}
	r->op_time = pages_time(s, total);
	r_ok(r);
}

/* ---- the command table --------------------------------------------------- */

static void sha_range(struct sim *s, const uint8_t *p, size_t n, struct reply *r)
{
	if (n != 8) {
		reply_fl(r, 0x0102);
		return;
	}
	uint32_t a = le32(p), len = le32(p + 4);
	snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
	if (!(flash_range_ok(&s->flash, a, len) || (len == 0 && a <= s->flash.size))) {
		reply_fl(r, 0x0005);
		return;
	}
	uint8_t md[32], buf[4096];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (uint32_t done = 0; done < len;) { /* read the way the ROM reads now */
		uint32_t k = len - done < sizeof buf ? len - done : (uint32_t)sizeof buf;
		part_read(s, a + done, buf, k);
		EVP_DigestUpdate(ctx, buf, k);
		done += k;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	r_data(r, md, 32);
}

void rom_command(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r)
{
	uint8_t tmp[4096 + 64];
	uint32_t a, len;
	unsigned code;
	double t;
	if (variant_command(s, cmd, p, n, r))
		return;
	switch (cmd) {
	case 0x10:
		r_data(r, s->id.boot_info, s->id.boot_info_len);
		break;
	case 0x20:
	case 0x22:
		if (n < 8 || (cmd == 0x20 && n != 8)) {
			reply_fl(r, 0x0301);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, cmd == 0x20 ? "old=%u new=%u" : "irq=%u baud=%u%s",
			 a, len, n > 8 ? " +clock-para" : "");
		if (len == 0 || len > MAX_BAUD || (cmd == 0x20 && a == 0)) {
			reply_fl(r, 0x0302);
			break;
		}
		if (cmd == 0x20) { /* divisor = detected x new/old */
			uint64_t nb = (uint64_t)s->dev_baud * len / a;
			if (nb == 0 || nb > MAX_BAUD) {
				reply_fl(r, 0x0302);
				break;
			}
			r->baud_before = (uint32_t)nb;
		} else {
			r->baud_after = len;
		}
		r_ok(r);
		break;
	case 0x21:
		r_ok(r);
		r->reset_after = true;
		break;
	case 0x23:
		if (n != 4) {
			reply_fl(r, 0x0102);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "timeout_ms=%u", a);
		s->rom_timeout = a / 1000.0;
		r_ok(r);
		break;
	case 0x30:
		if (n != 8) {
			reply_fl(r, 0x0002);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "start=0x%08x end=0x%08x", a, len);
		if (len < a) {
			reply_fl(r, 0x0002);
			break;
		}
		if (!flash_range_ok(&s->flash, a, (uint64_t)len - a + 1)) {
			reply_fl(r, 0x0005);
			break;
		}
		t = part_erase(s, a, len, r->note, sizeof r->note);
		s->latched_err = 0;
		if (s->tm.realtime)
			r->op_time = t;
		r_ok(r);
		break;
	case 0x31:
		if (n <= 4) {
			reply_fl(r, 0x0004);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%zu", a, n - 4);
		if (n > s->id.max_payload) {
			oversize(s, r, n);
			break;
		}
		if (!flash_range_ok(&s->flash, a, n - 4)) {
			reply_fl(r, 0x0005);
			break;
		}
		if (!program(s, a, p + 4, n - 4))
			break;
		r->op_time = pages_time(s, n - 4);
		r_ok(r);
		break;
	case 0x32:
		if (n != 8) {
			reply_fl(r, 0x0102);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
		if (len > s->id.max_payload - 4 || len > 4096) {
			oversize(s, r, (size_t)len + 4);
			break;
		}
		if (!flash_range_ok(&s->flash, a, len) && len) {
			reply_fl(r, 0x0005);
			break;
		}
		part_read(s, len ? a : 0, tmp, len);
		r_data(r, tmp, len);
		break;
	case 0x36:
		r_data(r, s->id.jedec, 4);
		break;
	case 0x3A:
		if (s->latched_err)
			reply_fl(r, s->latched_err);
		else
			r_ok(r);
		break;
	case 0x3B:
		if (n != 4 && n != 88) {
			reply_fl(r, 0x0008);
			break;
		}
		part_set_para(s, p, n, r->note, sizeof r->note);
		r_ok(r);
		break;
	case 0x3C:
		if (part_can_chip_erase(s))
			flash_erase(&s->flash, 0, s->flash.size - 1);
		else
			snprintf(r->note, sizeof r->note, "chip_erase_cmd not the part's: nothing erased");
		s->latched_err = 0;
		if (s->tm.realtime)
			r->op_time = s->tm.chip_s_4m * s->flash.size / (4.0 * 1024 * 1024);
		r_ok(r);
		break;
	case 0x3D:
	case 0x3E:
		sha_range(s, p, n, r);
		break;
	case 0x3F:
		cmd_xz(s, p, n, r);
		break;
	case 0x40:
	case 0x80:
		if (n < 4) {
			reply_fl(r, 0x0401);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "start=0x%03x len=%zu", a, n - 4);
		if (cmd == 0x80) {
			if ((code = efuse_aes(&s->efuse, false, p + 4, n - 4, tmp)) != 0) {
				reply_fl(r, code);
				break;
			}
			code = efuse_write(&s->efuse, a, tmp, n - 4);
		} else {
			code = efuse_write(&s->efuse, a, p + 4, n - 4);
		}
		if (code)
			reply_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x41:
	case 0x81:
		if (n != 8) {
			reply_fl(r, 0x0404);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "start=0x%03x len=%u", a, len);
		if ((code = efuse_read(&s->efuse, a, len, tmp)) != 0) {
			reply_fl(r, code);
			break;
		}
		if (cmd == 0x81) {
			uint8_t enc[EFUSE_SIZE];
			if ((code = efuse_aes(&s->efuse, true, tmp, len, enc)) != 0) {
				reply_fl(r, code);
				break;
			}
			memcpy(tmp, enc, len);
		}
		r_data(r, tmp, len);
		break;
	case 0x42: {
		uint8_t m[10];
		efuse_read_mac(&s->efuse, m);
		put_le32(m + 6, (uint32_t)crc32(0, m, 6));
		r_data(r, m, 10);
		break;
	}
	case 0x43:
		if (n != 6) {
			reply_fl(r, 0x0408);
			break;
		}
		if ((code = efuse_write_mac(&s->efuse, p)) != 0)
			reply_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x50:
		if (n == 0 || n % 8) {
			reply_fl(r, 0x0501);
			break;
		}
		code = 0;
		for (size_t i = 0; i < n && !code; i += 8)
			code = mem_write(s, le32(p + i), le32(p + i + 4));
		snprintf(r->note, sizeof r->note, "addr=0x%08x value=0x%08x pairs=%zu", le32(p), le32(p + 4), n / 8);
		if (code)
			reply_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x51:
		if (n != 8) {
			reply_fl(r, 0x0504);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
		if (len > 4096) {
			reply_fl(r, 0x0504);
			break;
		}
		if ((code = mem_read(s, a, len, tmp)) != 0)
			reply_fl(r, code);
		else
			r_data(r, tmp, len);
		break;
	case 0x60:
	case 0x61:
		s->xip = cmd == 0x60;
		r_ok(r);
		break;
	case 0x90:
		if (n != 64) {
			reply_fl(r, 0x0601);
			break;
		}
		if ((code = efuse_ecdh(&s->efuse, p, tmp)) != 0)
			reply_fl(r, code);
		else
			r_data(r, tmp, 64);
		break;
	case 0x91:
		if ((code = efuse_challenge(&s->efuse, tmp)) != 0)
			reply_fl(r, code);
		else
			r_data(r, tmp, 96);
		break;
	default:
		reply_fl(r, 0x0101);
		break;
	}
}
