/*
 * ncppeer - a TCP peer for the transport tests: a raw TCP server or an
 * RFC 2217 (Telnet COM-PORT-OPTION) server written independently of
 * src/port_*.c. It records what it receives to a log file, one line each:
 *
 *   connect | disconnect
 *   data HEX                 decoded data bytes (one line per received chunk)
 *   option VERB OPT          Telnet negotiation received (WILL/WONT/DO/DONT)
 *   baud N | datasize N | parity N | stopsize N
 *   dtr 0|1 | rts 0|1 | break 0|1 | control N (other SET-CONTROL values)
 *   purge N
 *
 * Usage: ncppeer (--rfc2217 PORT | --raw PORT) [--log FILE] [--echo]
 *        [--send HEX] [--notify] [--no-control-ack] [--close-after N]
 *        [--serve N] [--timeout S]
 *
 *   --echo            send every received data byte back
 *   --send HEX        send these bytes right after a client connects
 *   --notify          put a NOTIFY-MODEMSTATE subnegotiation and a NOP in the
 *                     middle of everything sent (RFC 2217 mode)
 *   --no-control-ack  never answer SET-CONTROL (ser2net on a port without
 *                     modem lines)
 *   --close-after N   drop the connection after N data bytes were received
 *   --serve N         connections to serve before exiting (default 1)
 *   --timeout S       exit after S seconds whatever happens (default 30)
 *
 * PORT 0 picks a free port. The first stdout line is the URL to connect to.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251, SB = 250,
       SE = 240, NOP = 241, COMPORT = 44 };

struct peer {
	int rfc, echo, notify, no_ack;
	long close_after, received;
	FILE *log;
	int fd;
	uint8_t send[1024];
	size_t send_len;
	/* telnet decoder */
	int st;
	uint8_t verb, sb[64];
	size_t sbn;
	uint8_t replied[4][256];
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void logf_(struct peer *pe, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(pe->log, fmt, ap);
	va_end(ap);
	fputc('\n', pe->log);
	fflush(pe->log);
}

static void put(struct peer *pe, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(pe->fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return;
		}
		b += w;
		n -= (size_t)w;
	}
}

/* Data to the client: IAC doubled in RFC 2217 mode; with --notify a
 * notification and a NOP are put in the middle. */
static void put_data(struct peer *pe, const uint8_t *b, size_t n)
{
	uint8_t out[8192];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k > sizeof out - 16) {
			put(pe, out, k);
			k = 0;
		}
		if (pe->rfc && pe->notify && i == n / 2) {
			const uint8_t note[] = {IAC, SB, COMPORT, 107, 0x30, IAC, SE,
						IAC, NOP};
			memcpy(out + k, note, sizeof note);
			k += sizeof note;
		}
		out[k++] = b[i];
		if (pe->rfc && b[i] == IAC)
			out[k++] = IAC;
	}
	put(pe, out, k);
}

static void answer(struct peer *pe, uint8_t cmd, const uint8_t *v, size_t n)
{
	uint8_t b[32];
	size_t k = 0;

	b[k++] = IAC; b[k++] = SB; b[k++] = COMPORT; b[k++] = cmd;
	for (size_t i = 0; i < n && k < sizeof b - 3; i++) {
		b[k++] = v[i];
		if (v[i] == IAC)
			b[k++] = IAC;
	}
	b[k++] = IAC; b[k++] = SE;
	put(pe, b, k);
}

static const char *verb_name(uint8_t v)
{
	return v == WILL ? "WILL" : v == WONT ? "WONT" : v == DO ? "DO" : "DONT";
}

static void on_option(struct peer *pe, uint8_t verb, uint8_t opt)
{
	logf_(pe, "option %s %u", verb_name(verb), opt);
	int ok = opt == 0 || opt == 3 || opt == COMPORT;
	uint8_t reply;

	switch (verb) {
	case WILL: reply = ok ? DO : DONT; break;
	case DO: reply = ok ? WILL : WONT; break;
	default: return; /* WONT/DONT: nothing to say */
	}
	if (pe->replied[verb - WILL][opt])
		return;
	pe->replied[verb - WILL][opt] = 1;
	uint8_t b[3] = {IAC, reply, opt};
	put(pe, b, 3);
}

static void on_subneg(struct peer *pe)
{
	if (pe->sbn < 2 || pe->sb[0] != COMPORT)
		return;
	uint8_t cmd = pe->sb[1], *v = pe->sb + 2;
	size_t n = pe->sbn - 2;

	switch (cmd) {
	case 0:
		answer(pe, 100, (const uint8_t *)"ncppeer", 7);
		break;
	case 1:
		if (n >= 4) {
			unsigned long b = (unsigned long)v[0] << 24 | v[1] << 16 |
					  v[2] << 8 | v[3];
			logf_(pe, "baud %lu", b);
			answer(pe, 101, v, 4);
		}
		break;
	case 2: case 3: case 4:
		if (n >= 1) {
			logf_(pe, "%s %u", cmd == 2 ? "datasize" :
				   cmd == 3 ? "parity" : "stopsize", v[0]);
			answer(pe, cmd + 100, v, 1);
		}
		break;
	case 5:
		if (n < 1)
			break;
		switch (v[0]) {
		case 5: logf_(pe, "break 1"); break;
		case 6: logf_(pe, "break 0"); break;
		case 8: logf_(pe, "dtr 1"); break;
		case 9: logf_(pe, "dtr 0"); break;
		case 11: logf_(pe, "rts 1"); break;
		case 12: logf_(pe, "rts 0"); break;
		default: logf_(pe, "control %u", v[0]);
		}
		if (!pe->no_ack)
			answer(pe, 105, v, 1);
		break;
	case 12:
		if (n >= 1) {
			logf_(pe, "purge %u", v[0]);
			answer(pe, 112, v, 1);
		}
		break;
	default:
		logf_(pe, "subneg %u", cmd);
	}
}

/* Decodes a chunk from the client; returns the data bytes in out. */
static size_t decode(struct peer *pe, const uint8_t *in, size_t n, uint8_t *out)
{
	size_t k = 0;

	if (!pe->rfc) {
		memcpy(out, in, n);
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];
		switch (pe->st) {
		case 0:
			if (c == IAC) pe->st = 1; else out[k++] = c;
			break;
		case 1:
			pe->st = 0;
			if (c == IAC) out[k++] = c;
			else if (c >= WILL && c <= DONT) { pe->verb = c; pe->st = 2; }
			else if (c == SB) { pe->sbn = 0; pe->st = 3; }
			break;
		case 2:
			pe->st = 0;
			on_option(pe, pe->verb, c);
			break;
		case 3:
			if (c == IAC) pe->st = 4;
			else if (pe->sbn < sizeof pe->sb) pe->sb[pe->sbn++] = c;
			break;
		case 4:
			if (c == IAC) {
				if (pe->sbn < sizeof pe->sb) pe->sb[pe->sbn++] = c;
				pe->st = 3;
			} else {
				pe->st = 0;
				if (c == SE) on_subneg(pe);
			}
			break;
		}
	}
	return k;
}

static void serve(struct peer *pe, double deadline)
{
	uint8_t in[4096], data[4096];
	char hex[8192 + 1];

	pe->st = 0;
	pe->received = 0;
	memset(pe->replied, 0, sizeof pe->replied);
	logf_(pe, "connect");
	if (pe->rfc) { /* like ser2net: offer SGA and ECHO */
		const uint8_t hi[] = {IAC, WILL, 3, IAC, WILL, 1};
		put(pe, hi, sizeof hi);
	}
	if (pe->send_len)
		put_data(pe, pe->send, pe->send_len);
	while (now() < deadline) {
		struct pollfd pfd = {.fd = pe->fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t r = recv(pe->fd, in, sizeof in, 0);
		if (r <= 0)
			break;
		size_t n = decode(pe, in, (size_t)r, data);
		if (n == 0)
			continue;
		if (pe->close_after > 0 && pe->received + (long)n > pe->close_after)
			n = (size_t)(pe->close_after - pe->received);
		for (size_t i = 0; i < n; i++)
			sprintf(hex + 2 * i, "%02x", data[i]);
		hex[2 * n] = '\0';
		if (n)
			logf_(pe, "data %s", hex);
		pe->received += (long)n;
		if (pe->echo && n)
			put_data(pe, data, n);
		if (pe->close_after > 0 && pe->received >= pe->close_after)
			break;
	}
	close(pe->fd);
	logf_(pe, "disconnect");
}

static int unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

int main(int argc, char **argv)
{
	struct peer pe = {.log = stderr};
	int port = -1, serve_n = 1;
	double timeout = 30;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--rfc2217") && v) { pe.rfc = 1; port = atoi(v); i++; }
		else if (!strcmp(a, "--raw") && v) { pe.rfc = 0; port = atoi(v); i++; }
		else if (!strcmp(a, "--log") && v) {
			if (!(pe.log = fopen(v, "w"))) { perror(v); return 2; }
			i++;
		}
		else if (!strcmp(a, "--echo")) pe.echo = 1;
		else if (!strcmp(a, "--notify")) pe.notify = 1;
		else if (!strcmp(a, "--no-control-ack")) pe.no_ack = 1;
		else if (!strcmp(a, "--send") && v) {
			int n = unhex(v, pe.send, sizeof pe.send);
			if (n < 0) { fprintf(stderr, "bad hex: %s\n", v); return 2; }
			pe.send_len = (size_t)n;
			i++;
		}
		else if (!strcmp(a, "--close-after") && v) { pe.close_after = atol(v); i++; }
		else if (!strcmp(a, "--serve") && v) { serve_n = atoi(v); i++; }
		else if (!strcmp(a, "--timeout") && v) { timeout = atof(v); i++; }
		else { fprintf(stderr, "ncppeer: bad argument %s\n", a); return 2; }
	}
	if (port < 0) {
		fprintf(stderr, "usage: ncppeer (--rfc2217 PORT | --raw PORT) [options]\n");
		return 2;
	}
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("ncppeer: listen");
		return 1;
	}
	printf("%s://127.0.0.1:%u\n", pe.rfc ? "rfc2217" : "socket",
	       ntohs(sa.sin_port));
	fflush(stdout);
	double deadline = now() + timeout;
	for (int c = 0; c < serve_n && now() < deadline; ) {
		struct pollfd pfd = {.fd = ls, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		pe.fd = accept(ls, NULL, NULL);
		if (pe.fd < 0)
			continue;
		setsockopt(pe.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		serve(&pe, deadline);
		c++;
	}
	close(ls);
	return 0;
}
