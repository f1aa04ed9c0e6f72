/*
 * port_tcp.c - socket://host:port, raw TCP (e.g. ser2net in raw mode).
 * Data only: the baud rate is whatever the server is set to, and there are
 * no modem lines; both are reported as unsupported. The byte stream is the
 * fd backend's (port_fd.c).
 */
#include "port_backend.h"

#include <stdlib.h>
#include <string.h>

struct tcp_port {
	struct port_fd fd;
	char host[128];
	int tcp_port;
};

static int tcp_flush_input(struct port *p)
{
	port_fd_discard((struct port_fd *)p);
	return PORT_OK;
}

static int tcp_set_baud(struct port *p, int baud)
{
	(void)baud;
	port_seterr(p, "socket:// cannot change the baud rate (set it on the "
		       "server, or use rfc2217://)");
	return PORT_UNSUPPORTED;
}

static int tcp_set_lines(struct port *p, int dtr, int rts)
{
	(void)dtr;
	(void)rts;
	port_seterr(p, "socket:// has no modem lines (use rfc2217:// for DTR/RTS)");
	return PORT_UNSUPPORTED;
}

static int tcp_send_break(struct port *p, double seconds)
{
	(void)seconds;
	port_seterr(p, "socket:// cannot send a break");
	return PORT_UNSUPPORTED;
}

static void tcp_close(struct port *p)
{
	port_fd_close((struct port_fd *)p);
	free(p);
}

static void tcp_info(struct port *p, struct port_info *out)
{
	struct tcp_port *t = (struct tcp_port *)p;

	out->host = t->host;
	out->tcp_port = t->tcp_port;
}

static const struct port_ops tcp_ops = {
	.read = port_fd_op_read,
	.write = port_fd_op_write,
	.drain = port_fd_op_drain,
	.flush_input = tcp_flush_input,
	.set_baud = tcp_set_baud,
	.set_lines = tcp_set_lines,
	.send_break = tcp_send_break,
	.close = tcp_close,
	.info = tcp_info,
};

struct port *port_tcp_open(const char *url, const char *hostport,
			   const struct port_opts *o, char *err, size_t errlen,
			   enum port_open_failure *why)
{
	struct tcp_port *t = calloc(1, sizeof *t);

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (port_split_hostport(hostport, t->host, sizeof t->host,
				&t->tcp_port) < 0) {
		snprintf(err, errlen, "bad URL '%s' (expected socket://host:port)",
			 url);
		*why = PORT_FAIL_URL;
		free(t);
		return NULL;
	}
	if (port_tcp_connect(&t->fd, t->host, t->tcp_port, o->connect_timeout,
			     err, errlen, why) < 0) {
		free(t);
		return NULL;
	}
	t->fd.closed_msg = "connection closed by the peer";
	port_init(&t->fd.base, &tcp_ops, "socket", url, o);
	return &t->fd.base;
}
