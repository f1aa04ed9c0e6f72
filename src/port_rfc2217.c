/*
 * port_rfc2217.c - rfc2217://host:port, an RFC 2217 (Telnet COM-PORT-OPTION)
 * client, e.g. for ser2net, labgrid exported ports or ncpsim.
 *
 * Negotiation: WILL/DO BINARY, WILL/DO SGA, WILL COM-PORT-OPTION; the server
 * must answer DO COM-PORT-OPTION. Then SET-BAUDRATE, SET-DATASIZE 8,
 * SET-PARITY none, SET-STOPSIZE 1. DTR/RTS go through SET-CONTROL
 * (8/9, 11/12), break through SET-CONTROL 5/6, flush_input through
 * PURGE-DATA 1. 0xFF in data is doubled on the way out and undoubled on the
 * way in; commands and subnegotiations from the server may arrive in the
 * middle of data and are handled where they stand.
 *
 * A server fronting a device without modem lines (ser2net) never answers
 * SET-CONTROL: the first time we wait at most CONTROL_ACK_WAIT for an
 * answer, then report the lines as unsupported and stop waiting.
 *
 * URL options after '?', joined by '&', as in pyserial's rfc2217 URLs (the
 * form labgrid's SerialDriver builds: rfc2217://H:P?ign_set_control&timeout=3):
 *   ign_set_control   send SET-CONTROL but never wait for its answer; the
 *                     lines count as usable (the handshake shows whether the
 *                     reset worked)
 *   timeout=S         seconds for the TCP connect and the negotiation
 */
#include "port.h"
#include "host.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
	IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251,
	SB = 250, SE = 240,
	OPT_BINARY = 0, OPT_ECHO = 1, OPT_SGA = 3, OPT_COMPORT = 44,
	/* COM-PORT-OPTION commands, client -> server (server adds 100) */
	CPO_SIGNATURE = 0, CPO_SET_BAUDRATE = 1, CPO_SET_DATASIZE = 2,
	CPO_SET_PARITY = 3, CPO_SET_STOPSIZE = 4, CPO_SET_CONTROL = 5,
	CPO_NOTIFY_LINESTATE = 6, CPO_NOTIFY_MODEMSTATE = 7,
	CPO_FLOW_SUSPEND = 8, CPO_FLOW_RESUME = 9, CPO_PURGE_DATA = 12,
	CPO_SERVER = 100,
	CTL_BREAK_ON = 5, CTL_BREAK_OFF = 6,
	CTL_DTR_ON = 8, CTL_DTR_OFF = 9, CTL_RTS_ON = 11, CTL_RTS_OFF = 12,
	PURGE_RX = 1,
};

#define CONTROL_ACK_WAIT 0.3
#define BAUD_ACK_WAIT 1.0
#define NEGOTIATE_WAIT 3.0

enum { S_DATA, S_IAC, S_OPT, S_SB, S_SB_IAC };

struct rfc_port {
	struct port base;
	int fd;
	char host[128];
	int tcp_port;
	/* decoded data not yet returned */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	/* telnet parser */
	int state;
	uint8_t cmd;
	uint8_t sb[64];
	size_t sb_len;
	/* option negotiation */
	uint8_t will_sent[256], do_sent[256], refused_sent[256];
	int comport_ok, comport_refused;
	/* server answers */
	unsigned baud_acks, control_acks, purge_acks;
	int suspended;
	int control_noack, purge_noack;
	int ign_control, ign_noted; /* URL option ign_set_control */
	uint8_t modemstate, linestate;
};

static int is_wanted(uint8_t opt)
{
	return opt == OPT_BINARY || opt == OPT_SGA || opt == OPT_COMPORT;
}

/* Sends raw (already escaped) bytes. */
static int send_raw(struct rfc_port *r, const uint8_t *buf, size_t n)
{
	int w = port_fd_write(&r->base, r->fd, 1, buf, n, ncp_now() + 5.0);

	if (w < 0)
		return w;
	if ((size_t)w < n) {
		port_seterr(&r->base, "%s: server is not reading (send timed out)",
			    r->base.url);
		return PORT_EIO;
	}
	return PORT_OK;
}

static int send_opt(struct rfc_port *r, uint8_t verb, uint8_t opt)
{
	uint8_t b[3] = {IAC, verb, opt};

	return send_raw(r, b, 3);
}

/* IAC SB COM-PORT-OPTION cmd value... IAC SE, doubling 0xFF in value. */
static int send_cpo(struct rfc_port *r, uint8_t cmd, const uint8_t *val,
		    size_t n)
{
	uint8_t b[32];
	size_t k = 0;

	b[k++] = IAC;
	b[k++] = SB;
	b[k++] = OPT_COMPORT;
	b[k++] = cmd;
	for (size_t i = 0; i < n && k < sizeof b - 3; i++) {
		b[k++] = val[i];
		if (val[i] == IAC)
			b[k++] = IAC;
	}
	b[k++] = IAC;
	b[k++] = SE;
	return send_raw(r, b, k);
}

static int send_cpo1(struct rfc_port *r, uint8_t cmd, uint8_t v)
{
	return send_cpo(r, cmd, &v, 1);
}

static int send_baud(struct rfc_port *r, int baud)
{
	uint8_t v[4] = {(uint8_t)(baud >> 24), (uint8_t)(baud >> 16),
			(uint8_t)(baud >> 8), (uint8_t)baud};

	return send_cpo(r, CPO_SET_BAUDRATE, v, 4);
}

static int rx_push(struct rfc_port *r, uint8_t c)
{
	if (r->rx_len == r->rx_cap) {
		size_t cap = r->rx_cap ? r->rx_cap * 2 : 4096;
		uint8_t *nb = realloc(r->rx, cap);
		if (!nb) {
			port_seterr(&r->base, "%s: out of memory", r->base.url);
			return PORT_EIO;
		}
		r->rx = nb;
		r->rx_cap = cap;
	}
	r->rx[r->rx_len++] = c;
	return PORT_OK;
}

static int on_option(struct rfc_port *r, uint8_t verb, uint8_t opt)
{
	switch (verb) {
	case DO:
		if (opt == OPT_COMPORT)
			r->comport_ok = 1;
		if (is_wanted(opt)) {
			if (!r->will_sent[opt]) {
				r->will_sent[opt] = 1;
				return send_opt(r, WILL, opt);
			}
		} else if (!r->refused_sent[opt]) {
			r->refused_sent[opt] = 1;
			return send_opt(r, WONT, opt);
		}
		break;
	case DONT:
		if (opt == OPT_COMPORT)
			r->comport_refused = 1;
		if (r->will_sent[opt]) {
			r->will_sent[opt] = 0;
			return send_opt(r, WONT, opt);
		}
		break;
	case WILL:
		if (is_wanted(opt)) {
			if (!r->do_sent[opt]) {
				r->do_sent[opt] = 1;
				return send_opt(r, DO, opt);
			}
		} else if (!r->refused_sent[opt]) {
			/* e.g. WILL ECHO: we do not want our data echoed */
			r->refused_sent[opt] = 1;
			return send_opt(r, DONT, opt);
		}
		break;
	case WONT:
		r->do_sent[opt] = 0;
		break;
	}
	return PORT_OK;
}

static int on_subneg(struct rfc_port *r)
{
	if (r->sb_len < 2 || r->sb[0] != OPT_COMPORT)
		return PORT_OK; /* not ours; ignore */
	switch (r->sb[1]) {
	case CPO_SERVER + CPO_SIGNATURE:
		if (r->sb_len == 2) /* a request for our signature */
			return send_cpo(r, CPO_SIGNATURE,
					(const uint8_t *)"ncpflash", 8);
		break;
	case CPO_SERVER + CPO_SET_BAUDRATE:
		r->baud_acks++;
		break;
	case CPO_SERVER + CPO_SET_CONTROL:
		r->control_acks++;
		break;
	case CPO_SERVER + CPO_PURGE_DATA:
		r->purge_acks++;
		break;
	case CPO_SERVER + CPO_NOTIFY_LINESTATE:
		if (r->sb_len > 2)
			r->linestate = r->sb[2];
		break;
	case CPO_SERVER + CPO_NOTIFY_MODEMSTATE:
		if (r->sb_len > 2)
			r->modemstate = r->sb[2];
		break;
	case CPO_SERVER + CPO_FLOW_SUSPEND:
		r->suspended = 1;
		break;
	case CPO_SERVER + CPO_FLOW_RESUME:
		r->suspended = 0;
		break;
	}
	return PORT_OK;
}

/* Feeds received bytes through the Telnet parser. */
static int decode(struct rfc_port *r, const uint8_t *buf, size_t n)
{
	int rc = PORT_OK;

	for (size_t i = 0; i < n && rc >= 0; i++) {
		uint8_t c = buf[i];
		switch (r->state) {
		case S_DATA:
			if (c == IAC)
				r->state = S_IAC;
			else
				rc = rx_push(r, c);
			break;
		case S_IAC:
			r->state = S_DATA;
			if (c == IAC)
				rc = rx_push(r, c);
			else if (c >= WILL && c <= DONT) {
				r->cmd = c;
				r->state = S_OPT;
			} else if (c == SB) {
				r->sb_len = 0;
				r->state = S_SB;
			} /* NOP, GA, AYT...: ignored */
			break;
		case S_OPT:
			r->state = S_DATA;
			rc = on_option(r, r->cmd, c);
			break;
		case S_SB:
			if (c == IAC)
				r->state = S_SB_IAC;
			else if (r->sb_len < sizeof r->sb)
				r->sb[r->sb_len++] = c;
			break;
		case S_SB_IAC:
			if (c == IAC) {
				if (r->sb_len < sizeof r->sb)
					r->sb[r->sb_len++] = c;
				r->state = S_SB;
			} else {
				/* SE, or a broken subnegotiation: end it */
				r->state = S_DATA;
				if (c == SE)
					rc = on_subneg(r);
			}
			break;
		}
	}
	return rc;
}

/* Waits for bytes from the server until the deadline and decodes them.
 * 1 = something was received, 0 = deadline, < 0 error. */
static int pump(struct rfc_port *r, double deadline)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0) {
			int rc = decode(r, buf, (size_t)n);
			return rc < 0 ? rc : 1;
		}
		if (n == 0) {
			port_seterr(&r->base, "%s: connection closed by the server",
				    r->base.url);
			return PORT_EIO;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			port_seterr(&r->base, "%s: read failed: %s", r->base.url,
				    strerror(errno));
			return PORT_EIO;
		}
		int w = port_wait_fd(&r->base, r->fd, POLLIN, deadline);
		if (w <= 0)
			return w;
	}
}

/* Pumps until *counter exceeds `want` or the deadline: 1 reached, 0 not. */
static int wait_count(struct rfc_port *r, const unsigned *counter,
		      unsigned want, double deadline)
{
	while (*counter < want) {
		int rc = pump(r, deadline);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

static int rfc_read(struct port *p, uint8_t *buf, size_t n, double deadline)
{
	struct rfc_port *r = (struct rfc_port *)p;

	while (r->rx_len == 0) {
		int rc = pump(r, deadline);
		if (rc <= 0)
			return rc;
	}
	size_t k = r->rx_len < n ? r->rx_len : n;
	memcpy(buf, r->rx, k);
	memmove(r->rx, r->rx + k, r->rx_len - k);
	r->rx_len -= k;
	return (int)k;
}

static int rfc_write(struct port *p, const uint8_t *buf, size_t n,
		     double deadline)
{
	struct rfc_port *r = (struct rfc_port *)p;
	uint8_t esc[8192];
	size_t done = 0;

	while (r->suspended) { /* server asked us to pause (flow control) */
		int rc = pump(r, deadline);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return 0;
	}
	while (done < n) {
		size_t k = 0, take = 0;
		while (done + take < n && k < sizeof esc - 1) {
			uint8_t c = buf[done + take++];
			esc[k++] = c;
			if (c == IAC)
				esc[k++] = IAC;
		}
		int w = port_fd_write(p, r->fd, 1, esc, k, deadline);
		if (w < 0)
			return w;
		if ((size_t)w < k) {
			/* deadline: count the source bytes fully sent */
			size_t sent = 0;
			for (size_t i = 0; i < (size_t)w; i++, sent++)
				if (esc[i] == IAC)
					i++;
			return (int)(done + sent);
		}
		done += take;
	}
	return (int)n;
}

static int rfc_drain(struct port *p, double deadline)
{
	return port_fd_drain(p, ((struct rfc_port *)p)->fd, deadline);
}

static int rfc_flush_input(struct port *p)
{
	struct rfc_port *r = (struct rfc_port *)p;
	unsigned want = r->purge_acks + 1;
	int rc = send_cpo1(r, CPO_PURGE_DATA, PURGE_RX);

	if (rc < 0)
		return rc;
	if (!r->purge_noack) {
		rc = wait_count(r, &r->purge_acks, want,
				ncp_now() + CONTROL_ACK_WAIT);
		if (rc < 0)
			return rc;
		if (rc == 0)
			r->purge_noack = 1;
	}
	/* whatever already arrived predates the purge */
	while ((rc = pump(r, 0)) > 0)
		;
	if (rc < 0)
		return rc;
	r->rx_len = 0;
	return PORT_OK;
}

static int rfc_set_baud(struct port *p, int baud)
{
	struct rfc_port *r = (struct rfc_port *)p;
	unsigned want = r->baud_acks + 1;
	int rc = send_baud(r, baud);

	if (rc < 0)
		return rc;
	rc = wait_count(r, &r->baud_acks, want, ncp_now() + BAUD_ACK_WAIT);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		port_seterr(p, "%s: the server did not acknowledge the baud "
			       "change to %d", p->url, baud);
		return PORT_UNSUPPORTED;
	}
	return PORT_OK;
}

static int no_control(struct rfc_port *r)
{
	port_seterr(&r->base, "the RFC 2217 server at %s:%d did not acknowledge "
			      "SET-CONTROL (a port without modem lines?); DTR, "
			      "RTS and BREAK may not change",
		    r->host, r->tcp_port);
	return PORT_UNSUPPORTED;
}

/* Sends SET-CONTROL values; waits for their answers unless the server has
 * shown it does not answer. */
static int control(struct rfc_port *r, const uint8_t *vals, int n)
{
	unsigned want = r->control_acks + (unsigned)n;

	for (int i = 0; i < n; i++) {
		int rc = send_cpo1(r, CPO_SET_CONTROL, vals[i]);
		if (rc < 0)
			return rc;
	}
	if (r->ign_control) {
		if (!r->ign_noted++)
			port_trace_note(&r->base, "SET-CONTROL sent; its answer "
				       "is not awaited (ign_set_control)");
		return PORT_OK;
	}
	if (r->control_noack)
		return no_control(r);
	int rc = wait_count(r, &r->control_acks, want,
			    ncp_now() + CONTROL_ACK_WAIT);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		r->control_noack = 1;
		r->base.lines = 0;
		return no_control(r);
	}
	return PORT_OK;
}

static int rfc_set_lines(struct port *p, int dtr, int rts)
{
	uint8_t v[2];
	int n = 0;

	if (dtr >= 0)
		v[n++] = dtr ? CTL_DTR_ON : CTL_DTR_OFF;
	if (rts >= 0)
		v[n++] = rts ? CTL_RTS_ON : CTL_RTS_OFF;
	return n ? control((struct rfc_port *)p, v, n) : PORT_OK;
}

static int rfc_send_break(struct port *p, double seconds)
{
	uint8_t on = CTL_BREAK_ON, off = CTL_BREAK_OFF;
	int rc = control((struct rfc_port *)p, &on, 1);

	if (rc < 0)
		return rc;
	int sl = port_sleep(seconds);
	int rc2 = control((struct rfc_port *)p, &off, 1);
	if (sl != PORT_OK)
		return sl;
	return rc2 < 0 ? rc2 : (rc != PORT_OK ? rc : rc2);
}

static void rfc_close(struct port *p)
{
	struct rfc_port *r = (struct rfc_port *)p;

	close(r->fd);
	free(r->rx);
	free(r);
}

static void rfc_info(struct port *p, struct port_info *out)
{
	struct rfc_port *r = (struct rfc_port *)p;

	out->host = r->host;
	out->tcp_port = r->tcp_port;
}

static const struct port_ops rfc_ops = {
	.read = rfc_read,
	.write = rfc_write,
	.drain = rfc_drain,
	.flush_input = rfc_flush_input,
	.set_baud = rfc_set_baud,
	.set_lines = rfc_set_lines,
	.send_break = rfc_send_break,
	.close = rfc_close,
	.info = rfc_info,
};

static int negotiate(struct rfc_port *r, double timeout, char *err,
		     size_t errlen, enum port_open_failure *why)
{
	static const uint8_t hello[] = {
		IAC, WILL, OPT_BINARY, IAC, DO, OPT_BINARY,
		IAC, WILL, OPT_SGA,    IAC, DO, OPT_SGA,
		IAC, WILL, OPT_COMPORT,
	};
	double deadline = ncp_now() + timeout;
	int rc;

	r->will_sent[OPT_BINARY] = r->do_sent[OPT_BINARY] = 1;
	r->will_sent[OPT_SGA] = r->do_sent[OPT_SGA] = 1;
	r->will_sent[OPT_COMPORT] = 1;
	rc = send_raw(r, hello, sizeof hello);
	while (rc >= 0 && !r->comport_ok && !r->comport_refused) {
		rc = pump(r, deadline);
		if (rc == 0)
			break;
	}
	if (rc == PORT_EINTR) {
		*why = PORT_FAIL_INTERRUPTED;
		snprintf(err, errlen, "interrupted while connecting to %s:%d",
			 r->host, r->tcp_port);
		return -1;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", r->base.err);
		return -1;
	}
	if (!r->comport_ok) {
		*why = PORT_FAIL_PROTO;
		snprintf(err, errlen,
			 r->comport_refused ?
				 "%s:%d refused the RFC 2217 COM-PORT option "
				 "(a plain telnet port? try socket://)" :
				 "%s:%d did not negotiate RFC 2217 within the "
				 "timeout (a raw TCP port? try socket://)",
			 r->host, r->tcp_port);
		return -1;
	}
	/* Line settings: 8N1 at the requested baud. */
	unsigned want = r->baud_acks + 1;
	if ((rc = send_baud(r, r->base.baud)) < 0 ||
	    (rc = send_cpo1(r, CPO_SET_DATASIZE, 8)) < 0 ||
	    (rc = send_cpo1(r, CPO_SET_PARITY, 1)) < 0 ||
	    (rc = send_cpo1(r, CPO_SET_STOPSIZE, 1)) < 0 ||
	    (rc = wait_count(r, &r->baud_acks, want,
			     ncp_now() + BAUD_ACK_WAIT)) < 0) {
		if (rc == PORT_EINTR)
			*why = PORT_FAIL_INTERRUPTED;
		snprintf(err, errlen, "%s", r->base.err);
		return -1;
	}
	return 0;
}

static struct port *rfc_start(struct rfc_port *r, const char *url,
			      const struct port_opts *o, char *err,
			      size_t errlen, enum port_open_failure *why);

/* Splits "host:port?opts" into r->host/r->tcp_port and the options; a
 * malformed URL or an unknown option writes err and returns -1. */
static int parse_url(struct rfc_port *r, const char *url, const char *hostport,
		     double *timeout, char *err, size_t errlen)
{
	char hp[300], opts[300];
	const char *q = strchr(hostport, '?');
	size_t hl = q ? (size_t)(q - hostport) : strlen(hostport);
	int bad = hl >= sizeof hp || (q && strlen(q + 1) >= sizeof opts);

	if (!bad) {
		memcpy(hp, hostport, hl);
		hp[hl] = '\0';
		bad = port_split_hostport(hp, r->host, sizeof r->host,
					  &r->tcp_port) < 0;
	}
	if (bad) {
		snprintf(err, errlen,
			 "bad URL '%s' (expected rfc2217://host:port, options "
			 "?ign_set_control&timeout=SECONDS)", url);
		return -1;
	}
	if (!q)
		return 0;
	snprintf(opts, sizeof opts, "%s", q + 1);
	char *save = NULL;
	for (char *o = strtok_r(opts, "&", &save); o;
	     o = strtok_r(NULL, "&", &save)) {
		char *end = o;
		double t = 0;
		if (strncmp(o, "timeout=", 8) == 0)
			t = strtod(o + 8, &end);
		if (strcmp(o, "ign_set_control") == 0) {
			r->ign_control = 1;
		} else if (end != o + 8 && *end == '\0' && t > 0 && t <= 3600) {
			*timeout = t;
		} else {
			snprintf(err, errlen,
				 "bad option '%s' in URL '%s' (rfc2217:// knows "
				 "ign_set_control and timeout=SECONDS)", o, url);
			return -1;
		}
	}
	return 0;
}

struct port *port_rfc2217_open(const char *url, const char *hostport,
			       const struct port_opts *o, char *err,
			       size_t errlen, enum port_open_failure *why)
{
	struct rfc_port *r = calloc(1, sizeof *r);
	struct port_opts opts = *o;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (parse_url(r, url, hostport, &opts.connect_timeout, err, errlen) < 0) {
		*why = PORT_FAIL_URL;
		free(r);
		return NULL;
	}
	r->fd = port_tcp_connect(r->host, r->tcp_port, opts.connect_timeout, err,
				 errlen, why);
	if (r->fd < 0) {
		free(r);
		return NULL;
	}
	return rfc_start(r, url, &opts, err, errlen, why);
}

struct port *port_rfc2217_attach(int fd, const char *url,
				 const struct port_opts *o, char *err,
				 size_t errlen, enum port_open_failure *why)
{
	struct rfc_port *r = calloc(1, sizeof *r);

	if (!r) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(r->host, sizeof r->host, "attached");
	r->tcp_port = -1;
	r->fd = fd;
	return rfc_start(r, url, o, err, errlen, why);
}

/* Negotiates on r->fd (owned by r from here on). */
static struct port *rfc_start(struct rfc_port *r, const char *url,
			      const struct port_opts *o, char *err,
			      size_t errlen, enum port_open_failure *why)
{
	port_init(&r->base, &rfc_ops, "rfc2217", url, o);
	r->base.lines = 1;
	double t = o->connect_timeout > 0 ? o->connect_timeout : NEGOTIATE_WAIT;
	if (negotiate(r, t, err, errlen, why) < 0) {
		rfc_close(&r->base);
		return NULL;
	}
	return &r->base;
}
