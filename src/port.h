/*
 * port.h - transports behind one ops table, and the C-level I/O helpers.
 *
 * Backends (one file each):
 *   port_serial.c   a device path, through libserialport (DTR, RTS, BREAK, baud)
 *   port_pty.c      a pseudo-terminal path (termios; data only, baud accepted,
 *                   lines reported unsupported). libserialport refuses ptys.
 *   port_tcp.c      socket://host:port   raw TCP (data only)
 *   port_rfc2217.c  rfc2217://host:port  RFC 2217 client (baud, DTR, RTS, purge)
 * port.c holds what is generic: URL dispatch, the read/write loops with
 * deadlines and interrupt checks, the pushback buffer, and the wire trace.
 *
 * Using a port from another C module (e.g. l_isp.c):
 *
 *	struct port *p = ncp_checkport(L, 1);      raises on a closed port
 *	int n = port_read(p, buf, len, 0.5);       fills up to len bytes
 *	if (n < 0) ... port_errmsg(p) ...
 *	ncp_port_read(L, p, buf, len, 0.5);        same, raising on error
 *	ncp_port_write(L, p, frame, flen);         whole buffer or raise
 *
 * Return conventions (C level):
 *   port_read()      bytes read, 0..n. A short count means the deadline
 *                    passed (never an error). PORT_EIO on I/O failure or
 *                    peer disconnect (message in port_errmsg(p)),
 *                    PORT_EINTR when SIGINT/SIGTERM became pending.
 *   port_read_some() like port_read, but returns as soon as >= 1 byte.
 *   port_write()     PORT_OK when everything was handed to the OS/socket,
 *                    PORT_ETIMEDOUT, PORT_EIO, PORT_EINTR.
 *   line/baud ops    PORT_OK applied; PORT_UNSUPPORTED the transport cannot
 *                    (reason in port_errmsg(p)); PORT_EIO failure.
 * Waits are sliced to <= 100 ms and check ncp_interrupt_pending().
 * The ncp_port_* variants raise ncp_error(L, "port"|"interrupted", ...).
 *
 * Nothing here prints; the trace (opts.trace) is the only output, and
 * only when asked for.
 */
#ifndef NCP_PORT_H
#define NCP_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lua.h>

#define NCP_PORT_MT "ncpflash.port"

enum {
	PORT_OK = 0,
	PORT_UNSUPPORTED = 1,
	PORT_EIO = -1,
	PORT_EINTR = -2,
	PORT_ETIMEDOUT = -3,
};

/* Why an open failed (becomes the `reason` field of the Lua error). */
enum port_open_failure {
	PORT_FAIL_IO = 0,  /* "io" */
	PORT_FAIL_MISSING, /* "missing" */
	PORT_FAIL_BUSY,    /* "busy" */
	PORT_FAIL_REFUSED, /* "refused" */
	PORT_FAIL_URL,     /* "url": malformed URL */
	PORT_FAIL_PROTO,   /* "protocol": peer does not speak RFC 2217 */
	PORT_FAIL_INTERRUPTED, /* SIGINT/SIGTERM while connecting */
};

struct port;

/* What p:info() reports beyond url/kind/baud/lines. Strings are owned by
 * the port (or static) and valid until close; NULL = unknown. */
struct port_info {
	const char *name, *description, *manufacturer, *product, *serial;
	const char *by_id;
	const char *low_latency; /* serial: "on ...", "unsupported ..." */
	int usb_vid, usb_pid; /* -1 = not USB / unknown */
	const char *host;
	int tcp_port; /* -1 = not TCP */
};

/* Every op returns PORT_* codes unless noted; on failure the backend
 * writes a message with port_seterr(). `deadline` is ncp_now()-based
 * absolute time. Backends wait through port_wait_fd(), which slices and
 * checks for interrupts. */
struct port_ops {
	/* >= 1 bytes read, 0 when the deadline passed, or < 0. */
	int (*read)(struct port *p, uint8_t *buf, size_t n, double deadline);
	/* bytes written (n unless the deadline passed), or < 0. */
	int (*write)(struct port *p, const uint8_t *buf, size_t n, double deadline);
	/* PORT_OK when transmitted, PORT_ETIMEDOUT, or < 0. */
	int (*drain)(struct port *p, double deadline);
	int (*flush_input)(struct port *p);
	int (*set_baud)(struct port *p, int baud);
	/* dtr/rts: 1 assert, 0 deassert, -1 leave alone. */
	int (*set_lines)(struct port *p, int dtr, int rts);
	int (*send_break)(struct port *p, double seconds);
	/* Releases everything, including p itself. */
	void (*close)(struct port *p);
	void (*info)(struct port *p, struct port_info *out);
};

struct port {
	const struct port_ops *ops;
	const char *kind; /* "serial" | "pty" | "socket" | "rfc2217" */
	char url[256];
	int baud;
	int lines;        /* 1 when the transport has modem lines */
	char err[256];    /* last error or unsupported reason */
	/* pushback: bytes read from the backend but not yet consumed */
	uint8_t *pend;
	size_t pend_len, pend_cap;
	/* trace */
	FILE *trace;
	int trace_owned;
	char trace_label[32];
	double t0;
};

/* Options for port_open(). */
struct port_opts {
	int baud;          /* default 115200 */
	FILE *trace;       /* NULL = off */
	int trace_owned;   /* fclose() it on close */
	const char *trace_label;
	double connect_timeout; /* s, TCP connect / RFC 2217 negotiation */
};

/* Opens url. On failure returns NULL, writes a message into err and the
 * failure class into *why. */
struct port *port_open(const char *url, const struct port_opts *o,
		       char *err, size_t errlen, enum port_open_failure *why);
void port_close(struct port *p);

int port_read(struct port *p, uint8_t *buf, size_t n, double timeout_s);
int port_read_some(struct port *p, uint8_t *buf, size_t n, double timeout_s);
/* Give bytes back: the next read returns them first. PORT_OK or PORT_EIO
 * (out of memory). */
int port_unread(struct port *p, const uint8_t *buf, size_t n);
int port_write(struct port *p, const uint8_t *buf, size_t n, double timeout_s);
/* Deadline for writing n bytes at the current baud: 5 s + 2x wire time. */
double port_write_timeout(const struct port *p, size_t n);
int port_drain(struct port *p, double timeout_s);
int port_flush_input(struct port *p);
int port_set_baud(struct port *p, int baud);
int port_set_lines(struct port *p, int dtr, int rts);
int port_send_break(struct port *p, double seconds);
const char *port_errmsg(const struct port *p);

/* Lua side (l_port.c). */
struct port *ncp_checkport(lua_State *L, int idx);
/* Raise "port" / "interrupted" errors; return bytes read (short = deadline). */
size_t ncp_port_read(lua_State *L, struct port *p, uint8_t *buf, size_t n,
		     double timeout_s);
void ncp_port_write(lua_State *L, struct port *p, const uint8_t *buf, size_t n);

/* ---- for backends (port.c) ---- */
void port_init(struct port *p, const struct port_ops *ops, const char *kind,
	       const char *url, const struct port_opts *o);
void port_seterr(struct port *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Waits for fd to become ready for `events` (POLLIN/POLLOUT) in slices of
 * <= 100 ms. 1 ready, 0 deadline passed, PORT_EINTR, PORT_EIO. */
int port_wait_fd(struct port *p, int fd, short events, double deadline);
/* Interrupt-aware sleep; PORT_OK or PORT_EINTR. */
int port_sleep(double seconds);
void port_trace_note(struct port *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* read()/recv() what is there, waiting up to the deadline: bytes read (> 0),
 * 0 when the deadline passed, or < 0 (the peer closed: PORT_EIO with a
 * "connection closed by the peer" / "other end of the pseudo-terminal was
 * closed" message, by `sock`). */
int port_fd_read(struct port *p, int fd, int sock, uint8_t *buf, size_t n,
		 double deadline);
/* write()/send() all of buf by the deadline: bytes written or < 0. */
int port_fd_write(struct port *p, int fd, int sock, const uint8_t *buf,
		  size_t n, double deadline);
/* Wait until the fd's output queue (TIOCOUTQ) is empty. */
int port_fd_drain(struct port *p, int fd, double deadline);
/* Split "host:port" / "[v6]:port"; 0 or -1. */
int port_split_hostport(const char *s, char *host, size_t hostlen, int *tcp_port);
/* Connects a TCP socket with a deadline; returns fd or -1 (message in err,
 * *why set). */
int port_tcp_connect(const char *host, int tcp_port, double timeout_s,
		     char *err, size_t errlen, enum port_open_failure *why);

/* Backend constructors (called by port_open). */
struct port *port_serial_open(const char *path, const struct port_opts *o,
			      char *err, size_t errlen,
			      enum port_open_failure *why);
struct port *port_pty_open(const char *path, const struct port_opts *o,
			   char *err, size_t errlen, enum port_open_failure *why);
struct port *port_tcp_open(const char *url, const char *hostport,
			   const struct port_opts *o, char *err, size_t errlen,
			   enum port_open_failure *why);
struct port *port_rfc2217_open(const char *url, const char *hostport,
			       const struct port_opts *o, char *err,
			       size_t errlen, enum port_open_failure *why);
/* The same client over an already connected stream fd (taken over; closed
 * on failure): a socketpair for tests and the fuzz harness. */
struct port *port_rfc2217_attach(int fd, const char *url,
				 const struct port_opts *o, char *err,
				 size_t errlen, enum port_open_failure *why);
/* Non-zero when path names a pseudo-terminal. */
int port_is_pty(const char *path);

/* Serial enumeration for port.list(): calls fn once per port. */
struct port_listing {
	const char *name, *description, *manufacturer, *product, *serial;
	const char *by_id, *transport;
	int usb_vid, usb_pid;
};
/* PORT_OK or PORT_EIO (message in err). */
int port_list(void (*fn)(void *ctx, const struct port_listing *e), void *ctx,
	      char *err, size_t errlen);
/* "a, b, c" of existing port names into buf, or "none found". */
void port_list_names(char *buf, size_t len);
/* Resolves the /dev/serial/by-id link pointing at path into out (empty if
 * none). */
void port_find_by_id(const char *path, char *out, size_t len);

#endif
