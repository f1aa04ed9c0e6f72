/*
 * fuzz_rfc2217.c - the RFC 2217 client's receive path (src/port_rfc2217.c):
 * Telnet option negotiation, subnegotiations, IAC undoubling, server
 * notifications between data bytes.
 *
 * The input is what a server sends, written into one end of a socketpair
 * whose other end the client is attached to (port_rfc2217_attach); the
 * server end is then shut for writing, so every wait ends at once with
 * "connection closed" instead of a timeout.  A thread reads whatever the
 * client sends (option answers can be many: a server may flap DO/DONT),
 * as a server would; without it the client's sends block once the socket
 * buffer is full (the first fuzz finding, tests/fuzz/regress/rfc2217).  Input byte 0, bit 0: prepend
 * a correct negotiation (DO COM-PORT, baud acknowledged) so that most
 * inputs reach the data path.  The client's reads, writes, line and baud
 * changes and input flushes are interleaved; what the client reads must be
 * the input's data bytes in order (checked when the input holds no IAC).
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port_backend.h"

static void fz_rfc_drain(int fd)
{
	uint8_t sink[4096];
	while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
		;
}

/* The server's reader: consumes the client's bytes until the client closes. */
static void *fz_rfc_reader(void *arg)
{
	int fd = *(int *)arg;
	uint8_t sink[4096];
	ssize_t r;
	while ((r = recv(fd, sink, sizeof sink, 0)) > 0 || (r < 0 && errno == EINTR))
		;
	return NULL;
}

static int fz_rfc_send(int fd, const uint8_t *b, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) { /* buffer full: the client is not reading yet */
			fz_rfc_drain(fd);
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int ncp_fuzz_rfc2217(const uint8_t *data, size_t n)
{
	static const uint8_t hello[] = {
		255, 253, 44,                          /* IAC DO COM-PORT */
		255, 250, 44, 101, 0, 1, 194, 0, 255, 240, /* baud ack 115200 */
	};
	int sv[2];

	if (n > 16384) /* larger inputs than the socket buffer add nothing */
		n = 16384;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	if ((n > 0 && (data[0] & 1) && fz_rfc_send(sv[1], hello, sizeof hello)) ||
	    fz_rfc_send(sv[1], data, n)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	pthread_t reader;
	int reading = pthread_create(&reader, NULL, fz_rfc_reader, &sv[1]) == 0;

	struct port_opts o = {.baud = 115200, .connect_timeout = 1.0};
	o.trace = fopen("/dev/null", "w"); /* exercise the trace formatting */
	o.trace_owned = o.trace != NULL;
	char err[256];
	enum port_open_failure why = PORT_FAIL_IO;
	struct port *p = port_rfc2217_attach(sv[0], "rfc2217://fuzz:0", &o, err,
					     sizeof err, &why);
	if (!p) { /* the client closed sv[0]: the reader sees the end */
		if (o.trace)
			fclose(o.trace);
		if (reading)
			pthread_join(reader, NULL);
		close(sv[1]);
		return 0;
	}
	int plain = n > 0 && (data[0] & 1) && memchr(data, 255, n) == NULL;
	uint8_t got[16384 + 64];
	size_t got_len = 0;
	int rc = 0;
	for (int step = 0; step < 64; step++) {
		uint8_t buf[512];
		size_t want = 1 + (size_t)(step * 37) % sizeof buf;
		int r;
		switch (step % 8) {
		case 3:
			r = port_set_lines(p, step & 1, step & 2 ? 1 : 0);
			break;
		case 5:
			r = port_write(p, (const uint8_t *)"\x55\xff\x00\xff", 4, 1.0);
			break;
		default:
			r = port_read_some(p, buf, want, 0);
			if (r > 0 && got_len + (size_t)r <= sizeof got) {
				memcpy(got + got_len, buf, (size_t)r);
				got_len += (size_t)r;
			}
			break;
		}
		if (!reading)
			fz_rfc_drain(sv[1]);
		if (r < 0 && r != PORT_UNSUPPORTED)
			break;
	}
	if (plain && got_len > n) {
		fprintf(stderr, "fuzz_rfc2217: read %zu data bytes from %zu input bytes\n",
			got_len, n);
		rc = -1;
	}
	if (plain && rc == 0 && memcmp(got, data, got_len) != 0) {
		fprintf(stderr, "fuzz_rfc2217: data bytes differ from the input\n");
		rc = -1;
	}
	(void)port_set_baud(p, 2000000);
	(void)port_flush_input(p);
	port_close(p);
	if (reading)
		pthread_join(reader, NULL);
	close(sv[1]);
	return rc;
}

#ifndef NCP_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ncp_fuzz_rfc2217(data, size))
		abort();
	return 0;
}
#endif
