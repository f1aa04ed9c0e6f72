/*
 * part.c - the SPI NOR part behind the ROM and the flash configuration the
 * host gives the ROM with 0x3B (docs/api/ncpsim.md "Flash part").
 *
 * A part is known by its JEDEC id.  Its truth is its entry in Bouffalo's
 * BL616 flash table (bflb-mcu-tool 1.10 utils/flash/bl616/NAME_jedec.conf,
 * packed into the 84-byte SPI_Flash_Cfg layout): the commands it answers
 * and where its quad-enable (QE) bit lives and how it is written.
 *
 * What the ROM does with 0x3B is modelled on the BL602 eflash_loader's
 * handler (decompiled, protocol.md [S:GHIDRA]): the 4-byte flash_set
 * re-initialises the pins and sets the io mode of byte 2; with 88 bytes the
 * 84-byte block replaces the ROM's own description of the part first.  The
 * io mode always comes from flash_set byte 2.  Consequences modelled here:
 *  - an erase unit (4K/32K/64K/chip) whose command in the block is not the
 *    part's erases nothing; a wrong page-program command programs nothing;
 *  - a read command or dummy count for the io mode in use that is not the
 *    part's returns 0xFF (nothing answers) or shifted data;
 *  - in a quad mode (QO, QIO) the ROM sets QE the way the block says; when
 *    that is not how the part sets its QE bit, IO2/IO3 stay WP#/HOLD# and
 *    read high: every byte read has bits 2, 3, 6, 7 set.
 * Until an 88-byte 0x3B arrives the ROM's own description is taken to be
 * right for the part.  Unknown JEDEC ids: the block is logged, not checked.
 *
 * Erase follows the SDK's bflb_sflash_erase loop: from the start address,
 * a 64 KiB block when the address is 64K-aligned and more than 60 KiB
 * remain, else a 32 KiB block under the same rule for 32K, else the 4 KiB
 * sector holding the address; then the address moves on by the unit size.
 * (So an unaligned start erases sector by sector and may leave the sector
 * holding `end` untouched, as that loop does.)
 */
#include <stdarg.h>
#include <string.h>

#include "ncpsim.h"

/* offsets in the 84-byte block (SPI_Flash_Cfg_Type, protocol.md 6.2) */
enum {
	FC_IO_MODE = 0, FC_JEDEC_CMD = 8, FC_MFG = 13,
	FC_CHIP_ERASE = 16, FC_SECTOR_ERASE = 17, FC_BLK32_ERASE = 18, FC_BLK64_ERASE = 19,
	FC_PAGE_PROG = 21, FC_FAST_READ = 24, FC_DO_READ = 28, FC_DIO_READ = 30,
	FC_QO_READ = 32, FC_QIO_READ = 34, FC_QE_INDEX = 41, FC_QE_BIT = 44,
	FC_QE_WLEN = 48, FC_QE_RLEN = 49, FC_READ_REG = 52, FC_WRITE_REG = 56,
};

struct part {
	uint8_t jedec[3];
	const char *name;
	const char *cfg; /* its table entry, packed (hex, 84 bytes) */
};

/* Values from Bouffalo's table (bflb-mcu-tool 1.10, utils/flash/bl616/); the
 * GT25Q32A block is byte for byte what the vendor's flasher sent for C4 60 16
 * (../shared/conformance/vendor/st_t02/wire.trace). */
static const struct part parts[] = {
	{ { 0xC4, 0x60, 0x16 }, "GT25Q32A",
	  "040100006699ff039f00b7e904c40001c72052d8060232000b010b013b01bb006b01eb02eb02"
	  "025000010001010002010101ab01053500000131000038ff20ff77030240770302f00c000c00"
	  "0c00030018001400" },
	{ { 0xC8, 0x40, 0x16 }, "GD25Q32C",
	  "040100006699ff039f00b7e904c80001c72052d8060232000b010b013b01bb006b01eb02eb02"
	  "025000010001010002010101ab01053500000131000038ffa0ff77030240770302f02c01b004"
	  "b0040500e8801400" },
	{ { 0xC8, 0x40, 0x15 }, "GD25Q16E",
	  "040100006699ff039f00b7e904c80001c72052d8060232000b010b013b01bb006b01eb02eb02"
	  "025000010001010002010201ab01053500000101000038ffa0ff77030240770302f02003b80b"
	  "a00f0a00e8801400" },
	{ { 0xC8, 0x60, 0x15 }, "GD25LE16C",
	  "040100006699ff039f00b7e904c80001c72052d8060232000b010b013b01bb006b01eb02eb02"
	  "025000010001010002010201ab01053500000101000038ffa0ff77030240770302f02c01b004"
	  "b0040500e8801400" },
	{ { 0xEF, 0x40, 0x18 }, "W25Q128JV",
	  "040000006699ff039f00b7e904ef0001c72052d8060232000b010b013b01bb006b01eb02eb02"
	  "025000010001010002010101ab01053500000131000038fff0ff77030240770302f02c01b004"
	  "b0040500e8800300" },
};

static int hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static void unhex84(const char *h, uint8_t out[84])
{
	for (int i = 0; i < 84; i++)
		out[i] = (uint8_t)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
}

void part_init(struct sim *s)
{
	struct flashcfg *fc = &s->fcfg;
	memset(fc, 0, sizeof *fc);
	fc->name = NULL;
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (!memcmp(parts[i].jedec, s->id.jedec, 3)) {
			fc->name = parts[i].name;
			unhex84(parts[i].cfg, fc->truth);
		}
	part_reset(s);
}

void part_reset(struct sim *s)
{
	struct flashcfg *fc = &s->fcfg;
	fc->io = 0;
	fc->have_block = false;
	memcpy(fc->block, fc->truth, 84);
}

static const char *io_name(unsigned io)
{
	static const char *n[] = { "NIO", "DO", "QO", "DIO", "QIO" };
	return io < 5 ? n[io] : "io?";
}

/* the read command/dummy pair's offset for an io mode */
static int read_off(unsigned io)
{
	switch (io) {
	case 1: return FC_DO_READ;
	case 2: return FC_QO_READ;
	case 3: return FC_DIO_READ;
	case 4: return FC_QIO_READ;
	}
	return FC_FAST_READ;
}

static bool quad(unsigned io)
{
	return io == 2 || io == 4;
}

/* Is the QE procedure of block b the part's own? */
static bool qe_matches(const uint8_t *b, const uint8_t *t)
{
	unsigned ix = b[FC_QE_INDEX];
	if (ix > 3 || b[FC_QE_INDEX] != t[FC_QE_INDEX] || b[FC_QE_BIT] != t[FC_QE_BIT] ||
	    b[FC_QE_WLEN] != t[FC_QE_WLEN] || b[FC_QE_RLEN] != t[FC_QE_RLEN])
		return false;
	return b[FC_WRITE_REG + ix] == t[FC_WRITE_REG + ix] && b[FC_READ_REG + ix] == t[FC_READ_REG + ix];
}

static void add(char *note, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	if (*at + 1 >= len)
		return;
	va_start(ap, fmt);
	int k = vsnprintf(note + *at, len - *at, fmt, ap);
	va_end(ap);
	if (k > 0)
		*at = *at + (size_t)k < len ? *at + (size_t)k : len - 1;
}

/* 0x3B: p/n as received (4 or 88 bytes, checked by the caller). */
void part_set_para(struct sim *s, const uint8_t *p, size_t n, char *note, size_t len)
{
	static const struct { int off; const char *what; } cmds[] = {
		{ FC_JEDEC_CMD, "jedecid_cmd" }, { FC_CHIP_ERASE, "chip_erase_cmd" },
		{ FC_SECTOR_ERASE, "sector_erase_cmd" }, { FC_BLK32_ERASE, "blk32k_erase_cmd" },
		{ FC_BLK64_ERASE, "blk64k_erase_cmd" }, { FC_PAGE_PROG, "page_prog_cmd" },
		{ FC_MFG, "mfg_id" },
	};
	struct flashcfg *fc = &s->fcfg;
	unsigned io = p[2] & 0x0F;
	size_t at = 0;
	add(note, len, &at, "flash_set=0x%08x io=%s", le32(p), io_name(io));
	fc->io = io;
	if (n != 88) {
		memcpy(fc->block, fc->truth, 84); /* the ROM's own description */
		fc->have_block = false;
		return;
	}
	memcpy(fc->block, p + 4, 84);
	fc->have_block = true;
	add(note, len, &at, " +flash-cfg");
	const uint8_t *b = fc->block, *t = fc->truth;
	if (!fc->name) {
		add(note, len, &at, " (part unknown to ncpsim: not checked)");
	} else if (!memcmp(b, t, 84)) {
		add(note, len, &at, " = %s entry", fc->name);
	} else {
		add(note, len, &at, " vs %s:", fc->name);
		for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (b[cmds[i].off] != t[cmds[i].off])
				add(note, len, &at, " %s=0x%02x(part 0x%02x)", cmds[i].what, b[cmds[i].off],
				    t[cmds[i].off]);
		int ro = read_off(io);
		if (b[ro] != t[ro] || b[ro + 1] != t[ro + 1])
			add(note, len, &at, " %s-read=0x%02x/%u(part 0x%02x/%u)", io_name(io), b[ro], b[ro + 1],
			    t[ro], t[ro + 1]);
		if (!qe_matches(b, t))
			add(note, len, &at, " qe-method-differs%s", quad(io) ? "(quad reads fail)" : "(unused in this io mode)");
	}
	add(note, len, &at, " cfg=");
	for (int i = 0; i < 84; i++)
		add(note, len, &at, "%02x", b[i]);
}

/* What a read of n bytes at addr returns through the ROM's current setup. */
void part_read(const struct sim *s, uint32_t addr, uint8_t *out, size_t n)
{
	const struct flashcfg *fc = &s->fcfg;
	const uint8_t *b = fc->block, *t = fc->truth;
	memcpy(out, s->flash.mem + addr, n);
	if (!fc->name || !fc->have_block)
		return;
	int ro = read_off(fc->io);
	if (b[ro] != t[ro]) { /* a command the part does not know: nobody drives the lines */
		memset(out, 0xFF, n);
		return;
	}
	if (b[ro + 1] != t[ro + 1]) { /* dummy cycles off: data shifted by whole bytes */
		int shift = (int)b[ro + 1] - (int)t[ro + 1];
		for (size_t i = 0; i < n; i++) {
			long src = (long)addr + (long)i - shift;
			out[i] = (src >= 0 && src < (long)s->flash.size) ? s->flash.mem[src] : 0xFF;
		}
	}
	if (quad(fc->io) && !qe_matches(b, t))
		for (size_t i = 0; i < n; i++)
			out[i] |= 0xCC; /* IO2/IO3 are WP#/HOLD#, pulled high */
}

bool part_can_program(const struct sim *s)
{
	const struct flashcfg *fc = &s->fcfg;
	return !fc->name || fc->block[FC_PAGE_PROG] == fc->truth[FC_PAGE_PROG];
}

static bool unit_ok(const struct sim *s, int off)
{
	const struct flashcfg *fc = &s->fcfg;
	return !fc->name || fc->block[off] == fc->truth[off];
}

/* 0x30 start..end (inclusive): the SDK's unit loop; returns the modelled time. */
double part_erase(struct sim *s, uint32_t start, uint32_t end, char *note, size_t len)
{
	const uint32_t K4 = 4096, K32 = 32768, K64 = 65536;
	unsigned n4 = 0, n32 = 0, n64 = 0, lost = 0;
	uint64_t a = start;
	while (a <= end) {
		uint64_t rest = (uint64_t)end - a + 1;
		uint32_t base, size;
		int off;
		if (a % K64 == 0 && rest > K64 - K4) {
			base = (uint32_t)a, size = K64, off = FC_BLK64_ERASE, n64++;
		} else if (a % K32 == 0 && rest > K32 - K4) {
			base = (uint32_t)a, size = K32, off = FC_BLK32_ERASE, n32++;
		} else {
			base = (uint32_t)(a & ~(uint64_t)(K4 - 1)), size = K4, off = FC_SECTOR_ERASE, n4++;
		}
		if (unit_ok(s, off))
			flash_erase(&s->flash, base, base + size - 1);
		else
			lost++;
		a += size;
	}
	size_t at = strlen(note);
	if (at < len)
		snprintf(note + at, len - at, " units=64Kx%u+32Kx%u+4Kx%u%s", n64, n32, n4,
			 lost ? " (erase command not the part's: nothing erased)" : "");
	return n64 * s->tm.blk64_s + n32 * s->tm.blk32_s + n4 * s->tm.sector_s;
}

bool part_can_chip_erase(const struct sim *s)
{
	return unit_ok(s, FC_CHIP_ERASE);
}

const char *part_name(const struct sim *s)
{
	return s->fcfg.name ? s->fcfg.name : "unknown";
}
