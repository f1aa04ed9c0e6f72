/*
 * faults.c - seeded fault injection (--fault SPEC, repeatable, combinable).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ncpsim.h"

void fault_help(FILE *out)
{
	fputs(
"Faults (--fault SPEC, repeatable; random ones use --seed N):\n"
"  silent                 the device never transmits (the handshake reads b'')\n"
"  app-baud[:BAUD]        the application owns the UART even in download mode:\n"
"                         it logs at BAUD (default --app-baud) and echoes what it\n"
"                         receives, so a sync burst gets garbage back\n"
"  echo                   TX->RX loop on the adapter: host bytes come back\n"
"  drop:P[:rx|tx|both]    drop each byte with probability P (rx = host->device)\n"
"  flip:P[:rx|tx|both]    flip one random bit of each byte with probability P\n"
"  fussy:BAUD[:P[:rx|tx|both]]  an adapter that is clean up to BAUD and flips\n"
"                         one bit of a byte with probability P*(baud/BAUD-1)\n"
"                         above it (P default 0.01: 1% of the bytes at twice BAUD)\n"
"  fl:CMD:CODE[:N]        answer FL CODE to the Nth CMD (hex; N default 1, 0 = every)\n"
"  stall:CMD:SECONDS[:N]  delay the reply to the Nth CMD (N default 1, 0 = every)\n"
"  pd:MS                  send PD every MS ms while an erase (0x30/0x3C) takes time\n"
"                         (with --realtime or a stall)\n"
"  powerloss:BYTES[:exit|dead]  after BYTES programmed (0x31/0x3F), save the\n"
"                         half-written flash and exit 0 (default) or go dead\n"
"  romtimeout:N           after N answered commands the ROM drops back to\n"
"                         waiting for a handshake\n"
"  flaky[:N]              ignore the first N handshakes (default 1)\n"
"  strap-hold[:MS]        t01-like module: while the flash holds an application\n"
"                         (BFNP), BOOT counts only on a proper strap sequence -\n"
"                         BOOT high before CHIP_EN falls and CHIP_EN low for at\n"
"                         least MS ms (default 200); otherwise the application\n"
"                         boots and talks. Erased flash: any strap works\n", out);
}

static int parse_u(const char *s, int base, unsigned long long *v)
{
	char *end;
	errno = 0;
	if (!s || !*s)
		return -1;
	*v = strtoull(s, &end, base);
	return (errno || *end) ? -1 : 0;
}

static int parse_d(const char *s, double *v)
{
	char *end;
	errno = 0;
	if (!s || !*s)
		return -1;
	*v = strtod(s, &end);
	return (errno || *end) ? -1 : 0;
}

static int parse_dir(const char *s, int *dir)
{
	if (!s || !strcmp(s, "both"))
		*dir = DIR_RX | DIR_TX;
	else if (!strcmp(s, "rx"))
		*dir = DIR_RX;
	else if (!strcmp(s, "tx"))
		*dir = DIR_TX;
	else
		return -1;
	return 0;
}

int fault_parse(struct faults *fs, const char *spec, char *err, size_t errlen)
{
	char buf[256];
	char *f[6] = { 0 };
	int nf = 0;
	if (fs->n >= MAX_FAULTS) {
		snprintf(err, errlen, "too many faults (max %d)", MAX_FAULTS);
		return -1;
	}
	if (strlen(spec) >= sizeof buf) {
		snprintf(err, errlen, "fault spec too long");
		return -1;
	}
	strcpy(buf, spec);
	for (char *p = buf, *save = NULL; nf < 6; p = NULL) {
		char *tok = strtok_r(p, ":", &save);
		if (!tok)
			break;
		f[nf++] = tok;
	}
	struct fault x = { .nth = 1 };
	unsigned long long u = 0;
	bool bad = false;
	if (nf == 0) {
		bad = true;
	} else if (!strcmp(f[0], "silent") && nf == 1) {
		x.kind = F_SILENT;
	} else if (!strcmp(f[0], "echo") && nf == 1) {
		x.kind = F_ECHO;
	} else if (!strcmp(f[0], "app-baud") && nf <= 2) {
		x.kind = F_APP_BAUD;
		if (nf == 2)
			bad = parse_u(f[1], 10, &u) || u == 0 || u > 20000000;
		x.count = (long)u;
	} else if ((!strcmp(f[0], "drop") || !strcmp(f[0], "flip")) && (nf == 2 || nf == 3)) {
		x.kind = f[0][0] == 'd' ? F_DROP : F_FLIP;
		bad = parse_d(f[1], &x.p) || x.p < 0 || x.p > 1 || parse_dir(nf == 3 ? f[2] : NULL, &x.dir);
	} else if (!strcmp(f[0], "fussy") && nf >= 2 && nf <= 4) {
		x.kind = F_FUSSY;
		x.p = 0.01;
		bad = parse_u(f[1], 10, &u) || u < 50 || u > 20000000;
		x.baud = (uint32_t)u;
		if (nf >= 3)
			bad = bad || parse_d(f[2], &x.p) || x.p < 0 || x.p > 1;
		bad = bad || parse_dir(nf == 4 ? f[3] : NULL, &x.dir);
	} else if (!strcmp(f[0], "fl") && (nf == 3 || nf == 4)) {
		x.kind = F_FL;
		bad = parse_u(f[1], 16, &u) || u > 0xFF;
		x.cmd = (int)u;
		bad = bad || parse_u(f[2], 16, &u) || u > 0xFFFF;
		x.code = (unsigned)u;
		if (nf == 4) {
			bad = bad || parse_u(f[3], 10, &u) || u > 1000000000;
			x.nth = (long)u;
		}
	} else if (!strcmp(f[0], "stall") && (nf == 3 || nf == 4)) {
		x.kind = F_STALL;
		bad = parse_u(f[1], 16, &u) || u > 0xFF;
		x.cmd = (int)u;
		bad = bad || parse_d(f[2], &x.seconds) || x.seconds < 0 || x.seconds > 3600;
		if (nf == 4) {
			bad = bad || parse_u(f[3], 10, &u) || u > 1000000000;
			x.nth = (long)u;
		}
	} else if (!strcmp(f[0], "powerloss") && (nf == 2 || nf == 3)) {
		x.kind = F_POWERLOSS;
		bad = parse_u(f[1], 0, &u);
		x.bytes = u;
		x.exit_after = true;
		if (nf == 3) {
			if (!strcmp(f[2], "dead"))
				x.exit_after = false;
			else if (strcmp(f[2], "exit"))
				bad = true;
		}
	} else if (!strcmp(f[0], "pd") && nf == 2) {
		x.kind = F_PD;
		bad = parse_d(f[1], &x.seconds) || x.seconds < 1 || x.seconds > 60000;
		x.seconds /= 1000.0;
	} else if (!strcmp(f[0], "romtimeout") && nf == 2) {
		x.kind = F_ROMTIMEOUT;
		bad = parse_u(f[1], 10, &u) || u > 1000000000;
		x.count = (long)u;
	} else if (!strcmp(f[0], "strap-hold") && nf <= 2) {
		x.kind = F_STRAP_HOLD;
		x.seconds = 200;
		if (nf == 2)
			bad = parse_d(f[1], &x.seconds) || x.seconds < 0 || x.seconds > 60000;
		x.seconds /= 1000.0;
	} else if (!strcmp(f[0], "flaky") && nf <= 2) {
		x.kind = F_FLAKY;
		u = 1;
		if (nf == 2)
			bad = parse_u(f[1], 10, &u) || u > 1000;
		x.count = (long)u;
	} else {
		bad = true;
	}
	if (bad) {
		snprintf(err, errlen, "bad fault spec '%s' (see --help)", spec);
		return -1;
	}
	fs->f[fs->n++] = x;
	return 0;
}

const struct fault *fault_find(const struct faults *fs, enum fault_kind k)
{
	for (int i = 0; i < fs->n; i++)
		if (fs->f[i].kind == k)
			return &fs->f[i];
	return NULL;
}

/* Counts an occurrence of cmd for every fl/stall fault on it. */
static struct fault *hit(struct faults *fs, enum fault_kind k, int cmd)
{
	struct fault *found = NULL;
	for (int i = 0; i < fs->n; i++) {
		struct fault *x = &fs->f[i];
		if (x->kind != k || x->cmd != cmd)
			continue;
		x->seen++;
		if (!found && (x->nth == 0 || x->seen == x->nth))
			found = x;
	}
	return found;
}

unsigned fault_fl_for(struct faults *fs, int cmd)
{
	struct fault *x = hit(fs, F_FL, cmd);
	return x ? x->code : 0;
}

double fault_stall_for(struct faults *fs, int cmd)
{
	struct fault *x = hit(fs, F_STALL, cmd);
	return x ? x->seconds : 0;
}

double fault_rand(struct faults *fs)
{
	/* xorshift64* */
	uint64_t x = fs->rng ? fs->rng : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	fs->rng = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

size_t fault_line(struct faults *fs, int dir, uint32_t baud, uint8_t *buf, size_t n)
{
	for (int i = 0; i < fs->n; i++) {
		struct fault *x = &fs->f[i];
		if ((x->kind != F_DROP && x->kind != F_FLIP && x->kind != F_FUSSY) || !(x->dir & dir) || x->p <= 0)
			continue;
		double p = x->p;
		if (x->kind == F_FUSSY) { /* clean up to x->baud, worse the faster above it */
			if (baud <= x->baud)
				continue;
			p = x->p * ((double)baud / x->baud - 1.0);
			if (p > 1)
				p = 1;
		}
		size_t o = 0;
		for (size_t k = 0; k < n; k++) {
			uint8_t b = buf[k];
			if (fault_rand(fs) < p) {
				if (x->kind == F_DROP)
					continue;
				b ^= (uint8_t)(1u << (unsigned)(fault_rand(fs) * 8));
			}
			buf[o++] = b;
		}
		n = o;
	}
	return n;
}
