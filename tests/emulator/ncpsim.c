/*
 * ncpsim.c - main: options, profile files, signals, stdin commands and the
 * poll() event loop.  See `ncpsim --help` and docs/api/ncpsim.md.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ncpsim.h"

static const char default_boot_info[] =
	"0200160601000100a7128201dcd2037b82401c008f758090e8805be3";

struct opts {
	enum frontend fe;
	const char *where;
	bool have_fe;
	bool power_on_set;
	bool print_key;
	bool help;
	const char *replay;
};

static void usage(FILE *out)
{
	fputs(
"usage: ncpsim (--listen HOST:PORT | --raw HOST:PORT | --pty PATH) [options]\n"
"A virtual ST67W611M1 (BL616/QCC743 boot ROM) for tests and demos.\n"
"The first stdout line is the URL served (rfc2217://..., socket://..., or PATH).\n"
"\n"
"Frontends (one):\n"
"  --listen HOST:PORT     RFC 2217 server (DTR, RTS, baud); port 0 picks a free one\n"
"  --raw HOST:PORT        raw TCP (no lines, no baud)\n"
"  --pty PATH             pseudo-terminal, symlinked at PATH (no lines, no baud)\n"
"Device:\n"
"  --profile FILE|NAME    key=value lines: any long option below without '--';\n"
"                         NAME = built-in bl616, bl808, bl702l, bl602, bl702\n"
"  --boot-info HEX        get_boot_info payload (default: the ST67W611M1's 28 bytes)\n"
"  --jedec HEX            4 bytes (default c4601600)\n"
"  --flash-size N         bytes, k/M suffixes, multiple of 4096 (default 4M)\n"
"  --app-baud N           baud of the application in flash (default 2000000)\n"
"  --timeout-ms N         ROM inactivity timeout until 0x23 (default 2000; 0 = none)\n"
"  --mac-len 6|8          efuse_read_mac length (8: boot-info bytes 16..23)\n"
"  --max-payload N        0x31/0x3F payload and 4 + 0x32 read limit (default\n"
"                         2052 = 4 + 2048, what the vendor sends); more: FL 0102\n"
"  --oversize fl|silent   answer to a frame above the limit: FL 0102 (default),\n"
"                         or nothing and a ROM deaf until its inactivity timeout\n"
"  --chip-id HEX          6 bytes as ncpflash shows them (default: drawn at random\n"
"                         for a new --state dir and kept in its device.json)\n"
"  --header-size N        0x11 boot header: 176, 240, 256 (default) or 352\n"
"  --ram-loader[=0|1]     ROM knows only RAM-image commands; a well-formed loaded\n"
"                         image becomes the eflash_loader (BL602/BL702)\n"
"  --run-image cmd|memwrite  start a RAM image by 0x1A or the BL702 writes\n""Straps and lines:\n"
"  --wiring SPEC          default rts=en,dtr=boot: a CHIP_EN rising edge samples\n"
"                         BOOT; asserted line = pin low; add invert=en and/or\n"
"                         invert=boot for asserted = pin high; rts=none etc.\n"
"  --strap download|flash BOOT level where no line drives it (raw, pty, unwired;\n"
"                         default download)\n"
"  --power-on download|flash  mode at start (default: as --strap)\n"
"  --host-baud N          baud the raw/pty host is assumed to use (default 500000)\n"
"Handshake (strict by default; docs/api/ncpsim.md):\n"
"  --sync-ms X            0x55 line time in one run that makes a handshake (default\n"
"                         5: 250 bytes at 500 kbaud; profiles bl702/bl702l: 3)\n"
"  --sync-min N           the same as a byte count (overrides --sync-ms)\n"
"  --sync-guard-ms X      input dropped for X ms after the OK (default 20)\n"
"  --clk-switch-ms X      input lost for X ms after the 0x22 OK (default 10)\n"
"  --skip-stray-55        legacy: skip 0x55 wherever a frame header is expected\n"
"State and logs:\n"
"  --state DIR            flash.bin, efuse.bin, device.json: loaded at start, saved\n"
"                         on reset, SIGTERM/SIGINT and within a second when dirty\n"
"  --log FILE             one line per command (decoded fields -> reply)\n"
"Timing:\n"
"  --realtime             pace bytes at 10 bits/baud, add latency and flash times\n"
"  --latency-ms X         adapter turnaround per reply (default 1)\n"
"  --page-ms X            per 256-byte page program (default 0.6)\n"
"  --sector-ms X          per 4 KiB sector erase (default 45)\n"
"  --blk32-ms X           per 32 KiB block erase (default 120)\n"
"  --blk64-ms X           per 64 KiB block erase (default 150)\n"
"  --chip-erase-s X       chip erase per 4 MiB (default 12)\n"
"  --rate-switch-ms X     0x20 re-clock time before its OK (default 5, always)\n"
"Faults:\n"
"  --fault SPEC           repeatable, see below;  --seed N  seeds drop/flip\n"
"Other:\n"
"  --print-test-key       print the public key that signs 0x91 challenges (PEM)\n"
"  --replay TRACE         answer from an ncpflash --trace-file recording instead of\n"
"                         the device model; divergence is logged (docs/api/ncpsim.md)\n"
"  --help\n"
"stdin commands: reset (samples BOOT), reset boot|download, reset flash, save, quit\n"
"\n", out);
	fault_help(out);
}

static int parse_hex(const char *s, uint8_t *out, size_t max, size_t *len)
{
	size_t n = 0;
	int hi = -1;
	for (; *s; s++) {
		if (*s == ' ' || *s == ':' || *s == '_')
			continue;
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			return -1;
		if (hi < 0) {
			hi = v;
		} else {
			if (n >= max)
				return -1;
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0)
		return -1;
	*len = n;
	return 0;
}

static int parse_size(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB"))
		x <<= 10;
	else if (!strcmp(end, "M") || !strcmp(end, "MiB"))
		x <<= 20;
	else if (*end)
		return -1;
	*v = x;
	return 0;
}

static int parse_num(const char *s, double lo, double hi, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return (errno || end == s || *end || !(*v >= lo && *v <= hi)) ? -1 : 0;
}

static int parse_wiring(struct wiring *w, const char *spec)
{
	char buf[128];
	if (strlen(spec) >= sizeof buf)
		return -1;
	strcpy(buf, spec);
	struct wiring x = { 0 };
	for (char *p = buf, *save = NULL;; p = NULL) {
		char *tok = strtok_r(p, ",", &save);
		if (!tok)
			break;
		char *eq = strchr(tok, '=');
		if (!eq)
			return -1;
		*eq = 0;
		const char *k = tok, *v = eq + 1;
		if (!strcmp(k, "rts") || !strcmp(k, "dtr")) {
			int line = k[0] == 'r' ? 1 : 2;
			if (!strcmp(v, "en"))
				x.en_line = line;
			else if (!strcmp(v, "boot"))
				x.boot_line = line;
			else if (strcmp(v, "none"))
				return -1;
		} else if (!strcmp(k, "invert")) {
			if (!strcmp(v, "en"))
				x.en_invert = true;
			else if (!strcmp(v, "boot"))
				x.boot_invert = true;
			else if (!strcmp(v, "both"))
				x.en_invert = x.boot_invert = true;
			else if (strcmp(v, "none"))
				return -1;
		} else {
			return -1;
		}
	}
	if (x.en_line && x.en_line == x.boot_line)
		return -1;
	*w = x;
	return 0;
}

static int load_profile(struct sim *s, struct opts *o, const char *path, int depth);

/* One option, from argv or a profile; returns 0, or -1 with a message. */
static int apply(struct sim *s, struct opts *o, const char *name, const char *val, int depth)
{
	char err[256] = "";
	uint64_t u;
	double d;
	size_t n;
#define NEED() do { if (!val) { fprintf(stderr, "ncpsim: --%s needs a value\n", name); return -1; } } while (0)
#define BAD() do { fprintf(stderr, "ncpsim: bad value for --%s: '%s'\n", name, val); return -1; } while (0)
	if (!strcmp(name, "listen") || !strcmp(name, "raw") || !strcmp(name, "pty")) {
		NEED();
		o->fe = name[0] == 'l' ? FE_RFC2217 : name[0] == 'r' ? FE_RAW : FE_PTY;
		o->where = val;
		o->have_fe = true;
	} else if (!strcmp(name, "profile")) {
		NEED();
		return load_profile(s, o, val, depth + 1);
	} else if (!strcmp(name, "boot-info")) {
		NEED();
		if (parse_hex(val, s->id.boot_info, MAX_BOOT_INFO, &n) || n < 20)
			BAD();
		s->id.boot_info_len = n;
		s->boot_info_set = s->boot_info_set || depth == 0; /* a profile's is a default */
	} else if (!strcmp(name, "jedec")) {
		NEED();
		if (parse_hex(val, s->id.jedec, 4, &n) || n != 4)
			BAD();
	} else if (!strcmp(name, "flash-size")) {
		NEED();
		if (parse_size(val, &u) || u == 0 || u % 4096 || u > (256u << 20))
			BAD();
		s->id.flash_size = (uint32_t)u;
	} else if (!strcmp(name, "app-baud") || !strcmp(name, "host-baud")) {
		NEED();
		if (parse_num(val, 50, 20000000, &d))
			BAD();
		if (name[0] == 'a')
			s->id.app_baud = (uint32_t)d;
		else
			s->raw_baud = (uint32_t)d;
	} else if (!strcmp(name, "mac-len")) {
		NEED();
		if (strcmp(val, "6") && strcmp(val, "8"))
			BAD();
		s->id.mac_len = val[0] - '0';
	} else if (!strcmp(name, "max-payload")) {
		NEED();
		if (parse_num(val, 8, MAX_PAYLOAD, &d))
			BAD();
		s->id.max_payload = (size_t)d;
	} else if (!strcmp(name, "oversize")) {
		NEED();
		if (strcmp(val, "fl") && strcmp(val, "silent"))
			BAD();
		s->id.oversize_silent = val[0] == 's';
	} else if (!strcmp(name, "chip-id")) {
		NEED();
		uint8_t id[6];
		if (parse_hex(val, id, 6, &n) || n != 6)
			BAD();
		for (int i = 0; i < 6; i++)
			snprintf(s->chip_id_opt + 2 * i, 3, "%02x", id[i]);
	} else if (!strcmp(name, "sync-min")) {
		NEED();
		if (parse_num(val, 1, 100000, &d))
			BAD();
		s->sync_min = (unsigned)d;
	} else if (!strcmp(name, "sync-ms")) {
		NEED();
		if (parse_num(val, 0.01, 10000, &d))
			BAD();
		s->sync_s = d / 1000.0;
	} else if (!strcmp(name, "sync-guard-ms") || !strcmp(name, "clk-switch-ms")) {
		NEED();
		if (parse_num(val, 0, 10000, &d))
			BAD();
		*(name[1] == 'y' ? &s->sync_guard : &s->clk_switch) = d / 1000.0;
	} else if (!strcmp(name, "skip-stray-55")) {
		s->skip_stray_55 = !val || strcmp(val, "0");
	} else if (!strcmp(name, "header-size")) {
		NEED();
		if (strcmp(val, "176") && strcmp(val, "240") && strcmp(val, "256") && strcmp(val, "352"))
			BAD();
		s->id.header_size = (unsigned)atoi(val);
	} else if (!strcmp(name, "ram-loader")) {
		s->id.ram_loader = !val || strcmp(val, "0");
	} else if (!strcmp(name, "run-image")) {
		NEED();
		if (strcmp(val, "cmd") && strcmp(val, "memwrite"))
			BAD();
		s->id.run_memwrite = val[0] == 'm';
	} else if (!strcmp(name, "timeout-ms")) {
		NEED();
		if (parse_num(val, 0, 1e9, &d))
			BAD();
		s->default_timeout = d / 1000.0;
	} else if (!strcmp(name, "wiring")) {
		NEED();
		if (parse_wiring(&s->wr, val))
			BAD();
	} else if (!strcmp(name, "strap") || !strcmp(name, "power-on")) {
		NEED();
		bool dl;
		if (!strcmp(val, "download") || !strcmp(val, "boot"))
			dl = true;
		else if (!strcmp(val, "flash"))
			dl = false;
		else
			BAD();
		if (name[0] == 's') {
			s->strap_download = dl;
		} else {
			s->power_on_download = dl;
			o->power_on_set = true;
		}
	} else if (!strcmp(name, "state")) {
		NEED();
		s->state_dir = val;
	} else if (!strcmp(name, "log")) {
		NEED();
		if (s->log)
			fclose(s->log);
		s->log = fopen(val, "w");
		if (!s->log) {
			fprintf(stderr, "ncpsim: %s: %s\n", val, strerror(errno));
			return -1;
		}
	} else if (!strcmp(name, "realtime")) {
		s->tm.realtime = true;
	} else if (!strcmp(name, "latency-ms") || !strcmp(name, "page-ms") || !strcmp(name, "sector-ms") ||
		   !strcmp(name, "rate-switch-ms") || !strcmp(name, "blk32-ms") || !strcmp(name, "blk64-ms")) {
		NEED();
		if (parse_num(val, 0, 1e6, &d))
			BAD();
		double *t = name[0] == 'l' ? &s->tm.latency : name[0] == 'p' ? &s->tm.page_s
			  : name[0] == 's' ? &s->tm.sector_s : name[0] == 'r' ? &s->tm.rate_switch_s
			  : name[3] == '3' ? &s->tm.blk32_s : &s->tm.blk64_s;
		*t = d / 1000.0;
	} else if (!strcmp(name, "chip-erase-s")) {
		NEED();
		if (parse_num(val, 0, 1e4, &d))
			BAD();
		s->tm.chip_s_4m = d;
	} else if (!strcmp(name, "fault")) {
		NEED();
		if (fault_parse(&s->faults, val, err, sizeof err)) {
			fprintf(stderr, "ncpsim: %s\n", err);
			return -1;
		}
	} else if (!strcmp(name, "seed")) {
		NEED();
		if (parse_size(val, &u))
			BAD();
		s->faults.rng = u * 0x9E3779B97F4A7C15ull + 1;
	} else if (!strcmp(name, "replay")) {
		NEED();
		o->replay = val;
	} else if (!strcmp(name, "print-test-key")) {
		o->print_key = true;
	} else if (!strcmp(name, "help")) {
		o->help = true;
	} else {
		fprintf(stderr, "ncpsim: unknown option '%s' (see --help)\n", name);
		return -1;
	}
	return 0;
#undef NEED
#undef BAD
}

static int load_profile(struct sim *s, struct opts *o, const char *path, int depth)
{
	if (depth > 4) {
		fprintf(stderr, "ncpsim: profiles nest too deep\n");
		return -1;
	}
	FILE *fp = fopen(path, "r");
	const char *builtin = strchr(path, '/') ? NULL : variant_profile(path);
	if (!fp && builtin)
		fp = fmemopen((void *)builtin, strlen(builtin), "r");
	if (!fp) {
		fprintf(stderr, "ncpsim: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[1024];
	int rc = 0, ln = 0;
	while (rc == 0 && fgets(line, sizeof line, fp)) {
		ln++;
		char *p = line + strspn(line, " \t");
		p[strcspn(p, "\r\n")] = 0;
		if (!*p || *p == '#')
			continue;
		char *eq = strchr(p, '=');
		char *val = NULL;
		if (eq) {
			*eq = 0;
			val = eq + 1 + strspn(eq + 1, " \t");
			for (char *e = eq; e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
				e[-1] = 0;
		}
		/* values are needed by pointer after parsing: keep them alive */
		char *keep = val ? strdup(val) : NULL;
		if (val && !keep) {
			rc = -1;
			break;
		}
		rc = apply(s, o, p, keep, depth);
		if (rc)
			fprintf(stderr, "ncpsim: %s:%d: in profile\n", path, ln);
		/* state_dir keeps the pointer; the others copied what they need */
		if (!(keep && s->state_dir == keep))
			free(keep);
	}
	fclose(fp);
	return rc;
}

static bool boot_pin_now(const struct sim *s)
{
	if (!s->wr.boot_line || s->net.fe != FE_RFC2217)
		return s->strap_download;
	bool asserted = s->wr.boot_line == 1 ? s->rts : s->dtr;
	return s->wr.boot_invert ? asserted : !asserted;
}

static void stdin_line(struct sim *s, char *line, double now)
{
	line[strcspn(line, "\r\n")] = 0;
	if (!strcmp(line, "reset"))
		dev_reset(s, boot_pin_now(s), now);
	else if (!strcmp(line, "reset boot") || !strcmp(line, "reset download"))
		dev_reset(s, true, now);
	else if (!strcmp(line, "reset flash"))
		dev_reset(s, false, now);
	else if (!strcmp(line, "save"))
		state_save(s);
	else if (!strcmp(line, "quit") || !strcmp(line, "exit"))
		s->quit = true;
	else if (line[0])
		fprintf(stderr, "ncpsim: unknown stdin command '%s'\n", line);
}

static void run(struct sim *s, int sfd)
{
	char inbuf[512];
	size_t inlen = 0;
	bool stdin_open = true;
	while (!s->quit) {
		double now = now_s();
		dev_tick(s, now);
		net_flush(s, now);
		state_mark(s, now);
		if (s->quit)
			break;
		double next = now + 1.0, t;
		if ((t = wire_next_event(s)) < next)
			next = t;
		if ((t = dev_next_event(s)) < next)
			next = t;
		if ((s->flash.dirty || s->efuse.dirty) && s->next_save < next)
			next = s->next_save;
		/* to the microsecond (ppoll), not rounded up to a millisecond: a reply due at T leaves at T */
		double wait = next <= now ? 0 : next - now;
		struct timespec ts = { .tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9) };
		struct pollfd pfd[8];
		int n = 0;
		pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		int stdin_ix = -1;
		if (stdin_open) {
			stdin_ix = n;
			pfd[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
		}
		int net0 = n;
		n += net_pollfds(s, pfd + n, 8 - n);
		int r = ppoll(pfd, (nfds_t)n, &ts, NULL);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		now = now_s();
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) > 0)
				s->quit = true;
		}
		if (stdin_ix >= 0 && pfd[stdin_ix].revents) {
			ssize_t k = read(0, inbuf + inlen, sizeof inbuf - 1 - inlen);
			if (k <= 0) {
				stdin_open = false;
			} else {
				inlen += (size_t)k;
				inbuf[inlen] = 0;
				char *nl;
				while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
					*nl = 0;
					stdin_line(s, inbuf, now);
					size_t used = (size_t)(nl + 1 - inbuf);
					memmove(inbuf, nl + 1, inlen - used);
					inlen -= used;
				}
				if (inlen == sizeof inbuf - 1)
					inlen = 0; /* overlong line: dropped */
			}
		}
		net_handle(s, pfd + net0, n - net0, now);
	}
}

int main(int argc, char **argv)
{
	struct sim *s = calloc(1, sizeof *s);
	if (!s)
		return 1;
	struct opts o = { .fe = FE_RFC2217 };
	size_t bl;
	parse_hex(default_boot_info, s->id.boot_info, MAX_BOOT_INFO, &bl);
	s->id.boot_info_len = bl;
	memcpy(s->id.jedec, "\xc4\x60\x16\x00", 4);
	s->id.flash_size = 4u << 20;
	s->id.app_baud = 2000000;
	s->id.max_payload = STRICT_PAYLOAD;
	s->sync_s = 0.005;   /* the BL602 ISP document's burst; the vendor sends 6 ms */
	s->sync_guard = 0.020;
	s->clk_switch = 0.010;
	s->id.mac_len = 6;
	s->id.header_size = 256;
	s->raw_baud = 500000;
	s->default_timeout = 2.0;
	s->strap_download = true;
	s->wr = (struct wiring){ .en_line = 1, .boot_line = 2 };
	/* typical times (docs/api/ncpsim.md "Flash part"): 4K/32K/64K erase as the
	 * W25Q32FV datasheet's typical column; page and chip erase as measured */
	s->tm = (struct timing){ .latency = 0.001, .page_s = 0.0006, .sector_s = 0.045,
				 .blk32_s = 0.120, .blk64_s = 0.150,
				 .chip_s_4m = 12.0, .rate_switch_s = 0.005 };
	s->host_follows = true;
	s->exit_code = 0;

	static const struct option lo[] = {
		{ "listen", 1, 0, 0 }, { "raw", 1, 0, 0 }, { "pty", 1, 0, 0 }, { "profile", 1, 0, 0 },
		{ "boot-info", 1, 0, 0 }, { "jedec", 1, 0, 0 }, { "flash-size", 1, 0, 0 },
		{ "app-baud", 1, 0, 0 }, { "host-baud", 1, 0, 0 }, { "timeout-ms", 1, 0, 0 },
		{ "wiring", 1, 0, 0 }, { "strap", 1, 0, 0 }, { "power-on", 1, 0, 0 },
		{ "state", 1, 0, 0 }, { "log", 1, 0, 0 }, { "realtime", 0, 0, 0 },
		{ "latency-ms", 1, 0, 0 }, { "page-ms", 1, 0, 0 }, { "sector-ms", 1, 0, 0 },
		{ "chip-erase-s", 1, 0, 0 }, { "rate-switch-ms", 1, 0, 0 }, { "fault", 1, 0, 0 },
		{ "seed", 1, 0, 0 },
		{ "mac-len", 1, 0, 0 }, { "max-payload", 1, 0, 0 }, { "header-size", 1, 0, 0 },
		{ "ram-loader", 2, 0, 0 }, { "run-image", 1, 0, 0 }, { "print-test-key", 0, 0, 0 }, { "help", 0, 0, 'h' },
		{ "replay", 1, 0, 0 }, { "oversize", 1, 0, 0 }, { "chip-id", 1, 0, 0 },
		{ "sync-min", 1, 0, 0 }, { "sync-ms", 1, 0, 0 }, { "sync-guard-ms", 1, 0, 0 }, { "clk-switch-ms", 1, 0, 0 },
		{ "skip-stray-55", 2, 0, 0 }, { "blk32-ms", 1, 0, 0 }, { "blk64-ms", 1, 0, 0 },
		{ 0, 0, 0, 0 },
	};
	int c, ix, rc = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, &ix)) != -1) {
		if (c == 'h') {
			o.help = true;
			continue;
		}
		if (c != 0) {
			fprintf(stderr, "ncpsim: bad option '%s' (see --help)\n", argv[optind - 1]);
			goto out;
		}
		if (apply(s, &o, lo[ix].name, optarg, 0))
			goto out;
	}
	if (optind < argc) {
		fprintf(stderr, "ncpsim: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (o.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (o.print_key) {
		rc = efuse_print_test_key(stdout) ? 1 : 0;
		goto out;
	}
	if (!o.have_fe) {
		fprintf(stderr, "ncpsim: need --listen, --raw or --pty (see --help)\n");
		goto out;
	}
	if (!o.power_on_set)
		s->power_on_download = s->strap_download;
	if (s->faults.rng == 0)
		s->faults.rng = 0x9E3779B97F4A7C15ull;

	char err[512];
	rc = 1;
	if (flash_init(&s->flash, s->id.flash_size)) {
		fprintf(stderr, "ncpsim: out of memory\n");
		goto out;
	}
	if (state_identity(s, err, sizeof err)) {
		fprintf(stderr, "ncpsim: %s\n", err);
		goto out_flash;
	}
	efuse_default(&s->efuse, s->id.boot_info + 12);
	part_init(s);
	if (state_load(s, err, sizeof err)) {
		fprintf(stderr, "ncpsim: %s\n", err);
		goto out_flash;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "ncpsim: signalfd: %s\n", strerror(errno));
		goto out_flash;
	}
	if (o.replay && replay_load(s, o.replay, err, sizeof err)) {
		fprintf(stderr, "ncpsim: %s\n", err);
		close(sfd);
		goto out_flash;
	}
	if (net_open(s, o.fe, o.where, err, sizeof err)) {
		fprintf(stderr, "ncpsim: %s\n", err);
		close(sfd);
		goto out_flash;
	}
	dev_init(s);
	double now = now_s();
	s->next_save = now;
	dev_reset(s, s->power_on_download, now);
	replay_start(s, now);
	printf("%s\n", s->net.url);
	fflush(stdout);
	run(s, sfd);
	rc = state_save(s) ? 1 : s->exit_code;
	net_close(s);
	close(sfd);
	dev_free(s);
	wire_free(s);
	efuse_free(&s->efuse);
out_flash:
	flash_free(&s->flash);
out:
	replay_free(s);
	if (s->log)
		fclose(s->log);
	free(s);
	return rc;
}
