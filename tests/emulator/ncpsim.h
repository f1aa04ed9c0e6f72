/*
 * ncpsim.h - the virtual ST67W611M1 (BL616/QCC743 boot ROM).
 *
 * Written from the protocol notes (now docs/protocol.md) only; shares no code with src/.
 * One struct sim holds every piece of state; nothing lives at file scope.
 *
 * Data path (host side -> device side):
 *   net.c      frontend socket/pty -> Telnet/RFC 2217 decoding -> wire_host_rx()
 *   faults.c   drop/flip/echo on the wire
 *   wire.c     pacing (realtime), baud mismatch model (uart_resample), output queue
 *   device.c   straps, ROM handshake and framing, "the application"
 *   commands.c the ROM's commands
 *   flash.c    NOR model and the state directory; efuse.c eFuse, MAC, ECDH
 *   ncpsim.c   main: options, profiles, signals, stdin, the poll() loop
 */
#ifndef NCPSIM_H
#define NCPSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <poll.h>

#include <lzma.h>

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#define EFUSE_SIZE 512
#define MAX_PAYLOAD (4 + 8192) /* buffer; the limits are identity.max_payload and FRAME_LIMIT */
#define FRAME_LIMIT (4 + 4096)  /* any frame: the BL602 ISP doc's 4096-byte data limit */
#define STRICT_PAYLOAD (4 + 2048) /* 0x31/0x3F: what the vendor sends (tx_size 2056) */
#define MAX_BOOT_INFO 64
#define MAX_FAULTS 32
#define RAM_BASE 0x22FC0000u
#define RAM_SIZE 0x10000u
#define NREGS 8

/* ---- faults.c ---------------------------------------------------------- */

enum fault_kind {
	F_SILENT, F_APP_BAUD, F_ECHO, F_DROP, F_FLIP, F_FL, F_STALL,
	F_POWERLOSS, F_ROMTIMEOUT, F_FLAKY, F_PD, F_STRAP_HOLD, F_FUSSY,
};
enum { DIR_RX = 1, DIR_TX = 2 }; /* RX = host -> device, TX = device -> host */

struct fault {
	enum fault_kind kind;
	int dir;          /* drop/flip */
	double p;         /* drop/flip probability per byte; fussy: at twice `baud` */
	uint32_t baud;    /* fussy: error-free up to this baud */
	int cmd;          /* fl/stall opcode */
	unsigned code;    /* fl code */
	long nth;         /* fl/stall: occurrence (1-based), 0 = every */
	long seen;        /* occurrences so far */
	double seconds;   /* stall */
	uint64_t bytes;   /* powerloss threshold */
	bool exit_after;  /* powerloss: exit (true) or go dead */
	long count;       /* romtimeout N / flaky N / app-baud baud */
};

struct faults {
	struct fault f[MAX_FAULTS];
	int n;
	uint64_t rng;
};

int fault_parse(struct faults *fs, const char *spec, char *err, size_t errlen);
const struct fault *fault_find(const struct faults *fs, enum fault_kind k);
unsigned fault_fl_for(struct faults *fs, int cmd);   /* 0 = none */
double fault_stall_for(struct faults *fs, int cmd);  /* 0 = none */
/* drop/flip/fussy on bytes crossing the wire at `baud` in direction dir */
size_t fault_line(struct faults *fs, int dir, uint32_t baud, uint8_t *buf, size_t n);
double fault_rand(struct faults *fs); /* [0,1) */
void fault_help(FILE *out);

/* ---- flash.c ----------------------------------------------------------- */

struct flash {
	uint8_t *mem;
	uint32_t size;
	bool dirty;
	uint64_t programmed; /* bytes programmed since start (powerloss) */
};

int flash_init(struct flash *f, uint32_t size);
void flash_free(struct flash *f);
bool flash_range_ok(const struct flash *f, uint32_t addr, uint64_t len);
void flash_erase(struct flash *f, uint32_t start, uint32_t end_incl); /* sector-rounded */
void flash_program(struct flash *f, uint32_t addr, const uint8_t *d, size_t n); /* AND */

/* ---- efuse.c ----------------------------------------------------------- */

struct efuse {
	uint8_t mem[EFUSE_SIZE];
	bool dirty;
	void *dev_key;       /* EVP_PKEY *, the device's ECDH key of this session */
	uint8_t session[16]; /* AES-128 key after 0x90 */
	bool have_session;
};

void efuse_default(struct efuse *e, const uint8_t chip_id[6]);
unsigned efuse_write(struct efuse *e, uint32_t start, const uint8_t *d, size_t n);
unsigned efuse_read(const struct efuse *e, uint32_t start, uint32_t n, uint8_t *out);
void efuse_read_mac(const struct efuse *e, uint8_t mac[6]);
unsigned efuse_write_mac(struct efuse *e, const uint8_t mac[6]);
unsigned efuse_ecdh(struct efuse *e, const uint8_t host_pk[64], uint8_t dev_pk[64]);
unsigned efuse_challenge(struct efuse *e, uint8_t out[96]);
unsigned efuse_aes(const struct efuse *e, bool encrypt, const uint8_t *in, size_t n, uint8_t *out);
int efuse_print_test_key(FILE *out);
void efuse_free(struct efuse *e);

/* ---- the whole simulator ---------------------------------------------- */

enum frontend { FE_RFC2217, FE_RAW, FE_PTY };
enum dev_mode { M_RESET, M_ROM_WAIT, M_ROM_CMD, M_APP, M_IDLE, M_DEAD };

struct chunk {
	double at;     /* release time */
	uint32_t baud; /* device UART baud the bytes were sent at */
	size_t len, sent;
	uint8_t *data;
	int flags;     /* WS_RAW: echo loop, never resampled; WS_ROM: ROM reply */
};

struct outq {
	struct chunk *c;
	size_t n, cap;
	double line_free; /* realtime: when the TX line is free again */
};

struct rxq {
	uint8_t *b;
	double *t;
	uint32_t *baud; /* host baud each byte was sent at (0 = unknown) */
	size_t head, n, cap;
	double clock; /* realtime: wire clock of the last queued byte */
	bool turnaround; /* realtime: the device talked since the host last did */
};

struct identity {
	uint8_t boot_info[MAX_BOOT_INFO];
	size_t boot_info_len;
	uint8_t jedec[4];
	uint32_t flash_size;
	uint32_t app_baud;
	/* variant (profiles, variant.c) */
	size_t max_payload;    /* 0x31/0x3F payload and 0x32 read (+4) limit (default 4 + 2048) */
	bool oversize_silent;  /* --oversize silent: such frames get no answer (ROM deaf until timeout) */
	int mac_len;           /* 6, or 8 (BL702/BL702L: boot-info bytes 16..23) */
	unsigned header_size;  /* 0x11 boot header: 176, 240, 256 or 352 */
	bool ram_loader;       /* load_function 1: the ROM knows only RAM-image commands */
	bool run_memwrite;     /* BL702: run by memory writes, 0x1A refused */
};

/* RAM-image state machine (protocol.md 4.1) */
enum { RI_HEADER, RI_SEGHDR, RI_SEGDATA, RI_ALLIN, RI_CHECKED };
struct ramimg {
	int state;
	uint32_t segs_left, seg_left, seg_crc, want_crc;
	uint32_t run_magic; /* BL702 run sequence: 0x4000F100 */
};

struct timing {
	bool realtime;
	double latency;       /* s per direction change */
	double page_s;        /* per 256-byte page */
	double sector_s;      /* per 4 KiB sector erase */
	double blk32_s;       /* per 32 KiB block erase */
	double blk64_s;       /* per 64 KiB block erase */
	double chip_s_4m;     /* chip erase per 4 MiB */
	double rate_switch_s; /* 0x20: time to re-clock before OK at the new rate */
};

struct wiring {
	int en_line;   /* 0 none, 1 rts, 2 dtr */
	int boot_line; /* 0 none, 1 rts, 2 dtr */
	bool en_invert, boot_invert; /* invert: asserted = pin high */
};

struct net {
	enum frontend fe;
	int listen_fd, client_fd, pty_fd, pty_slave;
	char url[300];
	char pty_link[4096];
	/* telnet */
	int tn_state, tn_verb;
	size_t sb_len;
	uint8_t sb[64];
	uint8_t tn_opt[256];  /* per option: TN_US_ON | TN_HIM_ON | TN_US_PEND | TN_HIM_PEND */
	uint8_t *wbuf; size_t wlen, wcap; /* bytes encoded, not yet written */
	uint8_t *obuf; size_t ocap;       /* scratch for wire_take_output */
};

struct xzdec {
	lzma_stream strm;
	bool active, ended;
	uint32_t dest;
};

struct replay;

/* the flash part and the ROM's description of it (part.c) */
struct flashcfg {
	const char *name;   /* the part, NULL = JEDEC id unknown to ncpsim */
	uint8_t truth[84];  /* the part's own table entry, packed */
	uint8_t block[84];  /* what the ROM uses now (the last 88-byte 0x3B) */
	bool have_block;
	unsigned io;        /* io mode of the last flash_set (byte 2) */
};

struct sim {
	struct identity id;
	struct timing tm;
	struct wiring wr;
	struct faults faults;
	struct flash flash;
	struct efuse efuse;
	struct net net;
	struct outq out;
	struct rxq rx;
	struct xzdec xz;
	struct ramimg img;
	struct flashcfg fcfg;
	bool loader;          /* a RAM eflash_loader runs (after 0x1A / the run writes) */

	/* options */
	const char *state_dir;
	FILE *log;
	bool strap_download;  /* BOOT level when no line drives it */
	bool power_on_download;
	uint32_t raw_baud;    /* host baud assumed for raw/pty */
	double default_timeout;
	unsigned sync_min;    /* 0x55 bytes a handshake needs (0: sync_s of line time) */
	double sync_s;        /* line time of 0x55 a handshake needs (default 5 ms) */
	double sync_guard;    /* s after OK during which input is dropped (ISP doc: 20 ms) */
	double clk_switch;    /* s after the 0x22 OK during which input is lost */
	bool skip_stray_55;   /* legacy: skip 0x55 wherever a frame header is expected */
	char chip_id_opt[13]; /* --chip-id (display order), "" = from the state dir */
	bool boot_info_set;   /* --boot-info given */

	/* lines and bauds */
	bool dtr, rts;        /* asserted? (RFC 2217) */
	double boot_high_since; /* strap-hold fault: BOOT pin high since (-1: low) */
	double en_low_since;    /* strap-hold fault: CHIP_EN pin low since */
	uint32_t host_baud;   /* 0 = unknown: never a mismatch */
	bool host_follows;    /* raw/pty (and RFC 2217 before SET-BAUDRATE): the host
	                         is assumed to follow the ROM's baud switches */
	uint32_t dev_baud;    /* device UART baud */

	/* ROM state */
	enum dev_mode mode;
	double busy_until;
	double last_activity;
	double rom_timeout;   /* s */
	int sync_count;
	bool ignoring_burst;
	double last_rx_byte;
	double guard_until;   /* handshake guard: input dropped until then */
	double deaf_until;    /* 0x22 clock switch: input lost until then */
	unsigned long dropped; /* bytes dropped by the guard/switch, for the log */
	bool deaf_to_timeout; /* --oversize silent: ignore input until the ROM times out */
	bool in_tail;         /* after the handshake OK, before any other byte: 0x55 is the burst's tail */
	int flaky_left;
	long romtimeout_left; /* <0: off */
	uint8_t hdr[4];
	size_t hdr_len;
	uint8_t *payload;
	size_t plen, pwant;
	bool discarding;      /* oversized frame: skipping its payload */
	size_t discard_left;
	uint16_t latched_err;
	bool xip;
	uint8_t ram[RAM_SIZE];
	uint32_t reg_addr[NREGS], reg_val[NREGS];

	/* application */
	double app_next;
	unsigned app_line;

	struct replay *replay; /* --replay TRACE (replay.c), NULL = the device model */

	/* bookkeeping */
	unsigned resets;
	double next_save;
	bool quit;
	int exit_code;
};

/* commands.c */
struct reply {
	uint8_t buf[4 + 4096 + 64];
	size_t len;
	unsigned fl;       /* FL code sent, for the log */
	char note[512];    /* decoded request fields, for the log */
	double op_time;    /* realtime: how long the operation takes */
	uint32_t baud_before, baud_after; /* 0x20 / 0x22 */
	bool reset_after;
	bool none;         /* no reply at all */
	bool run_image;    /* 0x1A / BL702 run writes: start the loaded RAM image */
};
void rom_command(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r);
void r_ok(struct reply *r);                                   /* "OK" */
void r_data(struct reply *r, const uint8_t *d, size_t n);    /* "OK" + len + d */
void reply_fl(struct reply *r, unsigned code);
void xz_end(struct sim *s);
const char *op_name(int cmd);

/* variant.c: chip variants (profiles), RAM images, the eflash_loader */
bool variant_command(struct sim *s, int cmd, const uint8_t *p, size_t n, struct reply *r);
const char *variant_profile(const char *name);

/* device.c */
void dev_init(struct sim *s);
void dev_reset(struct sim *s, bool boot_high, double now);
void dev_input(struct sim *s, uint8_t b, uint32_t host_baud, double now);
void dev_tick(struct sim *s, double now);
double dev_next_event(const struct sim *s);
void dev_lines_changed(struct sim *s, bool old_dtr, bool old_rts, double now);
void dev_free(struct sim *s);

/* wire.c */
double now_s(void);
size_t uart_resample(const uint8_t *in, size_t n, uint32_t tx_baud, uint32_t rx_baud,
		     uint8_t *out, size_t cap);
enum { WS_RAW = 1, WS_ROM = 2 };
void wire_send(struct sim *s, const uint8_t *d, size_t n, uint32_t baud, double at, int flags);
void wire_host_rx(struct sim *s, const uint8_t *d, size_t n, double now);
void wire_pump(struct sim *s, double now);
double wire_next_event(const struct sim *s);
void wire_purge_out(struct sim *s);
void wire_purge_in(struct sim *s);
/* Moves due output bytes through faults/resampling into buf; returns count. */
size_t wire_take_output(struct sim *s, double now, uint8_t **buf, size_t *cap);
void wire_free(struct sim *s);

/* replay.c: --replay TRACE answers from an ncpflash wire trace */
int replay_load(struct sim *s, const char *path, char *err, size_t errlen);
void replay_start(struct sim *s, double now);
void replay_input(struct sim *s, const uint8_t *d, size_t n, double now);
void replay_free(struct sim *s);

/* net.c */
int net_open(struct sim *s, enum frontend fe, const char *where, char *err, size_t errlen);
int net_pollfds(struct sim *s, struct pollfd *pfd, int max);
void net_handle(struct sim *s, const struct pollfd *pfd, int n, double now);
void net_flush(struct sim *s, double now);
void net_close(struct sim *s);

/* part.c: the flash part, 0x3B, reads through the ROM's setup, per-unit erase */
void part_init(struct sim *s);
void part_reset(struct sim *s);
void part_set_para(struct sim *s, const uint8_t *p, size_t n, char *note, size_t len);
void part_read(const struct sim *s, uint32_t addr, uint8_t *out, size_t n);
bool part_can_program(const struct sim *s);
bool part_can_chip_erase(const struct sim *s);
double part_erase(struct sim *s, uint32_t start, uint32_t end, char *note, size_t len);
const char *part_name(const struct sim *s);

/* flash.c: state directory */
int state_identity(struct sim *s, char *err, size_t errlen); /* chip id from/into device.json */
int state_load(struct sim *s, char *err, size_t errlen);
int state_save(struct sim *s);
void state_mark(struct sim *s, double now);

#endif
