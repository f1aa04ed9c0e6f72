/*
 * net.c - the frontends: an RFC 2217 server, raw TCP, a pseudo-terminal.
 *
 * One client at a time: the listening socket is not polled while a client is
 * connected, so a second connection waits in the backlog until the first
 * one leaves; the device state persists across clients.
 *
 * RFC 2217: Telnet option negotiation for BINARY, SGA and COM-PORT-OPTION
 * (44) without loops (we answer only state changes we did not ask for);
 * everything else is refused.  COM-PORT subcommands: SET-BAUDRATE (the
 * host's UART rate), SET-DATASIZE/PARITY/STOPSIZE (acknowledged, 8N1),
 * SET-CONTROL (DTR and RTS on/off/query, flow and break acknowledged),
 * PURGE-DATA, the mask commands and SIGNATURE.  Data bytes 0xFF are doubled
 * both ways, also inside subnegotiations.  When a client leaves, its lines
 * drop (DTR and RTS deasserted, as closing a tty does).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ncpsim.h"

enum { IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251, SB = 250, SE = 240 };
enum { OPT_BINARY = 0, OPT_SGA = 3, OPT_COMPORT = 44 };
enum { TN_DATA, TN_IAC, TN_VERB, TN_SB, TN_SB_IAC };
enum { TN_US_ON = 1, TN_HIM_ON = 2, TN_US_PEND = 4, TN_HIM_PEND = 8 };
#define WBUF_MAX (64u << 20)

static void wput(struct net *n, const uint8_t *d, size_t len)
{
	if (n->wlen + len > WBUF_MAX)
		return; /* client not reading: drop, like a full adapter FIFO */
	if (n->wlen + len > n->wcap) {
		size_t nc = n->wcap ? n->wcap : 4096;
		while (nc < n->wlen + len)
			nc *= 2;
		uint8_t *b = realloc(n->wbuf, nc);
		if (!b)
			return;
		n->wbuf = b;
		n->wcap = nc;
	}
	memcpy(n->wbuf + n->wlen, d, len);
	n->wlen += len;
}

static void tn_cmd(struct net *n, uint8_t verb, uint8_t opt)
{
	uint8_t b[3] = { IAC, verb, opt };
	wput(n, b, 3);
}

static void tn_sb_reply(struct net *n, uint8_t cmd, const uint8_t *v, size_t len)
{
	uint8_t head[4] = { IAC, SB, OPT_COMPORT, cmd };
	wput(n, head, 4);
	for (size_t i = 0; i < len; i++) {
		wput(n, &v[i], 1);
		if (v[i] == IAC)
			wput(n, &v[i], 1);
	}
	uint8_t tail[2] = { IAC, SE };
	wput(n, tail, 2);
}

static bool supported(uint8_t opt)
{
	return opt == OPT_BINARY || opt == OPT_SGA || opt == OPT_COMPORT;
}

static void tn_verb(struct net *n, uint8_t verb, uint8_t opt)
{
	uint8_t *st = &n->tn_opt[opt];
	switch (verb) {
	case DO:
		if (!supported(opt)) {
			tn_cmd(n, WONT, opt);
		} else if (!(*st & TN_US_ON)) {
			*st |= TN_US_ON;
			if (*st & TN_US_PEND)
				*st &= (uint8_t)~TN_US_PEND;
			else
				tn_cmd(n, WILL, opt);
		}
		break;
	case DONT:
		if (*st & TN_US_ON) {
			*st &= (uint8_t)~TN_US_ON;
			if (!(*st & TN_US_PEND))
				tn_cmd(n, WONT, opt);
		}
		*st &= (uint8_t)~TN_US_PEND;
		break;
	case WILL:
		if (!supported(opt)) {
			tn_cmd(n, DONT, opt);
		} else if (!(*st & TN_HIM_ON)) {
			*st |= TN_HIM_ON;
			if (*st & TN_HIM_PEND)
				*st &= (uint8_t)~TN_HIM_PEND;
			else
				tn_cmd(n, DO, opt);
		}
		break;
	case WONT:
		if (*st & TN_HIM_ON) {
			*st &= (uint8_t)~TN_HIM_ON;
			if (!(*st & TN_HIM_PEND))
				tn_cmd(n, DONT, opt);
		}
		*st &= (uint8_t)~TN_HIM_PEND;
		break;
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_lines(struct sim *s, bool dtr, bool rts, double now)
{
	bool od = s->dtr, orr = s->rts;
	if (od == dtr && orr == rts)
		return;
	s->dtr = dtr;
	s->rts = rts;
	if (s->log) {
		fprintf(s->log, "lines dtr=%d rts=%d", dtr, rts);
		if (s->tm.realtime)
			fprintf(s->log, " @%.6f", now_s());
		fputc('\n', s->log);
		fflush(s->log);
	}
	dev_lines_changed(s, od, orr, now);
}

static void tn_subneg(struct sim *s, double now)
{
	struct net *n = &s->net;
	if (n->sb_len < 2 || n->sb[0] != OPT_COMPORT)
		return;
	uint8_t cmd = n->sb[1];
	const uint8_t *v = n->sb + 2;
	size_t vl = n->sb_len - 2;
	uint8_t r[4];
	switch (cmd) {
	case 0: /* SIGNATURE */
		tn_sb_reply(n, 100, (const uint8_t *)"ncpsim", 6);
		break;
	case 1: { /* SET-BAUDRATE */
		if (vl != 4)
			break;
		uint32_t b = be32(v);
		if (b) {
			s->host_baud = b;
			s->host_follows = false;
			if (s->log) {
				fprintf(s->log, "host baud %u\n", b);
				fflush(s->log);
			}
		}
		uint32_t cur = s->host_baud ? s->host_baud : s->dev_baud;
		r[0] = (uint8_t)(cur >> 24);
		r[1] = (uint8_t)(cur >> 16);
		r[2] = (uint8_t)(cur >> 8);
		r[3] = (uint8_t)cur;
		tn_sb_reply(n, 101, r, 4);
		break;
	}
	case 2: case 3: case 4: /* DATASIZE, PARITY, STOPSIZE: we are 8N1 */
		if (vl != 1)
			break;
		r[0] = v[0] ? v[0] : (cmd == 2 ? 8 : 1);
		tn_sb_reply(n, (uint8_t)(cmd + 100), r, 1);
		break;
	case 5: /* SET-CONTROL */
		if (vl != 1)
			break;
		r[0] = v[0];
		switch (v[0]) {
		case 0: r[0] = 1; break;                 /* flow: none */
		case 4: r[0] = 6; break;                 /* break: off */
		case 7: r[0] = s->dtr ? 8 : 9; break;
		case 10: r[0] = s->rts ? 11 : 12; break;
		case 8: set_lines(s, true, s->rts, now); break;
		case 9: set_lines(s, false, s->rts, now); break;
		case 11: set_lines(s, s->dtr, true, now); break;
		case 12: set_lines(s, s->dtr, false, now); break;
		default: break;
		}
		tn_sb_reply(n, 105, r, 1);
		break;
	case 10: case 11: /* LINESTATE / MODEMSTATE masks */
		if (vl == 1)
			tn_sb_reply(n, (uint8_t)(cmd + 100), v, 1);
		break;
	case 12: /* PURGE-DATA */
		if (vl != 1)
			break;
		if (v[0] & 1)
			wire_purge_out(s);
		if (v[0] & 2)
			wire_purge_in(s);
		tn_sb_reply(n, 112, v, 1);
		break;
	default:
		break;
	}
}

/* Decodes Telnet from the client; data goes to the wire in order with the
 * subnegotiations (a baud change after a frame applies after that frame). */
static void tn_input(struct sim *s, const uint8_t *d, size_t len, double now)
{
	struct net *n = &s->net;
	uint8_t data[4096];
	size_t dl = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t b = d[i];
		switch (n->tn_state) {
		case TN_DATA:
			if (b == IAC)
				n->tn_state = TN_IAC;
			else
				data[dl++] = b;
			break;
		case TN_IAC:
			n->tn_state = TN_DATA;
			if (b == IAC) {
				data[dl++] = b;
			} else if (b >= WILL && b <= DONT) {
				n->tn_verb = b;
				n->tn_state = TN_VERB;
			} else if (b == SB) {
				n->sb_len = 0;
				n->tn_state = TN_SB;
			}
			break;
		case TN_VERB:
			tn_verb(n, (uint8_t)n->tn_verb, b);
			n->tn_state = TN_DATA;
			break;
		case TN_SB:
			if (b == IAC)
				n->tn_state = TN_SB_IAC;
			else if (n->sb_len < sizeof n->sb)
				n->sb[n->sb_len++] = b;
			break;
		case TN_SB_IAC:
			if (b == IAC) {
				if (n->sb_len < sizeof n->sb)
					n->sb[n->sb_len++] = b;
				n->tn_state = TN_SB;
			} else {
				n->tn_state = TN_DATA;
				if (b == SE) {
					wire_host_rx(s, data, dl, now);
					dl = 0;
					tn_subneg(s, now);
				}
			}
			break;
		}
		if (dl == sizeof data) {
			wire_host_rx(s, data, dl, now);
			dl = 0;
		}
	}
	wire_host_rx(s, data, dl, now);
}

/* ---- opening ------------------------------------------------------------ */

static int open_listen(struct sim *s, const char *where, const char *scheme, char *err, size_t errlen)
{
	char host[256] = "127.0.0.1", port[32];
	const char *colon = strrchr(where, ':');
	if (colon) {
		size_t hl = (size_t)(colon - where);
		if (hl >= sizeof host || strlen(colon + 1) >= sizeof port) {
			snprintf(err, errlen, "bad address '%s'", where);
			return -1;
		}
		if (hl) {
			memcpy(host, where, hl);
			host[hl] = 0;
		}
		if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = 0;
		}
		strcpy(port, colon + 1);
	} else {
		if (strlen(where) >= sizeof port) {
			snprintf(err, errlen, "bad address '%s'", where);
			return -1;
		}
		strcpy(port, where);
	}
	char *end;
	unsigned long pv = strtoul(port, &end, 10);
	if (!port[0] || *end || pv > 65535) {
		snprintf(err, errlen, "bad port in '%s'", where);
		return -1;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "%s: %s", where, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 4) == 0)
			break;
		snprintf(err, errlen, "%s: %s", where, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s: cannot listen", where);
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char name[INET6_ADDRSTRLEN] = "127.0.0.1";
	unsigned pnum = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			pnum = ntohs(in->sin_port);
			if (in->sin_addr.s_addr != htonl(INADDR_ANY))
				inet_ntop(AF_INET, &in->sin_addr, name, sizeof name);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			pnum = ntohs(in6->sin6_port);
			if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
				char a6[INET6_ADDRSTRLEN];
				inet_ntop(AF_INET6, &in6->sin6_addr, a6, sizeof a6);
				snprintf(name, sizeof name, "[%.*s]", (int)sizeof name - 3, a6);
			}
		}
	}
	s->net.listen_fd = fd;
	snprintf(s->net.url, sizeof s->net.url, "%s://%s:%u", scheme, name, pnum);
	return 0;
}

static int open_pty(struct sim *s, const char *path, char *err, size_t errlen)
{
	struct net *n = &s->net;
	char name[256];
	int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || grantpt(fd) || unlockpt(fd) || ptsname_r(fd, name, sizeof name)) {
		snprintf(err, errlen, "pty: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	struct termios t;
	if (tcgetattr(sl, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(sl, TCSANOW, &t);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISLNK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a symlink", path);
			close(sl);
			close(fd);
			return -1;
		}
		unlink(path);
	}
	if (symlink(name, path) != 0 || strlen(path) >= sizeof n->pty_link) {
		snprintf(err, errlen, "symlink %s: %s", path, strerror(errno));
		close(sl);
		close(fd);
		return -1;
	}
	strcpy(n->pty_link, path);
	n->pty_fd = fd;
	n->pty_slave = sl;
	snprintf(n->url, sizeof n->url, "%s", path);
	return 0;
}

int net_open(struct sim *s, enum frontend fe, const char *where, char *err, size_t errlen)
{
	struct net *n = &s->net;
	n->fe = fe;
	n->listen_fd = n->client_fd = n->pty_fd = n->pty_slave = -1;
	err[0] = 0;
	if (fe == FE_PTY)
		return open_pty(s, where, err, errlen);
	return open_listen(s, where, fe == FE_RFC2217 ? "rfc2217" : "socket", err, errlen);
}

int net_pollfds(struct sim *s, struct pollfd *pfd, int max)
{
	struct net *n = &s->net;
	int k = 0;
	short out = n->wlen ? POLLOUT : 0;
	if (n->listen_fd >= 0 && n->client_fd < 0 && k < max)
		pfd[k++] = (struct pollfd){ .fd = n->listen_fd, .events = POLLIN };
	if (n->client_fd >= 0 && k < max)
		pfd[k++] = (struct pollfd){ .fd = n->client_fd, .events = POLLIN | out };
	if (n->pty_fd >= 0 && k < max)
		pfd[k++] = (struct pollfd){ .fd = n->pty_fd, .events = POLLIN | out };
	return k;
}

static void client_gone(struct sim *s, double now)
{
	struct net *n = &s->net;
	close(n->client_fd);
	n->client_fd = -1;
	n->wlen = 0;
	if (s->log) {
		fprintf(s->log, "client disconnected\n");
		fflush(s->log);
	}
	if (n->fe == FE_RFC2217) {
		set_lines(s, false, false, now);
		s->host_baud = 0;
		s->host_follows = true;
	}
}

static void accept_client(struct sim *s, double now)
{
	struct net *n = &s->net;
	int fd = accept4(n->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	n->client_fd = fd;
	n->wlen = 0;
	n->tn_state = TN_DATA;
	memset(n->tn_opt, 0, sizeof n->tn_opt);
	if (s->log) {
		fprintf(s->log, "client connected\n");
		fflush(s->log);
	}
	if (n->fe == FE_RFC2217) {
		n->tn_opt[OPT_COMPORT] |= TN_HIM_PEND;
		tn_cmd(n, DO, OPT_COMPORT);
	}
	(void)now;
}

static void write_out(struct sim *s, int fd, double now)
{
	struct net *n = &s->net;
	while (n->wlen) {
		ssize_t w = fd == n->pty_fd ? write(fd, n->wbuf, n->wlen)
					    : send(fd, n->wbuf, n->wlen, MSG_NOSIGNAL);
		if (w > 0) {
			memmove(n->wbuf, n->wbuf + w, n->wlen - (size_t)w);
			n->wlen -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (fd == n->client_fd)
			client_gone(s, now);
		else
			n->wlen = 0;
		return;
	}
}

void net_handle(struct sim *s, const struct pollfd *pfd, int cnt, double now)
{
	struct net *n = &s->net;
	uint8_t buf[8192];
	for (int i = 0; i < cnt; i++) {
		if (!pfd[i].revents)
			continue;
		int fd = pfd[i].fd;
		if (fd == n->listen_fd && n->client_fd < 0) {
			accept_client(s, now);
			continue;
		}
		if (fd != n->client_fd && fd != n->pty_fd)
			continue;
		if (pfd[i].revents & POLLOUT) {
			write_out(s, fd, now);
			if (fd != n->client_fd && fd != n->pty_fd)
				continue; /* the client went away */
		}
		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, buf, sizeof buf);
			if (r > 0) {
				if (n->fe == FE_RFC2217)
					tn_input(s, buf, (size_t)r, now);
				else
					wire_host_rx(s, buf, (size_t)r, now);
			} else if (fd == n->client_fd && (r == 0 || (errno != EAGAIN && errno != EINTR))) {
				client_gone(s, now);
			}
		}
	}
}

void net_flush(struct sim *s, double now)
{
	struct net *n = &s->net;
	size_t len = wire_take_output(s, now, &n->obuf, &n->ocap);
	int fd = n->client_fd >= 0 ? n->client_fd : n->pty_fd;
	if (len && fd >= 0) {
		if (n->fe == FE_RFC2217) {
			size_t st = 0;
			for (size_t i = 0; i < len; i++)
				if (n->obuf[i] == IAC) {
					wput(n, n->obuf + st, i + 1 - st);
					st = i; /* the IAC goes out twice */
				}
			wput(n, n->obuf + st, len - st);
		} else {
			wput(n, n->obuf, len);
		}
	}
	if (n->wlen && fd >= 0)
		write_out(s, fd, now);
}

void net_close(struct sim *s)
{
	struct net *n = &s->net;
	if (n->client_fd >= 0)
		close(n->client_fd);
	if (n->listen_fd >= 0)
		close(n->listen_fd);
	if (n->pty_fd >= 0)
		close(n->pty_fd);
	if (n->pty_slave >= 0)
		close(n->pty_slave);
	if (n->pty_link[0])
		unlink(n->pty_link);
	n->client_fd = n->listen_fd = n->pty_fd = n->pty_slave = -1;
	free(n->wbuf);
	free(n->obuf);
	n->wbuf = n->obuf = NULL;
}
