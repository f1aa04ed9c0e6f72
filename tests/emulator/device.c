/*
 * device.c - the chip: straps, the ROM's handshake and framing (protocol.md
 * 2.2, 3, 10; the commands are in commands.c), and "the application" that
 * runs from flash.
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

#include "ncpsim.h"

#define BURST_GAP 0.05           /* s of silence that ends an ignored burst */
#define RUN_GAP 0.01             /* s of silence that breaks a run of 0x55 */
#define APP_PERIOD 0.2
#define APP_BOOT_TIME 0.1        /* s from reset to the banner (boot2 + init) */

static uint32_t app_baud(const struct sim *s)
{
	const struct fault *f = fault_find(&s->faults, F_APP_BAUD);
	return (f && f->count) ? (uint32_t)f->count : s->id.app_baud;
}

/* ---- lifecycle --------------------------------------------------------- */

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
	s->boot_high_since = -1; /* set by the first line change (see below) */
	s->en_low_since = -1;
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
	s->ignoring_burst = false;
	s->guard_until = s->deaf_until = 0;
	s->deaf_to_timeout = false;
	s->in_tail = false;
	s->latched_err = 0;
	part_reset(s);
	s->xip = false;
	s->loader = false; /* RAM is gone: the ROM again */
	memset(&s->img, 0, sizeof s->img);
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

static bool boot_pin(const struct sim *s, bool dtr, bool rts)
{
	if (s->wr.boot_line == 0)
		return s->strap_download;
	return pin(s->wr.boot_line == 1 ? rts : dtr, s->wr.boot_invert);
}

void dev_lines_changed(struct sim *s, bool old_dtr, bool old_rts, double now)
{
	bool was = en_pin(s, old_dtr, old_rts), is = en_pin(s, s->dtr, s->rts);
	bool bwas = boot_pin(s, old_dtr, old_rts), bis = boot_pin(s, s->dtr, s->rts);
	/* strap-hold bookkeeping: when BOOT rose, when CHIP_EN fell (a BOOT
	 * high from the start counts as high since long ago) */
	if (bwas && s->boot_high_since < 0)
		s->boot_high_since = now - 1e6;
	if (!bwas && bis)
		s->boot_high_since = now;
	else if (bwas && !bis)
		s->boot_high_since = -1;
	if (was && !is)
		s->en_low_since = now;
	if (was && !is) {
		s->mode = M_RESET;
		xz_end(s);
		wire_purge_out(s);
	} else if (!was && is && s->mode != M_DEAD) {
		bool boot = s->wr.boot_line ? pin(line_state(s, s->wr.boot_line), s->wr.boot_invert)
					    : s->strap_download;
		const struct fault *sh = fault_find(&s->faults, F_STRAP_HOLD);
		bool app = s->flash.size >= 4 && !memcmp(s->flash.mem, "BFNP", 4);
		if (sh && boot && app && s->wr.boot_line &&
		    (s->boot_high_since < 0 || s->boot_high_since > s->en_low_since ||
		     now - s->en_low_since < sh->seconds))
			boot = false; /* improper strap with an application in flash: it boots */
		dev_reset(s, boot, now);
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
	fprintf(s->log, "0x%02X %s plen=%zu%s%s -> %s", cmd, op_name(cmd), n,
		r->note[0] ? " " : "", r->note, rep);
	/* realtime: when (monotonic s) and how long the modelled device is busy
	 * (adapter latency + flash work), and the UART baud (for benchmarks) */
	if (s->tm.realtime)
		fprintf(s->log, " @%.6f busy=%.6f baud=%u", now_s(),
			s->tm.latency + r->op_time + (r->baud_before ? s->tm.rate_switch_s : 0),
			s->dev_baud);
	fputc('\n', s->log);
	fflush(s->log);
}

static void rom_back_to_wait(struct sim *s)
{
	s->mode = M_ROM_WAIT;
	s->sync_count = 0;
	s->ignoring_burst = false;
	s->deaf_to_timeout = false;
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
			reply_fl(r, 0x0103);
		}
	}
	if (r->len == 0 && (fl = fault_fl_for(&s->faults, cmd)) != 0) {
		snprintf(r->note, sizeof r->note, "(fault)");
		reply_fl(r, fl);
	}
	if (r->len == 0)
		rom_command(s, cmd, p, n, r);
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
	} else if (s->loader && (cmd == 0x30 || cmd == 0x3C) && r->len == 2) {
		/* the eflash_loader keeps the host waiting with PD while it erases:
		 * at least one, then one per 20 ms of modelled erase time */
		int k = 0;
		for (double t = now; (k == 0 || t < at) && k < 100000; t += 0.02, k++)
			wire_send(s, (const uint8_t *)"PD", 2, s->dev_baud, t, WS_ROM);
	}
	wire_send(s, r->buf, r->len, s->dev_baud, at, WS_ROM);
	s->busy_until = at;
	s->last_activity = at;
	if (r->baud_after) {
		s->dev_baud = r->baud_after;
		if (s->host_follows)
			s->host_baud = s->dev_baud;
		/* 0x22: the OK goes out at the old rate, then the ROM re-clocks;
		 * what arrives before it is done is lost */
		s->deaf_until = at + s->clk_switch;
		s->dropped = 0;
	}
	log_cmd(s, cmd, n, r);
	if (r->run_image) { /* the RAM image runs: the loader waits for a sync */
		rom_back_to_wait(s);
		s->loader = s->id.ram_loader;
		if (s->loader)
			s->rom_timeout = 0;
		else
			s->mode = M_IDLE;
		if (s->log) {
			fprintf(s->log, "run: %s\n", s->loader ? "eflash_loader started, waiting for a handshake"
								: "RAM image runs (silent)");
			fflush(s->log);
		}
	} else if (r->reset_after) {
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
	/* Legacy (--skip-stray-55): 0x55 skipped wherever a header is expected.
	 * By default a 0x55 after the handshake guard is a frame byte like any
	 * other: the ROM has no reason to skip it (docs/api/ncpsim.md). */
	if (s->skip_stray_55 && s->hdr_len == 0 && b == 0x55)
		return;
	if (s->hdr_len < 4) {
		s->hdr[s->hdr_len++] = b;
		if (s->hdr_len < 4)
			return;
		s->pwant = (size_t)s->hdr[2] | (size_t)s->hdr[3] << 8;
		s->plen = 0;
		size_t limit = s->id.max_payload > FRAME_LIMIT ? s->id.max_payload : FRAME_LIMIT;
		if (s->pwant > limit) { /* more than the ROM's buffer */
			struct reply r = { .len = 0 };
			snprintf(r.note, sizeof r.note, "declared len=%zu > %zu", s->pwant, limit);
			if (s->id.oversize_silent) {
				r.none = true;
				s->deaf_to_timeout = true;
			} else {
				reply_fl(&r, 0x0102);
				wire_send(s, r.buf, r.len, s->dev_baud, now, WS_ROM);
				s->discarding = true;
				s->discard_left = s->pwant;
			}
			log_cmd(s, s->hdr[0], s->pwant, &r);
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
			if (s->sync_count && now - s->last_rx_byte > RUN_GAP)
				s->sync_count = 0; /* a pause breaks the run */
			uint32_t rate = hb ? hb : (s->host_baud ? s->host_baud : s->raw_baud);
			unsigned need = s->sync_min ? s->sync_min : (unsigned)ceil(s->sync_s * rate / 10.0);
			if ((unsigned)++s->sync_count >= need) {
				s->sync_count = 0;
				if (s->flaky_left > 0) {
					s->flaky_left--;
					s->ignoring_burst = true;
				} else {
					s->dev_baud = hb ? hb : (s->host_baud ? s->host_baud : s->raw_baud);
					s->mode = M_ROM_CMD;
					rom_frame_reset(s);
					s->last_activity = now;
					/* what follows the OK for sync_guard is dropped: the tail
					 * of the burst, and a command sent too early */
					s->guard_until = now + s->sync_guard;
					s->dropped = 0;
					s->in_tail = true;
					if (s->log) {
						fprintf(s->log, "handshake baud=%u -> OK", s->dev_baud);
						if (s->tm.realtime)
							fprintf(s->log, " @%.6f busy=%.6f baud=%u", now_s(),
								s->tm.latency, s->dev_baud);
						fputc('\n', s->log);
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
		if (s->deaf_to_timeout)
			break;
		/* the rest of the sync burst: 0x55 straight after the OK, nothing else in between
		 * (over TCP its last bytes may come late); any other byte ends it */
		if (s->in_tail && b == 0x55)
			break;
		s->in_tail = false;
		if (now < s->guard_until || now < s->deaf_until) {
			bool tail = now < s->guard_until && b == 0x55; /* the rest of the burst */
			if (!tail && s->dropped++ == 0 && s->log) {
				fprintf(s->log, "%s: input dropped (0x%02x %.1f ms after the OK)\n",
					now < s->guard_until ? "handshake guard" : "0x22 clock switch", b,
					(now - (now < s->guard_until ? s->guard_until - s->sync_guard
								 : s->deaf_until - s->clk_switch)) * 1000);
				fflush(s->log);
			}
			break;
		}
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
