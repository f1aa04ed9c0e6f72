/*
 * variant.c - the rest of the Bouffalo family (protocol.md 4.1, 5.2, 6.1, 9):
 * built-in profiles (--profile bl808 ...), the boot ROM's RAM-image state
 * machine (0x11-0x1A), and, on chips whose ROM cannot program flash
 * (--ram-loader: BL602/BL702), the eflash_loader that runs once a
 * well-formed loader image was loaded and started.
 *
 * Written from protocol.md; shares no code with src/ or lua/.
 */
#include <string.h>

#include <zlib.h>

#include "ncpsim.h"

/* ---- built-in profiles --------------------------------------------------- */

struct profile {
	const char *name, *text;
};

static const struct profile profiles[] = {
	{ "bl616", "# BL616/QCC743 (the ST67W611M1 default)\n"
		   "boot-info=0200160601000100a7128201dcd2037b82401c008f758090e8805be3\n"
		   "jedec=c4601600\nflash-size=4M\nheader-size=256\nmac-len=6\nmax-payload=2052\n" },
	{ "bl808", "# BL808/BL606P: ROM flashing, 352-byte header, 4 + 4096 per frame (tx_size 4104), 16 MiB\n"
		   "boot-info=01000808000000002792800111a2b3c4d5e600000f758010\n"
		   "jedec=ef401800\nflash-size=16M\nheader-size=352\nmac-len=6\nmax-payload=4100\n"
		   "timeout-ms=0\n" },
	{ "bl702l", "# BL702L: ROM flashing at 500 k, 240-byte header, 8-byte MAC (ROM version assumed);\n"
		    "# 4 + 2048 per frame (tx_size 2056 in the vendor's bl702l config)\n"
		    "boot-info=0101020700000000000000000000001c7a21b3c4d5e6f708\n"
		    "jedec=c8601500\nflash-size=2M\nheader-size=240\nmac-len=8\nmax-payload=2052\nsync-ms=3\n"
		    "timeout-ms=0\n" },
	{ "bl602", "# BL602: RAM eflash_loader (0x11/0x17/0x18/0x19/0x1A), 176-byte header\n"
		   "boot-info=0100020600000000000000000c1d2e3f4a5b0000\n"
		   "jedec=c8401600\nflash-size=4M\nheader-size=176\nmac-len=6\nmax-payload=4096\n"
		   "ram-loader=1\nrun-image=cmd\ntimeout-ms=2000\n" },
	{ "bl702", "# BL702: RAM eflash_loader started by memory writes, 8-byte MAC\n"
		   "boot-info=01000207000000000000000000000000b7c8d9e0f1a2b3c4\n"
		   "jedec=c8401500\nflash-size=2M\nheader-size=176\nmac-len=8\nmax-payload=4096\nsync-ms=3\n"
		   "ram-loader=1\nrun-image=memwrite\ntimeout-ms=2000\n" },
};

const char *variant_profile(const char *name)
{
	for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
		if (!strcmp(profiles[i].name, name))
			return profiles[i].text;
	return NULL;
}

/* ---- helpers ------------------------------------------------------------- */

/* Boot-header field offsets by header size (protocol.md 6.2, 9). */
static bool header_layout(unsigned size, unsigned *bootcfg, unsigned *segcnt)
{
	switch (size) {
	case 176:
	case 240: *bootcfg = 116; *segcnt = 120; return true;
	case 256: *bootcfg = 120; *segcnt = 132; return true;
	case 352: *bootcfg = 128; *segcnt = 140; return true;
	}
	return false;
}

/* ---- the RAM-image commands (protocol.md 4.1) ---------------------------- */

static void ram_image(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r)
{
	struct ramimg *g = &s->img;
	unsigned bc_off, cnt_off;
	switch (cmd) {
	case 0x11: {
		g->state = RI_HEADER;
		if (n != s->id.header_size || !header_layout(s->id.header_size, &bc_off, &cnt_off)) {
			snprintf(r->note, sizeof r->note, "len=%zu, header is %u bytes", n, s->id.header_size);
			reply_fl(r, 0x0201);
			return;
		}
		if (memcmp(p, "BFNP", 4)) {
			reply_fl(r, 0x0203);
			return;
		}
		uint32_t bootcfg = le32(p + bc_off), crc = le32(p + n - 4);
		bool ignore = (bootcfg >> 16 & 1) && crc == 0xDEADBEEFu;
		if (!ignore && (uint32_t)crc32(0, p, (uInt)(n - 4)) != crc) {
			reply_fl(r, 0x0204);
			return;
		}
		if (bootcfg & 3) { /* ncpsim models unsigned parts only */
			reply_fl(r, 0x0206);
			return;
		}
		if (bootcfg >> 2 & 3) {
			reply_fl(r, 0x0205);
			return;
		}
		g->segs_left = le32(p + cnt_off);
		snprintf(r->note, sizeof r->note, "bootcfg=0x%08x segments=%u", bootcfg, g->segs_left);
		if (g->segs_left == 0 || g->segs_left > 64) {
			reply_fl(r, 0x0207);
			return;
		}
		g->state = RI_SEGHDR;
		r_ok(r);
		return;
	}
	case 0x17:
		if (g->state != RI_SEGHDR) {
			reply_fl(r, 0x0104);
			return;
		}
		if (n != 16) {
			reply_fl(r, 0x020F);
			return;
		}
		if ((uint32_t)crc32(0, p, 12) != le32(p + 12)) {
			reply_fl(r, 0x0210);
			return;
		}
		g->seg_left = le32(p + 4);
		g->want_crc = le32(p + 8);
		g->seg_crc = (uint32_t)crc32(0, NULL, 0);
		snprintf(r->note, sizeof r->note, "dest=0x%08x len=%u", le32(p), g->seg_left);
		if (g->seg_left == 0) {
			reply_fl(r, 0x0212);
			return;
		}
		g->state = RI_SEGDATA;
		r_data(r, p, 16);
		return;
	case 0x18:
		if (g->state != RI_SEGDATA) {
			reply_fl(r, 0x0104);
			return;
		}
		snprintf(r->note, sizeof r->note, "len=%zu left=%u", n, g->seg_left);
		if (n == 0 || n > g->seg_left) {
			g->state = RI_HEADER;
			reply_fl(r, 0x0214);
			return;
		}
		g->seg_crc = (uint32_t)crc32(g->seg_crc, p, (uInt)n);
		g->seg_left -= (uint32_t)n;
		if (g->seg_left == 0) {
			if (g->seg_crc != g->want_crc) {
				g->state = RI_HEADER;
				reply_fl(r, 0x0215);
				return;
			}
			g->state = --g->segs_left ? RI_SEGHDR : RI_ALLIN;
		}
		r_ok(r);
		return;
	case 0x19:
		if (g->state != RI_ALLIN) {
			reply_fl(r, 0x0216);
			return;
		}
		g->state = RI_CHECKED;
		r_ok(r);
		return;
	case 0x1A:
		if (s->id.run_memwrite) { /* BL702: the tool replaces it by memory writes */
			reply_fl(r, 0x0101);
			return;
		}
		if (g->state != RI_CHECKED) {
			reply_fl(r, 0x0104);
			return;
		}
		r_ok(r);
		r->run_image = true;
		return;
	default: /* 0x12-0x16: keys, signatures, IVs - unsigned parts only */
		reply_fl(r, g->state == RI_HEADER ? 0x0104 : 0x0101);
		return;
	}
}

/* BL702 run sequence (protocol.md 9): 0x4000F100 <- 0x4E424845, ..., and
 * 0x40000018 <- 2 resets into the loaded image (no reply). */
static bool run_writes(struct sim *s, const uint8_t *p, size_t n, struct reply *r)
{
	if (n == 0 || n % 8)
		return false;
	for (size_t i = 0; i < n; i += 8) {
		uint32_t a = le32(p + i), v = le32(p + i + 4);
		if (a == 0x4000F100u)
			s->img.run_magic = v;
		if (a == 0x40000018u && v == 2) {
			snprintf(r->note, sizeof r->note, "run: 0x40000018 <- 2");
			if (s->img.state != RI_CHECKED || s->img.run_magic != 0x4E424845u) {
				reply_fl(r, 0x0104);
				return true;
			}
			r->none = true;
			r->run_image = true;
			return true;
		}
	}
	return false;
}

/* ---- entry: handles what differs from the BL616 ROM; false = not handled */

bool variant_command(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r)
{
	uint8_t tmp[64];
	if (!s->loader && cmd >= 0x11 && cmd <= 0x1A) {
		ram_image(s, cmd, p, n, r);
		return true;
	}
	if (s->id.ram_loader && !s->loader) {
		switch (cmd) {
		case 0x10: case 0x20: case 0x21: case 0x51:
			return false;
		case 0x50:
			return run_writes(s, p, n, r);
		default:
			snprintf(r->note, sizeof r->note, "ROM: only RAM-image commands (load an eflash_loader)");
			reply_fl(r, 0x0101);
			return true;
		}
	}
	if (s->loader && cmd == 0x10) { /* version 0xFFFFFFFF: "eflash loader present" */
		memcpy(tmp, s->id.boot_info, s->id.boot_info_len);
		put_le32(tmp, 0xFFFFFFFFu);
		r_data(r, tmp, s->id.boot_info_len);
		return true;
	}
	if (s->loader && cmd == 0x36) { /* the loader identified the flash */
		memcpy(tmp, s->id.jedec, 4);
		tmp[3] = 0x80;
		r_data(r, tmp, 4);
		return true;
	}
	if (cmd == 0x42 && s->id.mac_len == 8) { /* BL702/BL702L: the 8-byte chip id */
		if (s->id.boot_info_len >= 24)
			memcpy(tmp, s->id.boot_info + 16, 8);
		else
			memset(tmp, 0, 8);
		put_le32(tmp + 8, (uint32_t)crc32(0, tmp, 8));
		r_data(r, tmp, 12);
		return true;
	}
	return false;
}
