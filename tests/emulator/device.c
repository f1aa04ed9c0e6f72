/*
 * device.c - the chip: straps, the ROM's handshake, framing and commands
 * (protocol.md 2.2, 3, 4, 10), and "the application" that runs from flash.
 *
 * Modes: M_RESET (CHIP_EN low: deaf and mute), M_ROM_WAIT (download mode,
 * waiting for a 0x55 burst), M_ROM_CMD (a ROM session), M_APP (booted a
 * flash holding BFNP: banner + a log line every 200 ms at the application
 * baud, input ignored), M_IDLE (booted blank flash: silent), M_DEAD (power
 * loss fault).
 *
 * Replies are computed when a frame completes and queued with a release
 * time (stall faults, realtime latency and flash timings); the device is
 * busy (does not consume input) until then.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "ncpsim.h"

#define SYNC_MIN 4               /* 0x55 bytes that make a handshake */
#define BURST_GAP 0.05           /* s of silence that ends an ignored burst */
#define APP_PERIOD 0.2
#define APP_BOOT_TIME 0.1        /* s from reset to the banner (boot2 + init) */
#define MAX_BAUD 20000000u
#define XZ_DICT 32768u

struct reply {
	uint8_t buf[4 + 4096 + 64];
	size_t len;
	unsigned fl;       /* FL code sent, for the log */
	char note[160];    /* decoded request fields, for the log */
	double op_time;    /* realtime: how long the operation takes */
	uint32_t baud_before, baud_after; /* 0x20 / 0x22 */
	bool reset_after;
	bool none;         /* no reply at all */
};

const char *op_name(int cmd)
{
	switch (cmd) {
	case 0x10: return "get_boot_info";
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

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void r_ok(struct reply *r)
{
	r->buf[0] = 'O';
	r->buf[1] = 'K';
	r->len = 2;
}

static void r_data(struct reply *r, const uint8_t *d, size_t n)
{
	r_ok(r);
	r->buf[2] = (uint8_t)n;
	r->buf[3] = (uint8_t)(n >> 8);
	memcpy(r->buf + 4, d, n);
	r->len = 4 + n;
}

static void r_fl(struct reply *r, unsigned code)
{
	r->buf[0] = 'F';
	r->buf[1] = 'L';
	r->buf[2] = (uint8_t)code;
	r->buf[3] = (uint8_t)(code >> 8);
	r->len = 4;
	r->fl = code;
}

static uint32_t app_baud(const struct sim *s)
{
	const struct fault *f = fault_find(&s->faults, F_APP_BAUD);
	return (f && f->count) ? (uint32_t)f->count : s->id.app_baud;
}

static double pages_time(const struct sim *s, size_t n)
{
	return s->tm.realtime ? (double)((n + 255) / 256) * s->tm.page_s : 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static void xz_end(struct sim *s)
{
	if (s->xz.active || s->xz.ended)
		lzma_end(&s->xz.strm);
	s->xz.active = s->xz.ended = false;
}

static void rom_frame_reset(struct sim *s)
{
	s->hdr_len = 0;
	s->plen = s->pwant = 0;
	s->discarding = false;
	s->discard_left = 0;
}

void dev_init(struct sim *s)
{
	s->payload = malloc(MAX_PAYLOAD);
	s->mode = M_RESET;
	s->rom_timeout = s->default_timeout;
	const struct fault *f = fault_find(&s->faults, F_FLAKY);
	s->flaky_left = f ? (int)f->count : 0;
}

void dev_free(struct sim *s)
{
	xz_end(s);
	free(s->payload);
	s->payload = NULL;
}

static void app_start(struct sim *s, double now)
{
	char banner[256];
	s->mode = M_APP;
	s->app_line = 0;
	int n = snprintf(banner, sizeof banner,
		"\r\nST67W611M1 (ncpsim) application\r\n"
		"boot2 ok, mission firmware running, console at %u baud\r\n", app_baud(s));
	wire_send(s, (const uint8_t *)banner, (size_t)n, app_baud(s), now + APP_BOOT_TIME, 0);
	s->app_next = now + APP_BOOT_TIME + APP_PERIOD;
}

void dev_reset(struct sim *s, bool boot_high, double now)
{
	s->resets++;
	xz_end(s);
	rom_frame_reset(s);
	efuse_free(&s->efuse);
	s->sync_count = 0;
	s->skip55 = s->ignoring_burst = false;
	s->latched_err = 0;
	s->xip = false;
	s->rom_timeout = s->default_timeout;
	s->busy_until = now;
	s->last_activity = now;
	memset(s->ram, 0, sizeof s->ram);
	memset(s->reg_addr, 0, sizeof s->reg_addr);
	const struct fault *rt = fault_find(&s->faults, F_ROMTIMEOUT);
	s->romtimeout_left = rt ? rt->count : -1;
	s->dev_baud = s->host_baud ? s->host_baud : s->raw_baud;
	if (s->state_dir)
		state_save(s);
	if (fault_find(&s->faults, F_APP_BAUD))
		app_start(s, now);
	else if (boot_high)
		s->mode = M_ROM_WAIT;
	else if (s->flash.size >= 4 && !memcmp(s->flash.mem, "BFNP", 4))
		app_start(s, now);
	else
		s->mode = M_IDLE;
}

static bool pin(bool asserted, bool invert)
{
	return invert ? asserted : !asserted; /* true = pin high */
}

static bool line_state(const struct sim *s, int line)
{
	return line == 1 ? s->rts : s->dtr;
}

static bool en_pin(const struct sim *s, bool dtr, bool rts)
{
	if (s->wr.en_line == 0)
		return true;
	return pin(s->wr.en_line == 1 ? rts : dtr, s->wr.en_invert);
}

void dev_lines_changed(struct sim *s, bool old_dtr, bool old_rts, double now)
{
	bool was = en_pin(s, old_dtr, old_rts), is = en_pin(s, s->dtr, s->rts);
	if (was && !is) {
		s->mode = M_RESET;
		xz_end(s);
		wire_purge_out(s);
	} else if (!was && is && s->mode != M_DEAD) {
		bool boot = s->wr.boot_line ? pin(line_state(s, s->wr.boot_line), s->wr.boot_invert)
					    : s->strap_download;
		dev_reset(s, boot, now);
	}
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
	flash_program(&s->flash, addr, d, n);
	return true;
}

/* ---- 0x3F ---------------------------------------------------------------- */

static void cmd_xz(struct sim *s, const uint8_t *p, size_t n, struct reply *r)
{
	if (n < 5) {
		s->latched_err = 0x000B;
		r_fl(r, 0x000B);
		return;
	}
	uint32_t addr = le32(p);
	snprintf(r->note, sizeof r->note, "addr=0x%08x len=%zu%s", addr, n - 4,
		 (addr & 0x80000000u) ? " new-stream" : "");
	if (addr & 0x80000000u) {
		xz_end(s);
		uint32_t dest = addr & 0x7FFFFFFFu;
		if (dest >= s->flash.size) {
			s->latched_err = 0x0005;
			r_fl(r, 0x0005);
			return;
		}
		/* The ROM preallocates a 32 KiB dictionary: refuse streams that need more. */
		lzma_filter f[2] = { { .id = LZMA_FILTER_LZMA2 }, { .id = LZMA_VLI_UNKNOWN } };
		lzma_options_lzma o = { .dict_size = XZ_DICT };
		f[0].options = &o;
		uint64_t limit = lzma_raw_decoder_memusage(f);
		limit = (limit == UINT64_MAX ? 0 : limit) + 64 * 1024;
		s->xz.strm = (lzma_stream)LZMA_STREAM_INIT;
		if (lzma_stream_decoder(&s->xz.strm, limit, 0) != LZMA_OK) {
			r_fl(r, 0x000C);
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
		r_fl(r, 0x000C);
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
				r_fl(r, 0x000B);
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
			r_fl(r, 0x000C);
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
		r_fl(r, 0x0102);
		return;
	}
	uint32_t a = le32(p), len = le32(p + 4);
	snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
	if (!(flash_range_ok(&s->flash, a, len) || (len == 0 && a <= s->flash.size))) {
		r_fl(r, 0x0005);
		return;
	}
	uint8_t md[32];
	unsigned mdlen = 0;
	EVP_Digest(s->flash.mem + a, len, md, &mdlen, EVP_sha256(), NULL);
	r_data(r, md, 32);
}

static void run_cmd(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r)
{
	uint8_t tmp[4096 + 64];
	uint32_t a, len;
	unsigned code;
	switch (cmd) {
	case 0x10:
		r_data(r, s->id.boot_info, s->id.boot_info_len);
		break;
	case 0x20:
	case 0x22:
		if (n < 8 || (cmd == 0x20 && n != 8)) {
			r_fl(r, 0x0301);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, cmd == 0x20 ? "old=%u new=%u" : "irq=%u baud=%u%s",
			 a, len, n > 8 ? " +clock-para" : "");
		if (len == 0 || len > MAX_BAUD || (cmd == 0x20 && a == 0)) {
			r_fl(r, 0x0302);
			break;
		}
		if (cmd == 0x20) { /* divisor = detected x new/old */
			uint64_t nb = (uint64_t)s->dev_baud * len / a;
			if (nb == 0 || nb > MAX_BAUD) {
				r_fl(r, 0x0302);
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
			r_fl(r, 0x0102);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "timeout_ms=%u", a);
		s->rom_timeout = a / 1000.0;
		r_ok(r);
		break;
	case 0x30:
		if (n != 8) {
			r_fl(r, 0x0002);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "start=0x%08x end=0x%08x", a, len);
		if (len < a) {
			r_fl(r, 0x0002);
			break;
		}
		if (!flash_range_ok(&s->flash, a, (uint64_t)len - a + 1)) {
			r_fl(r, 0x0005);
			break;
		}
		flash_erase(&s->flash, a, len);
		s->latched_err = 0;
		if (s->tm.realtime)
			r->op_time = (double)((len | 4095) / 4096 - a / 4096 + 1) * s->tm.sector_s;
		r_ok(r);
		break;
	case 0x31:
		if (n <= 4) {
			r_fl(r, 0x0004);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%zu", a, n - 4);
		if (!flash_range_ok(&s->flash, a, n - 4)) {
			r_fl(r, 0x0005);
			break;
		}
		if (!program(s, a, p + 4, n - 4))
			break;
		r->op_time = pages_time(s, n - 4);
		r_ok(r);
		break;
	case 0x32:
		if (n != 8) {
			r_fl(r, 0x0102);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
		if (len > 4096) {
			r_fl(r, 0x0102);
			break;
		}
		if (!flash_range_ok(&s->flash, a, len) && len) {
			r_fl(r, 0x0005);
			break;
		}
		r_data(r, s->flash.mem + (len ? a : 0), len);
		break;
	case 0x36:
		r_data(r, s->id.jedec, 4);
		break;
	case 0x3A:
		if (s->latched_err)
			r_fl(r, s->latched_err);
		else
			r_ok(r);
		break;
	case 0x3B:
		if (n != 4 && n != 88) {
			r_fl(r, 0x0008);
			break;
		}
		snprintf(r->note, sizeof r->note, "flash_set=0x%08x%s", le32(p), n == 88 ? " +flash-cfg" : "");
		r_ok(r);
		break;
	case 0x3C:
		flash_erase(&s->flash, 0, s->flash.size - 1);
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
			r_fl(r, 0x0401);
			break;
		}
		a = le32(p);
		snprintf(r->note, sizeof r->note, "start=0x%03x len=%zu", a, n - 4);
		if (cmd == 0x80) {
			if ((code = efuse_aes(&s->efuse, false, p + 4, n - 4, tmp)) != 0) {
				r_fl(r, code);
				break;
			}
			code = efuse_write(&s->efuse, a, tmp, n - 4);
		} else {
			code = efuse_write(&s->efuse, a, p + 4, n - 4);
		}
		if (code)
			r_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x41:
	case 0x81:
		if (n != 8) {
			r_fl(r, 0x0404);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "start=0x%03x len=%u", a, len);
		if ((code = efuse_read(&s->efuse, a, len, tmp)) != 0) {
			r_fl(r, code);
			break;
		}
		if (cmd == 0x81) {
			uint8_t enc[EFUSE_SIZE];
			if ((code = efuse_aes(&s->efuse, true, tmp, len, enc)) != 0) {
				r_fl(r, code);
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
			r_fl(r, 0x0408);
			break;
		}
		if ((code = efuse_write_mac(&s->efuse, p)) != 0)
			r_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x50:
		if (n == 0 || n % 8) {
			r_fl(r, 0x0501);
			break;
		}
		code = 0;
		for (size_t i = 0; i < n && !code; i += 8)
			code = mem_write(s, le32(p + i), le32(p + i + 4));
		snprintf(r->note, sizeof r->note, "addr=0x%08x value=0x%08x pairs=%zu", le32(p), le32(p + 4), n / 8);
		if (code)
			r_fl(r, code);
		else
			r_ok(r);
		break;
	case 0x51:
		if (n != 8) {
			r_fl(r, 0x0504);
			break;
		}
		a = le32(p);
		len = le32(p + 4);
		snprintf(r->note, sizeof r->note, "addr=0x%08x len=%u", a, len);
		if (len > 4096) {
			r_fl(r, 0x0504);
			break;
		}
		if ((code = mem_read(s, a, len, tmp)) != 0)
			r_fl(r, code);
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
			r_fl(r, 0x0601);
			break;
		}
		if ((code = efuse_ecdh(&s->efuse, p, tmp)) != 0)
			r_fl(r, code);
		else
			r_data(r, tmp, 64);
		break;
	case 0x91:
		if ((code = efuse_challenge(&s->efuse, tmp)) != 0)
			r_fl(r, code);
		else
			r_data(r, tmp, 96);
		break;
	default:
		r_fl(r, 0x0101);
		break;
	}
}

static void log_cmd(struct sim *s, int cmd, size_t n, const struct reply *r)
{
	if (!s->log)
		return;
	char rep[64];
	if (r->none)
		snprintf(rep, sizeof rep, "(no reply)");
	else if (r->len >= 4 && r->buf[0] == 'F')
		snprintf(rep, sizeof rep, "FL %04X", r->fl);
	else if (r->len > 2)
		snprintf(rep, sizeof rep, "OK len=%zu", r->len - 4);
	else
		snprintf(rep, sizeof rep, "OK");
	fprintf(s->log, "0x%02X %s plen=%zu%s%s -> %s\n", cmd, op_name(cmd), n,
		r->note[0] ? " " : "", r->note, rep);
	fflush(s->log);
}

static void rom_back_to_wait(struct sim *s)
{
	s->mode = M_ROM_WAIT;
	s->sync_count = 0;
	s->skip55 = false;
	s->ignoring_burst = false;
	xz_end(s);
	rom_frame_reset(s);
}

static void dispatch(struct sim *s, double now)
{
	int cmd = s->hdr[0];
	size_t n = s->pwant;
	const uint8_t *p = s->payload;
	struct reply *r = calloc(1, sizeof *r);
	if (!r)
		return;
	unsigned fl;
	double stall = fault_stall_for(&s->faults, cmd);
	if (s->hdr[1] != 0) {
		unsigned sum = s->hdr[2] + s->hdr[3];
		for (size_t i = 0; i < n; i++)
			sum += p[i];
		if ((sum & 0xFF) != s->hdr[1]) {
			snprintf(r->note, sizeof r->note, "checksum=0x%02x expected=0x%02x", s->hdr[1], sum & 0xFF);
			r_fl(r, 0x0103);
		}
	}
	if (r->len == 0 && (fl = fault_fl_for(&s->faults, cmd)) != 0) {
		snprintf(r->note, sizeof r->note, "(fault)");
		r_fl(r, fl);
	}
	if (r->len == 0)
		run_cmd(s, cmd, p, n, r);
	rom_frame_reset(s);
	if (s->mode == M_DEAD) {
		r->none = true;
		log_cmd(s, cmd, n, r);
		free(r);
		return;
	}
	double at = now + stall + (s->tm.realtime ? s->tm.latency + r->op_time : 0);
	if (r->baud_before) {
		s->dev_baud = r->baud_before;
		if (s->host_follows)
			s->host_baud = s->dev_baud;
		at += s->tm.rate_switch_s;
	}
	const struct fault *pd = fault_find(&s->faults, F_PD);
	if (pd && (cmd == 0x30 || cmd == 0x3C) && r->len == 2) {
		int k = 0;
		for (double t = now + pd->seconds; t < at && k < 100000; t += pd->seconds, k++)
			wire_send(s, (const uint8_t *)"PD", 2, s->dev_baud, t, WS_ROM);
	}
	wire_send(s, r->buf, r->len, s->dev_baud, at, WS_ROM);
	s->busy_until = at;
	s->last_activity = at;
	if (r->baud_after) {
		s->dev_baud = r->baud_after;
		if (s->host_follows)
			s->host_baud = s->dev_baud;
	}
	log_cmd(s, cmd, n, r);
	if (r->reset_after) {
		bool boot = s->wr.boot_line ? pin(line_state(s, s->wr.boot_line), s->wr.boot_invert)
					    : s->strap_download;
		dev_reset(s, boot, at);
	} else if (s->romtimeout_left > 0 && --s->romtimeout_left == 0) {
		rom_back_to_wait(s);
	}
	free(r);
}

static void rom_byte(struct sim *s, uint8_t b, double now)
{
	if (s->discarding) {
		if (--s->discard_left == 0)
			s->discarding = false;
		return;
	}
	if (s->hdr_len == 0 && s->skip55 && b == 0x55)
		return;
	s->skip55 = false;
	if (s->hdr_len < 4) {
		s->hdr[s->hdr_len++] = b;
		if (s->hdr_len < 4)
			return;
		s->pwant = (size_t)s->hdr[2] | (size_t)s->hdr[3] << 8;
		s->plen = 0;
		if (s->pwant > MAX_PAYLOAD) {
			struct reply r = { .len = 0 };
			snprintf(r.note, sizeof r.note, "declared len=%zu > %d", s->pwant, MAX_PAYLOAD);
			r_fl(&r, 0x0102);
			wire_send(s, r.buf, r.len, s->dev_baud, now, WS_ROM);
			log_cmd(s, s->hdr[0], s->pwant, &r);
			s->discarding = true;
			s->discard_left = s->pwant;
			s->hdr_len = 0;
			return;
		}
		if (s->pwant == 0)
			dispatch(s, now);
		return;
	}
	s->payload[s->plen++] = b;
	if (s->plen == s->pwant)
		dispatch(s, now);
}

void dev_input(struct sim *s, uint8_t b, uint32_t hb, double now)
{
	switch (s->mode) {
	case M_RESET:
	case M_IDLE:
	case M_DEAD:
		break;
	case M_APP:
		if (fault_find(&s->faults, F_APP_BAUD)) {
			/* the application's console echoes what it thinks it heard */
			uint8_t o[8];
			uint32_t ab = app_baud(s);
			size_t k = (hb && hb != ab) ? uart_resample(&b, 1, hb, ab, o, sizeof o) : 1;
			if (!(hb && hb != ab))
				o[0] = b;
			wire_send(s, o, k, ab, now, 0);
		}
		break;
	case M_ROM_WAIT:
		if (b == 0x55) {
			if (s->ignoring_burst && now - s->last_rx_byte < BURST_GAP)
				break;
			s->ignoring_burst = false;
			if (++s->sync_count >= SYNC_MIN) {
				s->sync_count = 0;
				if (s->flaky_left > 0) {
					s->flaky_left--;
					s->ignoring_burst = true;
				} else {
					s->dev_baud = hb ? hb : (s->host_baud ? s->host_baud : s->raw_baud);
					s->mode = M_ROM_CMD;
					s->skip55 = true;
					rom_frame_reset(s);
					s->last_activity = now;
					if (s->log) {
						fprintf(s->log, "handshake baud=%u -> OK\n", s->dev_baud);
						fflush(s->log);
					}
					wire_send(s, (const uint8_t *)"OK", 2, s->dev_baud,
						  now + (s->tm.realtime ? s->tm.latency : 0), WS_ROM);
				}
			}
		} else {
			s->sync_count = 0;
			s->ignoring_burst = false;
		}
		break;
	case M_ROM_CMD:
		s->last_activity = now;
		if (hb && hb != s->dev_baud) {
			uint8_t o[8];
			size_t k = uart_resample(&b, 1, hb, s->dev_baud, o, sizeof o);
			for (size_t i = 0; i < k && s->mode == M_ROM_CMD; i++)
				rom_byte(s, o[i], now);
		} else {
			rom_byte(s, b, now);
		}
		break;
	}
	s->last_rx_byte = now;
}

void dev_tick(struct sim *s, double now)
{
	if (s->mode == M_ROM_CMD && s->rom_timeout > 0) {
		double since = s->last_activity > s->busy_until ? s->last_activity : s->busy_until;
		if (now - since >= s->rom_timeout) {
			if (s->log) {
				fprintf(s->log, "inactivity %.3f s -> waiting for handshake\n", s->rom_timeout);
				fflush(s->log);
			}
			rom_back_to_wait(s);
		}
	}
	if (s->mode == M_APP && now >= s->app_next) {
		char line[128];
		int n = snprintf(line, sizeof line, "[%7.3f] ncp: wifi idle, heap ok, tick %u\r\n",
				 s->app_line * APP_PERIOD, s->app_line);
		s->app_line++;
		wire_send(s, (const uint8_t *)line, (size_t)n, app_baud(s), now, 0);
		s->app_next += APP_PERIOD;
		if (s->app_next < now)
			s->app_next = now + APP_PERIOD;
	}
	wire_pump(s, now);
}

double dev_next_event(const struct sim *s)
{
	double t = INFINITY;
	if (s->mode == M_ROM_CMD && s->rom_timeout > 0) {
		double since = s->last_activity > s->busy_until ? s->last_activity : s->busy_until;
		t = since + s->rom_timeout;
	}
	if (s->mode == M_APP && s->app_next < t)
		t = s->app_next;
	return t;
}
