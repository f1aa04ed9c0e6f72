/*
 * flash.c - the NOR flash model and the state directory.
 *
 * NOR: 4 KiB sectors; erase sets bytes to 0xFF; programming ANDs the new
 * bytes into the old ones (programming unerased flash corrupts it, as on a
 * real part).  Callers check ranges with flash_range_ok() first.
 *
 * State directory (--state DIR): flash.bin (exactly the flash size),
 * efuse.bin (512 bytes), device.json (informative: identity, mode, counters).
 * Each file is written to NAME.tmp and renamed, so a reader never sees half
 * a file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ncpsim.h"

#define SECTOR 4096u

int flash_init(struct flash *f, uint32_t size)
{
	f->mem = malloc(size ? size : 1);
	if (!f->mem)
		return -1;
	memset(f->mem, 0xFF, size);
	f->size = size;
	f->dirty = false;
	f->programmed = 0;
	return 0;
}

void flash_free(struct flash *f)
{
	free(f->mem);
	f->mem = NULL;
}

bool flash_range_ok(const struct flash *f, uint32_t addr, uint64_t len)
{
	return (uint64_t)addr + len <= f->size && addr < f->size;
}

void flash_erase(struct flash *f, uint32_t start, uint32_t end_incl)
{
	uint64_t a = start & ~(uint64_t)(SECTOR - 1);
	uint64_t e = ((uint64_t)end_incl | (SECTOR - 1)) + 1;
	if (e > f->size)
		e = f->size;
	if (a >= e)
		return;
	memset(f->mem + a, 0xFF, (size_t)(e - a));
	f->dirty = true;
}

void flash_program(struct flash *f, uint32_t addr, const uint8_t *d, size_t n)
{
	if (!flash_range_ok(f, addr, n))
		return;
	for (size_t i = 0; i < n; i++)
		f->mem[addr + i] &= d[i];
	f->programmed += n;
	f->dirty = true;
}

/* ---- state directory --------------------------------------------------- */

static int path_of(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

static int read_exact(const char *path, uint8_t *buf, size_t len, bool *missing, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	*missing = false;
	if (!fp) {
		if (errno == ENOENT) {
			*missing = true;
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t got = fread(buf, 1, len, fp);
	int extra = fgetc(fp);
	fclose(fp);
	if (got != len || extra != EOF) {
		snprintf(err, errlen, "%s: expected exactly %zu bytes", path, len);
		return -1;
	}
	return 0;
}

static int write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -1;
	FILE *fp = fopen(tmp, "wb");
	if (!fp)
		return -1;
	size_t put = fwrite(data, 1, len, fp);
	if (fclose(fp) != 0 || put != len) {
		remove(tmp);
		return -1;
	}
	return rename(tmp, path);
}

/* The chip id in display order (boot-info bytes 12..17 reversed, as the
 * vendor's flasher and ncpflash print it). */
static void chip_id_get(const struct sim *s, char out[13])
{
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", s->id.boot_info[17 - i]);
}

static void chip_id_put(struct sim *s, const char *hex)
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;
		sscanf(hex + 2 * i, "%2x", &v);
		s->id.boot_info[17 - i] = (uint8_t)v;
	}
}

/* A fresh id: 6 random bytes, first one a locally administered unicast
 * MAC byte (the factory MAC is the chip id). */
static void chip_id_random(char out[13])
{
	uint8_t b[6] = { 0 };
	FILE *fp = fopen("/dev/urandom", "rb");
	if (!fp || fread(b, 1, 6, fp) != 6) {
		uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)clock();
		for (int i = 0; i < 6; i++, x >>= 8)
			b[i] = (uint8_t)(x * 0x9E3779B97F4A7C15ull >> 56);
	}
	if (fp)
		fclose(fp);
	b[0] = (uint8_t)((b[0] & 0xFC) | 0x02);
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Decides the chip id before the eFuse default is built: --chip-id, else
 * --boot-info as given, else the state dir's device.json, else (a new state
 * dir) a random one; without --state the boot info's.  Profiles with an
 * 8-byte MAC (boot-info bytes 16..23) keep their boot info. */
int state_identity(struct sim *s, char *err, size_t errlen)
{
	char id[13] = "", p[4096];
	if (s->id.mac_len != 6 || s->id.boot_info_len < 18)
		return 0;
	if (s->chip_id_opt[0]) {
		memcpy(id, s->chip_id_opt, 13);
	} else if (s->boot_info_set || !s->state_dir) {
		return 0;
	} else {
		if (mkdir(s->state_dir, 0777) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", s->state_dir, strerror(errno));
			return -1;
		}
		FILE *fp = path_of(p, sizeof p, s->state_dir, "device.json") ? NULL : fopen(p, "r");
		if (fp) {
			char buf[4096];
			size_t n = fread(buf, 1, sizeof buf - 1, fp);
			fclose(fp);
			buf[n] = 0;
			const char *c = strstr(buf, "\"chip_id\": \"");
			if (c && strspn(c + 12, "0123456789abcdef") >= 12)
				memcpy(id, c + 12, 12);
		}
		if (!id[0])
			chip_id_random(id);
	}
	id[12] = 0;
	chip_id_put(s, id);
	return 0;
}

int state_load(struct sim *s, char *err, size_t errlen)
{
	char p[4096];
	bool missing;
	if (!s->state_dir)
		return 0;
	if (mkdir(s->state_dir, 0777) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", s->state_dir, strerror(errno));
		return -1;
	}
	if (path_of(p, sizeof p, s->state_dir, "flash.bin") ||
	    read_exact(p, s->flash.mem, s->flash.size, &missing, err, errlen))
		return -1;
	if (missing)
		s->flash.dirty = true;
	if (path_of(p, sizeof p, s->state_dir, "efuse.bin") ||
	    read_exact(p, s->efuse.mem, EFUSE_SIZE, &missing, err, errlen))
		return -1;
	if (missing)
		s->efuse.dirty = true;
	if (path_of(p, sizeof p, s->state_dir, "device.json") == 0) {
		FILE *fp = fopen(p, "r");
		if (fp) {
			char buf[4096];
			size_t n = fread(buf, 1, sizeof buf - 1, fp);
			fclose(fp);
			buf[n] = 0;
			const char *r = strstr(buf, "\"resets\":");
			if (r)
				s->resets = (unsigned)strtoul(r + 9, NULL, 10);
		}
	}
	return 0;
}

static const char *mode_name(enum dev_mode m)
{
	switch (m) {
	case M_RESET: return "reset";
	case M_ROM_WAIT: return "rom-handshake";
	case M_ROM_CMD: return "rom-command";
	case M_APP: return "application";
	case M_IDLE: return "flash-boot-blank";
	case M_DEAD: return "dead";
	}
	return "?";
}

int state_save(struct sim *s)
{
	char p[4096];
	int rc = 0;
	if (!s->state_dir) {
		s->flash.dirty = s->efuse.dirty = false;
		return 0;
	}
	if (path_of(p, sizeof p, s->state_dir, "flash.bin") == 0 &&
	    write_atomic(p, s->flash.mem, s->flash.size) == 0)
		s->flash.dirty = false;
	else
		rc = -1;
	if (path_of(p, sizeof p, s->state_dir, "efuse.bin") == 0 &&
	    write_atomic(p, s->efuse.mem, EFUSE_SIZE) == 0)
		s->efuse.dirty = false;
	else
		rc = -1;
	char js[1024], bi[2 * MAX_BOOT_INFO + 1], cid[13];
	chip_id_get(s, cid);
	for (size_t i = 0; i < s->id.boot_info_len; i++)
		snprintf(bi + 2 * i, 3, "%02x", s->id.boot_info[i]);
	bi[2 * s->id.boot_info_len] = 0;
	int n = snprintf(js, sizeof js,
		"{\n  \"model\": \"ST67W611M1 (ncpsim)\",\n  \"chip_id\": \"%s\",\n"
		"  \"flash_part\": \"%s\",\n  \"flash_size\": %u,\n"
		"  \"jedec\": \"%02x%02x%02x%02x\",\n  \"boot_info\": \"%s\",\n"
		"  \"mode\": \"%s\",\n  \"baud\": %u,\n  \"resets\": %u,\n"
		"  \"programmed_bytes\": %llu\n}\n",
		s->id.boot_info_len >= 18 ? cid : "", part_name(s), s->flash.size, s->id.jedec[0], s->id.jedec[1], s->id.jedec[2], s->id.jedec[3],
		bi, mode_name(s->mode), s->dev_baud, s->resets,
		(unsigned long long)s->flash.programmed);
	if (n < 0 || (size_t)n >= sizeof js || path_of(p, sizeof p, s->state_dir, "device.json") ||
	    write_atomic(p, js, (size_t)n))
		rc = -1;
	return rc;
}

void state_mark(struct sim *s, double now)
{
	if ((s->flash.dirty || s->efuse.dirty) && now >= s->next_save) {
		state_save(s);
		s->next_save = now + 0.5;
	}
}
