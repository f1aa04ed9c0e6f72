/*
 * port.c - what all transports share: URL dispatch, read/write loops with
 * deadlines, the pushback buffer, interrupt-aware waits, the wire trace,
 * TCP connect. Backends are in port_<kind>.c.
 */
#include "port.h"
#include "host.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>

#define SLICE 0.1 /* longest single wait, seconds */

void port_init(struct port *p, const struct port_ops *ops, const char *kind,
	       const char *url, const struct port_opts *o)
{
	p->ops = ops;
	p->kind = kind;
	snprintf(p->url, sizeof p->url, "%s", url);
	p->baud = o->baud > 0 ? o->baud : 115200;
	p->trace = o->trace;
	p->trace_owned = o->trace_owned;
	snprintf(p->trace_label, sizeof p->trace_label, "%s",
		 o->trace_label ? o->trace_label : "");
	p->t0 = ncp_now();
}

void port_seterr(struct port *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
}

const char *port_errmsg(const struct port *p)
{
	return p->err;
}

/* ---- trace ---- */

static void trace_head(struct port *p)
{
	fprintf(p->trace, "%10.3f ", ncp_now() - p->t0);
	if (p->trace_label[0])
		fprintf(p->trace, "[%s] ", p->trace_label);
}

static void trace_data(struct port *p, const char *dir, const uint8_t *buf,
		       size_t n)
{
	if (!p->trace || n == 0)
		return;
	trace_head(p);
	fprintf(p->trace, "%s %zu:", dir, n);
	for (size_t i = 0; i < n; i++)
		fprintf(p->trace, " %02x", buf[i]);
	fputc('\n', p->trace);
	fflush(p->trace);
}

void port_trace_note(struct port *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->trace)
		return;
	trace_head(p);
	fputs("-- ", p->trace);
	va_start(ap, fmt);
	vfprintf(p->trace, fmt, ap);
	va_end(ap);
	fputc('\n', p->trace);
	fflush(p->trace);
}

/* ---- waits ---- */

int port_sleep(double seconds)
{
	double deadline = ncp_now() + seconds;

	for (;;) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		double left = deadline - ncp_now();
		if (left <= 0)
			return PORT_OK;
		if (left > SLICE)
			left = SLICE;
		struct timespec ts = {(time_t)left,
				      (long)((left - (time_t)left) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

int port_wait_fd(struct port *p, int fd, short events, double deadline)
{
	for (;;) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		double left = deadline - ncp_now();
		if (left < 0)
			left = 0;
		if (left > SLICE)
			left = SLICE;
		struct pollfd pfd = {.fd = fd, .events = events};
		int r = poll(&pfd, 1, (int)(left * 1000 + 0.999));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			port_seterr(p, "%s: poll: %s", p->url, strerror(errno));
			return PORT_EIO;
		}
		if (r > 0) {
			if (pfd.revents & POLLNVAL) {
				port_seterr(p, "%s: handle is not open", p->url);
				return PORT_EIO;
			}
			/* POLLERR/POLLHUP: let the read/write report it */
			return 1;
		}
		if (ncp_now() >= deadline)
			return 0;
	}
}

/* ---- open / close ---- */

static int has_prefix(const char *s, const char *pre)
{
	return strncmp(s, pre, strlen(pre)) == 0;
}

struct port *port_open(const char *url, const struct port_opts *o,
		       char *err, size_t errlen, enum port_open_failure *why)
{
	struct port *p;

	*why = PORT_FAIL_IO;
	err[0] = '\0';
	if (has_prefix(url, "rfc2217://"))
		p = port_rfc2217_open(url, url + 10, o, err, errlen, why);
	else if (has_prefix(url, "socket://"))
		p = port_tcp_open(url, url + 9, o, err, errlen, why);
	else if (strstr(url, "://")) {
		snprintf(err, errlen,
			 "unsupported port URL '%s' (use a device path, "
			 "rfc2217://host:port or socket://host:port)", url);
		*why = PORT_FAIL_URL;
		return NULL;
	} else if (port_is_pty(url))
		p = port_pty_open(url, o, err, errlen, why);
	else
		p = port_serial_open(url, o, err, errlen, why);
	if (p)
		port_trace_note(p, "open %s (%s) baud %d", p->url, p->kind,
				p->baud);
	return p;
}

void port_close(struct port *p)
{
	if (!p)
		return;
	FILE *trace = p->trace;
	int owned = p->trace_owned;

	port_trace_note(p, "close");
	free(p->pend);
	p->pend = NULL;
	p->ops->close(p); /* frees p */
	if (trace && owned)
		fclose(trace);
}

/* ---- data ---- */

static size_t take_pending(struct port *p, uint8_t *buf, size_t n)
{
	size_t k = p->pend_len < n ? p->pend_len : n;

	if (k == 0)
		return 0;
	memcpy(buf, p->pend, k);
	memmove(p->pend, p->pend + k, p->pend_len - k);
	p->pend_len -= k;
	return k;
}

int port_unread(struct port *p, const uint8_t *buf, size_t n)
{
	if (n == 0)
		return PORT_OK;
	if (p->pend_len + n > p->pend_cap) {
		size_t cap = (p->pend_len + n) * 2;
		uint8_t *nb = realloc(p->pend, cap);
		if (!nb) {
			port_seterr(p, "%s: out of memory", p->url);
			return PORT_EIO;
		}
		p->pend = nb;
		p->pend_cap = cap;
	}
	memmove(p->pend + n, p->pend, p->pend_len);
	memcpy(p->pend, buf, n);
	p->pend_len += n;
	return PORT_OK;
}

static int read_loop(struct port *p, uint8_t *buf, size_t n, double timeout_s,
		     int some)
{
	double deadline = ncp_now() + (timeout_s > 0 ? timeout_s : 0);
	size_t got = take_pending(p, buf, n);

	if (n > INT32_MAX)
		n = INT32_MAX;
	while (got < n && !(some && got > 0)) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		int r = p->ops->read(p, buf + got, n - got, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			break; /* deadline */
		trace_data(p, "RX", buf + got, (size_t)r);
		got += (size_t)r;
	}
	return (int)got;
}

int port_read(struct port *p, uint8_t *buf, size_t n, double timeout_s)
{
	return read_loop(p, buf, n, timeout_s, 0);
}

int port_read_some(struct port *p, uint8_t *buf, size_t n, double timeout_s)
{
	return read_loop(p, buf, n, timeout_s, 1);
}

double port_write_timeout(const struct port *p, size_t n)
{
	return 5.0 + 2.0 * (double)n * 10.0 / (p->baud > 0 ? p->baud : 115200);
}

int port_write(struct port *p, const uint8_t *buf, size_t n, double timeout_s)
{
	double deadline = ncp_now() + timeout_s;
	size_t done = 0;

	while (done < n) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		int r = p->ops->write(p, buf + done, n - done, deadline);
		if (r < 0)
			return r;
		trace_data(p, "TX", buf + done, (size_t)r);
		done += (size_t)r;
		if (done < n && ncp_now() >= deadline) {
			port_seterr(p, "%s: write timed out (%zu of %zu bytes sent)",
				    p->url, done, n);
			return PORT_ETIMEDOUT;
		}
	}
	return PORT_OK;
}

int port_drain(struct port *p, double timeout_s)
{
	int r = p->ops->drain(p, ncp_now() + timeout_s);

	port_trace_note(p, "drain%s", r == PORT_OK ? "" : " (not complete)");
	return r;
}

int port_flush_input(struct port *p)
{
	p->pend_len = 0;
	port_trace_note(p, "flush input");
	return p->ops->flush_input(p);
}

int port_set_baud(struct port *p, int baud)
{
	int r = p->ops->set_baud(p, baud);

	if (r >= 0)
		p->baud = baud;
	port_trace_note(p, "baud %d%s%s", baud, r == PORT_OK ? "" : ": ",
			r == PORT_OK ? "" : p->err);
	return r;
}

int port_set_lines(struct port *p, int dtr, int rts)
{
	int r = p->ops->set_lines(p, dtr, rts);
	char what[32] = "";

	if (dtr >= 0)
		snprintf(what, sizeof what, "dtr=%d", dtr);
	if (rts >= 0)
		snprintf(what + strlen(what), sizeof what - strlen(what),
			 "%srts=%d", dtr >= 0 ? " " : "", rts);
	port_trace_note(p, "lines %s%s%s", what, r == PORT_OK ? "" : ": ",
			r == PORT_OK ? "" : p->err);
	return r;
}

int port_send_break(struct port *p, double seconds)
{
	int r = p->ops->send_break(p, seconds);

	port_trace_note(p, "break %.3f s%s%s", seconds,
			r == PORT_OK ? "" : ": ", r == PORT_OK ? "" : p->err);
	return r;
}

/* ---- fd helpers (pty, socket://, rfc2217://) ---- */

int port_fd_read(struct port *p, int fd, int sock, uint8_t *buf, size_t n,
		 double deadline)
{
	for (;;) {
		ssize_t r = sock ? recv(fd, buf, n, MSG_DONTWAIT) : read(fd, buf, n);
		if (r > 0)
			return (int)r;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || (!sock && errno == EIO)) {
			if (sock)
				port_seterr(p, "%s: connection closed by the peer", p->url);
			else
				port_seterr(p, "%s: the other end of the pseudo-terminal "
					       "was closed", p->url);
			return PORT_EIO;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			port_seterr(p, "%s: read failed: %s", p->url,
				    strerror(errno));
			return PORT_EIO;
		}
		int w = port_wait_fd(p, fd, POLLIN, deadline);
		if (w <= 0)
			return w;
	}
}

int port_fd_write(struct port *p, int fd, int sock, const uint8_t *buf,
		  size_t n, double deadline)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = sock ? send(fd, buf + done, n - done, MSG_NOSIGNAL)
				 : write(fd, buf + done, n - done);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			port_seterr(p, "%s: write failed: %s%s", p->url,
				    strerror(errno),
				    errno == EPIPE || errno == ECONNRESET ?
					    " (peer disconnected)" : "");
			return PORT_EIO;
		}
		int r = port_wait_fd(p, fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			break;
	}
	return (int)done;
}

int port_fd_drain(struct port *p, int fd, double deadline)
{
	for (;;) {
		int q = 0;
		if (ioctl(fd, TIOCOUTQ, &q) < 0) {
			port_seterr(p, "%s: cannot query output queue: %s",
				    p->url, strerror(errno));
			return PORT_EIO;
		}
		if (q <= 0)
			return PORT_OK;
		if (ncp_now() >= deadline) {
			port_seterr(p, "%s: %d bytes still queued at the deadline",
				    p->url, q);
			return PORT_ETIMEDOUT;
		}
		if (port_sleep(0.002) == PORT_EINTR)
			return PORT_EINTR;
	}
}

/* ---- TCP helpers (socket:// and rfc2217://) ---- */

int port_split_hostport(const char *s, char *host, size_t hostlen, int *tcp_port)
{
	const char *colon;
	const char *h = s;
	size_t hl;

	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *end;
	long v = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || (*end && *end != '/') || v <= 0 || v > 65535)
		return -1;
	*tcp_port = (int)v;
	return 0;
}

int port_tcp_connect(const char *host, int tcp_port, double timeout_s,
		     char *err, size_t errlen, enum port_open_failure *why)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	char service[16];
	int fd = -1, last = ECONNREFUSED;
	double deadline = ncp_now() + (timeout_s > 0 ? timeout_s : 5.0);

	snprintf(service, sizeof service, "%d", tcp_port);
	int g = getaddrinfo(host, service, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host,
			 gai_strerror(g));
		*why = PORT_FAIL_MISSING;
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
						   SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			int ready = 0;
			while (!ready) {
				if (ncp_interrupt_pending()) {
					last = EINTR;
					break;
				}
				double left = deadline - ncp_now();
				if (left <= 0) {
					last = ETIMEDOUT;
					break;
				}
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				int r = poll(&pfd, 1,
					     (int)((left > SLICE ? SLICE : left) *
						   1000) + 1);
				if (r > 0)
					ready = 1;
				else if (r < 0 && errno != EINTR) {
					last = errno;
					break;
				}
			}
			if (ready) {
				int soerr = 0;
				socklen_t sl = sizeof soerr;
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
				if (soerr == 0)
					break;
				last = soerr;
			}
		} else
			last = errno;
		close(fd);
		fd = -1;
		if (last == EINTR)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (last == ECONNREFUSED)
			*why = PORT_FAIL_REFUSED;
		else if (last == EINTR)
			*why = PORT_FAIL_INTERRUPTED;
		snprintf(err, errlen, "cannot connect to %s:%d: %s%s", host,
			 tcp_port,
			 last == ECONNREFUSED ? "connection refused" :
			 last == EINTR        ? "interrupted" :
			 last == ETIMEDOUT    ? "timed out" :
						strerror(last),
			 last == ECONNREFUSED ? " (is the server running?)" : "");
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	return fd;
}
