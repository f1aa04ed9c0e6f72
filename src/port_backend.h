/*
 * port_backend.h - private to the transport backends (port*.c): the ops
 * table a backend fills, the helpers it may use, and the fd backend that
 * the stream transports share.
 *
 * A backend is one file: a struct that starts with `struct port` (or with
 * `struct port_fd` for a stream), a `struct port_ops` table, and an open
 * function with the port_open_fn signature listed in port.c's table.
 * See docs/internals.md "Adding a transport".
 */
#ifndef NCP_PORT_BACKEND_H
#define NCP_PORT_BACKEND_H

#include "os.h"
#include "port.h"

#if defined(_WIN32)
#include <winsock2.h>
typedef SOCKET port_sock;
#else
typedef int port_sock;
#endif

/* Every op returns PORT_* codes unless noted; on failure the backend
 * writes a message with port_seterr(). `deadline` is an ncp_now()-based
 * absolute time. Backends wait through port_fd_wait() or port_sleep(),
 * which slice and check for interrupts. */
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

/* The open function of a backend. `url` is what the user gave, `rest` the
 * part after the scheme (the whole path for device backends). On failure:
 * NULL, a message in err and the class in *why (preset to PORT_FAIL_IO). */
typedef struct port *(*port_open_fn)(const char *url, const char *rest,
				     const struct port_opts *o, char *err,
				     size_t errlen, enum port_open_failure *why);

/* ---- helpers (port.c) ---- */
void port_init(struct port *p, const struct port_ops *ops, const char *kind,
	       const char *url, const struct port_opts *o);
void port_seterr(struct port *p, const char *fmt, ...)
	NCP_PRINTF(2, 3);
/* Interrupt-aware sleep; PORT_OK or PORT_EINTR. */
int port_sleep(double seconds);
void port_trace_note(struct port *p, const char *fmt, ...)
	NCP_PRINTF(2, 3);

/* The open failure for a port that does not exist: "no such port PATH
 * (serial ports present: ...)", class PORT_FAIL_MISSING. */
void port_missing(const char *path, char *err, size_t errlen,
		  enum port_open_failure *why);

/* ---- the fd backend (port_fd.c) ----
 * A byte stream on a file descriptor (a pty; POSIX only) or a socket, with
 * the read/write/wait/drain loops written once. The pty, socket:// and
 * rfc2217:// backends embed it first in their struct. */
struct port_fd {
	struct port base;
	port_sock fd;
	int sock;               /* 1 a socket (recv/send), 0 a descriptor */
	const char *closed_msg; /* the error when the other end goes away */
};

enum { PORT_WAIT_IN = 1, PORT_WAIT_OUT = 2 };

/* Waits for fd to become readable/writable in slices of <= 100 ms.
 * 1 ready (or an error condition the next read/write reports), 0 deadline
 * passed, PORT_EINTR, PORT_EIO. */
int port_fd_wait(struct port *p, port_sock fd, int sock, int events,
		 double deadline);
/* Reads what is there, waiting up to the deadline: bytes read (> 0), 0 when
 * the deadline passed, or < 0 (the other end closed: PORT_EIO with
 * closed_msg). */
int port_fd_read(struct port_fd *f, uint8_t *buf, size_t n, double deadline);
/* Writes all of buf by the deadline: bytes written or < 0. */
int port_fd_write(struct port_fd *f, const uint8_t *buf, size_t n,
		  double deadline);
/* Waits until the output queue is empty. */
int port_fd_drain(struct port_fd *f, double deadline);
/* Drops whatever has arrived (sockets). */
void port_fd_discard(struct port_fd *f);
/* Closes the descriptor/socket (not the struct). */
void port_fd_close(struct port_fd *f);
/* The three as port_ops entries, for backends that need nothing more. */
int port_fd_op_read(struct port *p, uint8_t *buf, size_t n, double deadline);
int port_fd_op_write(struct port *p, const uint8_t *buf, size_t n,
		     double deadline);
int port_fd_op_drain(struct port *p, double deadline);

/* Makes an already connected socket (a socketpair end) usable by the fd
 * backend: non-blocking, not inherited. 0 or -1. */
int port_sock_adopt(port_sock fd);
/* Split "host:port" / "[v6]:port"; 0 or -1. */
int port_split_hostport(const char *s, char *host, size_t hostlen, int *tcp_port);
/* Connects a non-blocking TCP socket into f->fd with a deadline; 0, or -1
 * (message in err, *why set). */
int port_tcp_connect(struct port_fd *f, const char *host, int tcp_port,
		     double timeout_s, char *err, size_t errlen,
		     enum port_open_failure *why);

/* ---- backends (one file each; listed in port.c's table) ---- */
struct port *port_serial_open(const char *url, const char *rest,
			      const struct port_opts *o, char *err,
			      size_t errlen, enum port_open_failure *why);
struct port *port_pty_open(const char *url, const char *rest,
			   const struct port_opts *o, char *err, size_t errlen,
			   enum port_open_failure *why);
/* Non-zero when path names a pseudo-terminal (port_pty.c). */
int port_is_pty(const char *path);
struct port *port_tcp_open(const char *url, const char *rest,
			   const struct port_opts *o, char *err, size_t errlen,
			   enum port_open_failure *why);
struct port *port_rfc2217_open(const char *url, const char *rest,
			       const struct port_opts *o, char *err,
			       size_t errlen, enum port_open_failure *why);
/* The RFC 2217 client over an already connected stream socket (taken over;
 * closed on failure): a socketpair for tests and the fuzz harness. */
struct port *port_rfc2217_attach(port_sock fd, const char *url,
				 const struct port_opts *o, char *err,
				 size_t errlen, enum port_open_failure *why);

#endif
