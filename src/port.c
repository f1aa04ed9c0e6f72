/*
 * port.c - what all transports share: the table of backends (which one
 * opens a URL), the read/write loops with deadlines, the pushback buffer,
 * interrupt-aware sleep and the wire trace. Backends are in port_<kind>.c
 * (port_backend.h); the stream ones share port_fd.c.
 */
#include "port_backend.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- open / close ---- */

/*
 * The backends, tried in order. A row with a scheme takes URLs that start
 * with it (`rest` = what follows); a row without one takes a device path
 * when its `claims` says so (NULL: any path). A new transport is one
 * backend file and one row here.
 */
static const struct port_backend {
	const char *scheme;
	int (*claims)(const char *path);
	port_open_fn open;
} backends[] = {
	{"rfc2217://", NULL, port_rfc2217_open},
	{"socket://", NULL, port_tcp_open},
#if !defined(_WIN32)
	{NULL, port_is_pty, port_pty_open},
#endif
	{NULL, NULL, port_serial_open}, /* port_serial_posix.c | port_serial_win.c */
};

static const struct port_backend *backend_for(const char *url,
					      const char **rest)
{
	int is_url = strstr(url, "://") != NULL;

	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
		const struct port_backend *b = &backends[i];
		if (b->scheme) {
			size_t n = strlen(b->scheme);
			if (strncmp(url, b->scheme, n) == 0) {
				*rest = url + n;
				return b;
			}
		} else if (!is_url && (!b->claims || b->claims(url))) {
			*rest = url;
			return b;
		}
	}
	return NULL;
}

struct port *port_open(const char *url, const struct port_opts *o,
		       char *err, size_t errlen, enum port_open_failure *why)
{
	const char *rest;
	const struct port_backend *b = backend_for(url, &rest);

	*why = PORT_FAIL_IO;
	err[0] = '\0';
	if (!b) {
		snprintf(err, errlen,
			 "unsupported port URL '%s' (use a device path, "
			 "rfc2217://host:port or socket://host:port)", url);
		*why = PORT_FAIL_URL;
		return NULL;
	}
	struct port *p = b->open(url, rest, o, err, errlen, why);
	if (p)
		port_trace_note(p, "open %s (%s) baud %d", p->url, p->kind,
				p->baud);
	return p;
}

/* ---- port_list_names (on the backend's port_list) ---- */

struct names {
	char *buf;
	size_t len, used;
	int n;
};

static void add_name(void *ctx, const struct port_listing *e)
{
	struct names *nm = ctx;

	if (nm->used >= nm->len)
		return;
	int w = snprintf(nm->buf + nm->used, nm->len - nm->used, "%s%s",
			 nm->n ? ", " : "", e->name);
	if (w > 0)
		nm->used += (size_t)w;
	nm->n++;
}

void port_list_names(char *buf, size_t len)
{
	char err[160];
	struct names nm = {buf, len, 0, 0};

	buf[0] = '\0';
	if (port_list(add_name, &nm, err, sizeof err) != PORT_OK || nm.n == 0)
		snprintf(buf, len, "none found");
}

void port_missing(const char *path, char *err, size_t errlen,
		  enum port_open_failure *why)
{
	char names[512];

	port_list_names(names, sizeof names);
	snprintf(err, errlen, "no such port %s (serial ports present: %s)", path,
		 names);
	*why = PORT_FAIL_MISSING;
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

void port_get_info(struct port *p, struct port_info *out)
{
	memset(out, 0, sizeof *out);
	out->usb_vid = out->usb_pid = out->tcp_port = -1;
	p->ops->info(p, out);
}

int port_send_break(struct port *p, double seconds)
{
	int r = p->ops->send_break(p, seconds);

	port_trace_note(p, "break %.3f s%s%s", seconds,
			r == PORT_OK ? "" : ": ", r == PORT_OK ? "" : p->err);
	return r;
}
