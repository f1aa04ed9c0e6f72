/*
 * port_fd.c - the fd backend (port_backend.h): one read/write/wait/drain
 * loop for every byte-stream transport (pty, socket://, rfc2217://), and
 * the TCP connect they share. Sockets are BSD sockets on POSIX and Winsock
 * on Windows; the differences are kept to the few helpers at the top.
 */
#include "port_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <ws2tcpip.h>
#else
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>
#endif

#define SLICE 0.1 /* longest single wait, seconds */

/* ---- the platform differences ---- */

#if defined(_WIN32)
typedef WSAPOLLFD sock_pollfd;
#define sock_poll(pfd, n, ms) WSAPoll((pfd), (n), (ms))
#define E_AGAIN WSAEWOULDBLOCK
#define E_INTR WSAEINTR
#define E_INPROGRESS WSAEWOULDBLOCK
#define E_REFUSED WSAECONNREFUSED
#define E_TIMEDOUT WSAETIMEDOUT
#define E_RESET WSAECONNRESET
#define E_PIPE WSAESHUTDOWN
#define SEND_FLAGS 0
#else
typedef struct pollfd sock_pollfd;
#define sock_poll(pfd, n, ms) poll((pfd), (n), (ms))
#define E_AGAIN EAGAIN
#define E_INTR EINTR
#define E_INPROGRESS EINPROGRESS
#define E_REFUSED ECONNREFUSED
#define E_TIMEDOUT ETIMEDOUT
#define E_RESET ECONNRESET
#define E_PIPE EPIPE
#if defined(MSG_NOSIGNAL)
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0 /* macOS: SO_NOSIGPIPE is set at connect */
#endif
#endif

/* The error of the last socket (or, on POSIX, descriptor) call. */
static int last_err(int sock)
{
#if defined(_WIN32)
	return sock ? WSAGetLastError() : errno;
#else
	(void)sock;
	return errno;
#endif
}

static int is_again(int e)
{
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN && !defined(_WIN32)
	if (e == EWOULDBLOCK)
		return 1;
#endif
	return e == E_AGAIN;
}

static const char *err_text(int e, int sock, char *buf, size_t len)
{
#if defined(_WIN32)
	if (sock) {
		DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM |
						 FORMAT_MESSAGE_IGNORE_INSERTS,
					 NULL, (DWORD)e, 0, buf, (DWORD)len, NULL);
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
				 buf[n - 1] == '.' || buf[n - 1] == ' '))
			buf[--n] = '\0';
		if (n == 0)
			snprintf(buf, len, "Winsock error %d", e);
		return buf;
	}
#else
	(void)sock;
#endif
	snprintf(buf, len, "%s", strerror(e));
	return buf;
}

static short poll_events(int events)
{
	return (short)((events & PORT_WAIT_IN ? POLLIN : 0) |
		       (events & PORT_WAIT_OUT ? POLLOUT : 0));
}

static int sock_close(port_sock fd)
{
#if defined(_WIN32)
	return closesocket(fd);
#else
	return close(fd);
#endif
}

/* ---- waits ---- */

int port_fd_wait(struct port *p, port_sock fd, int sock, int events,
		 double deadline)
{
	char m[160];

#if defined(_WIN32)
	if (!sock) {
		port_seterr(p, "%s: not a socket", p->url);
		return PORT_EIO;
	}
#endif
	for (;;) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		double left = deadline - ncp_now();
		if (left < 0)
			left = 0;
		if (left > SLICE)
			left = SLICE;
		sock_pollfd pfd = {.fd = fd, .events = poll_events(events)};
		int r = sock_poll(&pfd, 1, (int)(left * 1000 + 0.999));
		if (r < 0) {
			int e = last_err(sock);
			if (e == E_INTR)
				continue;
			port_seterr(p, "%s: poll: %s", p->url, err_text(e, sock, m, sizeof m));
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

/* ---- data ---- */

static long fd_recv(struct port_fd *f, uint8_t *buf, size_t n)
{
	if (n > 0x40000000u)
		n = 0x40000000u;
#if defined(_WIN32)
	return recv(f->fd, (char *)buf, (int)n, 0);
#else
	return f->sock ? (long)recv(f->fd, buf, n, 0) : (long)read(f->fd, buf, n);
#endif
}

static long fd_send(struct port_fd *f, const uint8_t *buf, size_t n)
{
	if (n > 0x40000000u)
		n = 0x40000000u;
#if defined(_WIN32)
	return send(f->fd, (const char *)buf, (int)n, SEND_FLAGS);
#else
	return f->sock ? (long)send(f->fd, buf, n, SEND_FLAGS)
		       : (long)write(f->fd, buf, n);
#endif
}

int port_fd_read(struct port_fd *f, uint8_t *buf, size_t n, double deadline)
{
	struct port *p = &f->base;
	char m[160];

	for (;;) {
		long r = fd_recv(f, buf, n);
		if (r > 0)
			return (int)r;
		int e = r < 0 ? last_err(f->sock) : 0;
		if (r < 0 && e == E_INTR)
			continue;
		/* a pty whose other end closed reads EIO; a socket reads 0 */
		if (r == 0 || (!f->sock && e == EIO)) {
			port_seterr(p, "%s: %s", p->url, f->closed_msg);
			return PORT_EIO;
		}
		if (!is_again(e)) {
			port_seterr(p, "%s: read failed: %s", p->url,
				    err_text(e, f->sock, m, sizeof m));
			return PORT_EIO;
		}
		int w = port_fd_wait(p, f->fd, f->sock, PORT_WAIT_IN, deadline);
		if (w <= 0)
			return w;
	}
}

int port_fd_write(struct port_fd *f, const uint8_t *buf, size_t n,
		  double deadline)
{
	struct port *p = &f->base;
	size_t done = 0;
	char m[160];

	while (done < n) {
		long w = fd_send(f, buf + done, n - done);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		int e = w < 0 ? last_err(f->sock) : 0;
		if (w < 0 && e == E_INTR)
			continue;
		if (w < 0 && !is_again(e)) {
			port_seterr(p, "%s: write failed: %s%s", p->url,
				    err_text(e, f->sock, m, sizeof m),
				    e == E_PIPE || e == E_RESET ?
					    " (peer disconnected)" : "");
			return PORT_EIO;
		}
		int r = port_fd_wait(p, f->fd, f->sock, PORT_WAIT_OUT, deadline);
		if (r < 0)
			return r;
		if (r == 0)
			break;
	}
	return (int)done;
}

/* Bytes not yet sent: 0..n, or -1 with errno set. */
static int out_queued(struct port_fd *f)
{
#if defined(_WIN32)
	(void)f;
	return 0; /* Winsock cannot tell; send() has handed it to the stack */
#else
	int q = 0;
#if defined(__APPLE__) && defined(SO_NWRITE)
	if (f->sock) {
		socklen_t ql = sizeof q;
		return getsockopt(f->fd, SOL_SOCKET, SO_NWRITE, &q, &ql) < 0 ? -1 : q;
	}
#endif
	return ioctl(f->fd, TIOCOUTQ, &q) < 0 ? -1 : q;
#endif
}

int port_fd_drain(struct port_fd *f, double deadline)
{
	struct port *p = &f->base;

	for (;;) {
		int q = out_queued(f);
		if (q < 0) {
			port_seterr(p, "%s: cannot query output queue: %s",
				    p->url, strerror(errno));
			return PORT_EIO;
		}
		if (q == 0)
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

void port_fd_discard(struct port_fd *f)
{
	uint8_t junk[512];

	while (fd_recv(f, junk, sizeof junk) > 0)
		;
}

void port_fd_close(struct port_fd *f)
{
#if defined(_WIN32)
	if (f->sock) {
		closesocket(f->fd);
		WSACleanup(); /* pairs with the WSAStartup in port_tcp_connect */
	}
#else
	close(f->fd);
#endif
}

int port_fd_op_read(struct port *p, uint8_t *buf, size_t n, double deadline)
{
	return port_fd_read((struct port_fd *)p, buf, n, deadline);
}

int port_fd_op_write(struct port *p, const uint8_t *buf, size_t n,
		     double deadline)
{
	return port_fd_write((struct port_fd *)p, buf, n, deadline);
}

int port_fd_op_drain(struct port *p, double deadline)
{
	return port_fd_drain((struct port_fd *)p, deadline);
}

/* ---- TCP (socket:// and rfc2217://) ---- */

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

/* Non-blocking, not inherited by child processes. */
static int sock_setup(port_sock fd)
{
#if defined(_WIN32)
	u_long on = 1;
	SetHandleInformation((HANDLE)fd, HANDLE_FLAG_INHERIT, 0);
	return ioctlsocket(fd, FIONBIO, &on) == 0 ? 0 : -1;
#else
#if defined(SO_NOSIGPIPE)
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return 0;
#endif
}

int port_sock_adopt(port_sock fd)
{
#if defined(_WIN32)
	WSADATA wsa;
	WSAStartup(MAKEWORD(2, 2), &wsa); /* port_fd_close's WSACleanup */
#endif
	return sock_setup(fd);
}

/* One slice of waiting for a connect in progress: > 0 done (either way),
 * 0 not yet, < 0 error. Windows uses select(): WSAPoll does not report a
 * failed connect before Windows 10 2004 (it waits out the timeout), select
 * reports it in the exception set. */
static int connect_slice(port_sock fd, double seconds)
{
#if defined(_WIN32)
	fd_set w, e;
	struct timeval tv = {0, (long)(seconds * 1e6) + 1000};
	FD_ZERO(&w);
	FD_ZERO(&e);
	FD_SET(fd, &w);
	FD_SET(fd, &e);
	return select(0, NULL, &w, &e, &tv);
#else
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	return poll(&pfd, 1, (int)(seconds * 1000) + 1);
#endif
}

/* Waits for a connect in progress; 0 connected, else the error code. */
static int connect_wait(port_sock fd, double deadline)
{
	for (;;) {
		if (ncp_interrupt_pending())
			return E_INTR;
		double left = deadline - ncp_now();
		if (left <= 0)
			return E_TIMEDOUT;
		int r = connect_slice(fd, left > SLICE ? SLICE : left);
		if (r < 0 && last_err(1) != E_INTR)
			return last_err(1);
		if (r > 0) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, (char *)&soerr, &sl);
			return soerr; /* a refused connect leaves its error here */
		}
	}
}

int port_tcp_connect(struct port_fd *f, const char *host, int tcp_port,
		     double timeout_s, char *err, size_t errlen,
		     enum port_open_failure *why)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	char service[16], m[160];
	int last = E_REFUSED, ok = 0;
	port_sock fd = 0;
	double deadline = ncp_now() + (timeout_s > 0 ? timeout_s : 5.0);

#if defined(_WIN32)
	WSADATA wsa;
	if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
		snprintf(err, errlen, "cannot start Winsock");
		return -1;
	}
#endif
	snprintf(service, sizeof service, "%d", tcp_port);
	int g = getaddrinfo(host, service, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host,
			 gai_strerror(g));
		*why = PORT_FAIL_MISSING;
		goto fail;
	}
	for (ai = res; ai && !ok; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
#if defined(_WIN32)
		if (fd == INVALID_SOCKET) {
#else
		if (fd < 0) {
#endif
			last = last_err(1);
			continue;
		}
		if (sock_setup(fd) < 0) {
			last = last_err(1);
		} else if (connect(fd, ai->ai_addr, (int)ai->ai_addrlen) == 0) {
			ok = 1;
		} else {
			last = last_err(1);
			if (last == E_INPROGRESS)
				last = connect_wait(fd, deadline);
			ok = last == 0;
		}
		if (!ok) {
			sock_close(fd);
			if (last == E_INTR)
				break;
		}
	}
	freeaddrinfo(res);
	if (!ok) {
		if (last == E_REFUSED)
			*why = PORT_FAIL_REFUSED;
		else if (last == E_INTR)
			*why = PORT_FAIL_INTERRUPTED;
		snprintf(err, errlen, "cannot connect to %s:%d: %s%s", host,
			 tcp_port,
			 last == E_REFUSED  ? "connection refused" :
			 last == E_INTR     ? "interrupted" :
			 last == E_TIMEDOUT ? "timed out" :
					      err_text(last, 1, m, sizeof m),
			 last == E_REFUSED ? " (is the server running?)" : "");
		goto fail;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, (const char *)&one, sizeof one);
	f->fd = fd;
	f->sock = 1;
	return 0;
fail:
#if defined(_WIN32)
	WSACleanup();
#endif
	return -1;
}
