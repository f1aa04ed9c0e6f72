/*
 * port.h - the transport interface: open a port by URL, move bytes with
 * deadlines, drive the modem lines. Plain C, no Lua (the Lua binding is
 * l_port.c; its helpers for other bindings are in l_port.h).
 *
 * Transports are backends behind one ops table (port_backend.h); which one
 * opens a URL is decided by the table in port.c:
 *   rfc2217://host:port  RFC 2217 client (baud, DTR, RTS, break, purge)
 *   socket://host:port   raw TCP (data only)
 *   a device path        a serial port (Linux/macOS: libserialport; a
 *                        pseudo-terminal path is opened with termios, data
 *                        only)
 *
 * Return conventions:
 *   port_read()      bytes read, 0..n. A short count means the deadline
 *                    passed (never an error). PORT_EIO on I/O failure or
 *                    peer disconnect (message in port_errmsg(p)),
 *                    PORT_EINTR when SIGINT/SIGTERM became pending.
 *   port_read_some() like port_read, but returns as soon as >= 1 byte.
 *   port_write()     PORT_OK when everything was handed to the OS/socket,
 *                    PORT_ETIMEDOUT, PORT_EIO, PORT_EINTR.
 *   line/baud ops    PORT_OK applied; PORT_UNSUPPORTED the transport cannot
 *                    (reason in port_errmsg(p)); PORT_EIO failure.
 * Waits are sliced to <= 100 ms and check ncp_interrupt_pending() (os.h).
 *
 * Nothing here prints; the trace (opts.trace) is the only output, and
 * only when asked for.
 */
#ifndef NCP_PORT_H
#define NCP_PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

struct port_ops; /* port_backend.h */

/* An open port. The fields are for reading; backends extend it. */
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

/* What port_get_info() reports beyond url/kind/baud/lines. Strings are
 * owned by the port (or static) and valid until close; NULL = unknown. */
struct port_info {
	const char *name, *description, *manufacturer, *product, *serial;
	const char *by_id;
	const char *low_latency; /* serial: "on ...", "unsupported ..." */
	int usb_vid, usb_pid; /* -1 = not USB / unknown */
	const char *host;
	int tcp_port; /* -1 = not TCP */
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
/* dtr/rts: 1 assert, 0 deassert, -1 leave alone. */
int port_set_lines(struct port *p, int dtr, int rts);
int port_send_break(struct port *p, double seconds);
const char *port_errmsg(const struct port *p);
/* Fills *out (unknown fields NULL / -1). */
void port_get_info(struct port *p, struct port_info *out);

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

#endif
