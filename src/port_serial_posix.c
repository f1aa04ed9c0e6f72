/*
 * port_serial_posix.c - serial ports on Linux (and macOS, untested) through
 * libserialport, and port enumeration (port.list()). 8N1, no flow control;
 * DTR/RTS are left as the OS sets them at open until the caller changes
 * them. The Windows sibling is port_serial_win.c.
 */
#include "port_backend.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libserialport.h>

#if defined(__linux__)
#include <linux/serial.h>
#endif

#define BY_ID_DIR "/dev/serial/by-id"

struct serial_port {
	struct port_fd fd; /* libserialport's descriptor: waits and drain */
	struct sp_port *sp;
	char by_id[PATH_MAX];
	int ll_restore;    /* we set ASYNC_LOW_LATENCY: clear it on close */
	char ll_state[96]; /* p:info().low_latency */
};

/*
 * Linux low-latency mode (TIOCGSERIAL/TIOCSSERIAL ASYNC_LOW_LATENCY): USB
 * serial drivers that honour it (ftdi_sio: latency timer 16 ms -> 1 ms)
 * deliver short replies sooner, which shortens every command's turnaround.
 * Drivers without TIOCSSERIAL (cp210x, ch341 on many kernels, cdc-acm on
 * some) answer ENOTTY/EINVAL/EPERM: the port works unchanged and info()
 * says why. The flag is restored on close when we set it.
 */
static void low_latency_on(struct serial_port *s)
{
#if defined(__linux__) && defined(TIOCGSERIAL) && defined(ASYNC_LOW_LATENCY)
	struct serial_struct ss;
	if (ioctl(s->fd.fd, TIOCGSERIAL, &ss) < 0) {
		snprintf(s->ll_state, sizeof s->ll_state, "unsupported by the driver (%s)",
			 strerror(errno));
		return;
	}
	if (ss.flags & ASYNC_LOW_LATENCY) {
		snprintf(s->ll_state, sizeof s->ll_state, "on (already)");
		return;
	}
	ss.flags |= ASYNC_LOW_LATENCY;
	if (ioctl(s->fd.fd, TIOCSSERIAL, &ss) < 0) {
		snprintf(s->ll_state, sizeof s->ll_state, "unsupported by the driver (%s)",
			 strerror(errno));
		return;
	}
	s->ll_restore = 1;
	snprintf(s->ll_state, sizeof s->ll_state, "on (restored on close)");
#else
	snprintf(s->ll_state, sizeof s->ll_state, "not available on this system");
#endif
}

static void low_latency_restore(struct serial_port *s)
{
#if defined(__linux__) && defined(TIOCGSERIAL) && defined(ASYNC_LOW_LATENCY)
	struct serial_struct ss;
	if (!s->ll_restore)
		return;
	if (ioctl(s->fd.fd, TIOCGSERIAL, &ss) == 0) {
		ss.flags &= ~ASYNC_LOW_LATENCY;
		(void)ioctl(s->fd.fd, TIOCSSERIAL, &ss);
	}
	s->ll_restore = 0;
#else
	(void)s;
#endif
}

static const char *sp_msg(char *buf, size_t len)
{
	char *m = sp_last_error_message();

	snprintf(buf, len, "%s", m ? m : "unknown error");
	if (m)
		sp_free_error_message(m);
	/* libserialport messages end with a newline on some versions */
	size_t l = strlen(buf);
	while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
		buf[--l] = '\0';
	return buf;
}

static int fail(struct port *p, const char *what, enum sp_return r)
{
	char m[160];

	if (r == SP_ERR_SUPP) {
		port_seterr(p, "%s: %s is not supported by this adapter", p->url,
			    what);
		return PORT_UNSUPPORTED;
	}
	port_seterr(p, "%s: %s failed: %s", p->url, what,
		    r == SP_ERR_FAIL ? sp_msg(m, sizeof m) : "bad argument");
	return PORT_EIO;
}

static int ser_read(struct port *p, uint8_t *buf, size_t n, double deadline)
{
	struct serial_port *s = (struct serial_port *)p;
	int idle_wakeups = 0;

	for (;;) {
		enum sp_return r = sp_nonblocking_read(s->sp, buf, n);
		if (r > 0)
			return (int)r;
		if (r < 0) {
			fail(p, "read", r);
			return PORT_EIO;
		}
		/* poll said readable but read found nothing: a hung-up device
		 * (unplugged adapter) keeps doing that */
		if (idle_wakeups > 1) {
			struct pollfd pfd = {.fd = s->fd.fd, .events = POLLIN};
			if (poll(&pfd, 1, 0) > 0 &&
			    (pfd.revents & (POLLHUP | POLLERR))) {
				port_seterr(p, "%s: the device was disconnected",
					    p->url);
				return PORT_EIO;
			}
		}
		int w = port_fd_wait(p, s->fd.fd, 0, PORT_WAIT_IN, deadline);
		if (w <= 0)
			return w;
		idle_wakeups++;
	}
}

static int ser_write(struct port *p, const uint8_t *buf, size_t n,
		     double deadline)
{
	struct serial_port *s = (struct serial_port *)p;
	size_t done = 0;

	while (done < n) {
		enum sp_return r = sp_nonblocking_write(s->sp, buf + done, n - done);
		if (r < 0) {
			fail(p, "write", r);
			return PORT_EIO;
		}
		done += (size_t)r;
		if (done == n)
			break;
		int w = port_fd_wait(p, s->fd.fd, 0, PORT_WAIT_OUT, deadline);
		if (w < 0)
			return w;
		if (w == 0)
			break;
	}
	return (int)done;
}

static int ser_drain(struct port *p, double deadline)
{
	struct serial_port *s = (struct serial_port *)p;
	int r = port_fd_drain(&s->fd, deadline);

	if (r == PORT_OK)
		sp_drain(s->sp); /* queue is empty: returns promptly */
	return r;
}

static int ser_flush_input(struct port *p)
{
	enum sp_return r = sp_flush(((struct serial_port *)p)->sp, SP_BUF_INPUT);

	return r == SP_OK ? PORT_OK : fail(p, "flush", r);
}

static int ser_set_baud(struct port *p, int baud)
{
	enum sp_return r = sp_set_baudrate(((struct serial_port *)p)->sp, baud);

	return r == SP_OK ? PORT_OK : fail(p, "setting the baud rate", r);
}

static int ser_set_lines(struct port *p, int dtr, int rts)
{
	struct serial_port *s = (struct serial_port *)p;
	enum sp_return r;

	if (dtr >= 0) {
		r = sp_set_dtr(s->sp, dtr ? SP_DTR_ON : SP_DTR_OFF);
		if (r != SP_OK)
			return fail(p, "setting DTR", r);
	}
	if (rts >= 0) {
		r = sp_set_rts(s->sp, rts ? SP_RTS_ON : SP_RTS_OFF);
		if (r != SP_OK)
			return fail(p, "setting RTS", r);
	}
	return PORT_OK;
}

static int ser_send_break(struct port *p, double seconds)
{
	struct serial_port *s = (struct serial_port *)p;
	enum sp_return r = sp_start_break(s->sp);

	if (r != SP_OK)
		return fail(p, "break", r);
	int sl = port_sleep(seconds);
	r = sp_end_break(s->sp);
	if (sl != PORT_OK)
		return sl;
	return r == SP_OK ? PORT_OK : fail(p, "ending break", r);
}

static void ser_close(struct port *p)
{
	struct serial_port *s = (struct serial_port *)p;

	low_latency_restore(s);
	sp_close(s->sp);
	sp_free_port(s->sp);
	free(s);
}

static void ser_info(struct port *p, struct port_info *out)
{
	struct serial_port *s = (struct serial_port *)p;
	int vid, pid;

	out->name = sp_get_port_name(s->sp);
	out->description = sp_get_port_description(s->sp);
	if (sp_get_port_transport(s->sp) == SP_TRANSPORT_USB) {
		if (sp_get_port_usb_vid_pid(s->sp, &vid, &pid) == SP_OK) {
			out->usb_vid = vid;
			out->usb_pid = pid;
		}
		out->manufacturer = sp_get_port_usb_manufacturer(s->sp);
		out->product = sp_get_port_usb_product(s->sp);
		out->serial = sp_get_port_usb_serial(s->sp);
	}
	out->by_id = s->by_id[0] ? s->by_id : NULL;
	out->low_latency = s->ll_state[0] ? s->ll_state : NULL;
}

static const struct port_ops serial_ops = {
	.read = ser_read,
	.write = ser_write,
	.drain = ser_drain,
	.flush_input = ser_flush_input,
	.set_baud = ser_set_baud,
	.set_lines = ser_set_lines,
	.send_break = ser_send_break,
	.close = ser_close,
	.info = ser_info,
};

/* The /dev/serial/by-id link pointing at path into out (empty if none). */
static void find_by_id(const char *path, char *out, size_t len)
{
	char want[PATH_MAX], got[PATH_MAX], link[PATH_MAX];
	DIR *d;
	struct dirent *e;

	out[0] = '\0';
	if (!realpath(path, want) || !(d = opendir(BY_ID_DIR)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "%s/%s", BY_ID_DIR, e->d_name);
		if (realpath(link, got) && strcmp(got, want) == 0) {
			snprintf(out, len, "%s", link);
			break;
		}
	}
	closedir(d);
}

int port_list(void (*fn)(void *ctx, const struct port_listing *e), void *ctx,
	      char *err, size_t errlen)
{
	struct sp_port **list;
	char by_id[PATH_MAX], m[160];

	if (sp_list_ports(&list) != SP_OK) {
		snprintf(err, errlen, "cannot list serial ports: %s",
			 sp_msg(m, sizeof m));
		return PORT_EIO;
	}
	for (int i = 0; list[i]; i++) {
		struct sp_port *sp = list[i];
		struct port_listing e = {.usb_vid = -1, .usb_pid = -1};
		enum sp_transport tr = sp_get_port_transport(sp);
		int vid, pid;

		e.name = sp_get_port_name(sp);
		e.description = sp_get_port_description(sp);
		e.transport = tr == SP_TRANSPORT_USB       ? "usb" :
			      tr == SP_TRANSPORT_BLUETOOTH ? "bluetooth" :
							     "native";
		if (tr == SP_TRANSPORT_USB) {
			if (sp_get_port_usb_vid_pid(sp, &vid, &pid) == SP_OK) {
				e.usb_vid = vid;
				e.usb_pid = pid;
			}
			e.manufacturer = sp_get_port_usb_manufacturer(sp);
			e.product = sp_get_port_usb_product(sp);
			e.serial = sp_get_port_usb_serial(sp);
		}
		find_by_id(e.name, by_id, sizeof by_id);
		e.by_id = by_id[0] ? by_id : NULL;
		fn(ctx, &e);
	}
	sp_free_port_list(list);
	return PORT_OK;
}

struct port *port_serial_open(const char *url, const char *path,
			      const struct port_opts *o, char *err,
			      size_t errlen, enum port_open_failure *why)
{
	struct serial_port *s;
	struct sp_port_config *cfg = NULL;
	struct stat st;
	enum sp_return r;
	char m[160];
	int baud = o->baud > 0 ? o->baud : 115200;

	if (stat(path, &st) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			port_missing(path, err, errlen, why);
		else
			snprintf(err, errlen, "cannot open %s: %s", path,
				 strerror(errno));
		return NULL;
	}
	if (!(s = calloc(1, sizeof *s))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sp_get_port_by_name(path, &s->sp) != SP_OK) {
		snprintf(err, errlen, "%s is not a serial port: %s", path,
			 sp_msg(m, sizeof m));
		free(s);
		return NULL;
	}
	errno = 0;
	r = sp_open(s->sp, SP_MODE_READ_WRITE);
	if (r != SP_OK) {
		int e = sp_last_error_code();
		if (e == EBUSY) {
			*why = PORT_FAIL_BUSY;
			snprintf(err, errlen, "%s is busy (in use by another "
					      "program)", path);
		} else if (e == ENOENT || e == ENODEV || e == ENXIO) {
			port_missing(path, err, errlen, why);
		} else {
			snprintf(err, errlen, "cannot open %s: %s%s", path,
				 sp_msg(m, sizeof m),
				 e == EACCES ? " (are you in the dialout "
					       "group?)" : "");
		}
		sp_free_port(s->sp);
		free(s);
		return NULL;
	}
	if (sp_get_port_handle(s->sp, &s->fd.fd) != SP_OK ||
	    flock(s->fd.fd, LOCK_EX | LOCK_NB) < 0) {
		*why = PORT_FAIL_BUSY;
		snprintf(err, errlen, "%s is busy (locked by another program)",
			 path);
		goto fail;
	}
	if (sp_new_config(&cfg) != SP_OK ||
	    sp_set_config_baudrate(cfg, baud) != SP_OK ||
	    sp_set_config_bits(cfg, 8) != SP_OK ||
	    sp_set_config_parity(cfg, SP_PARITY_NONE) != SP_OK ||
	    sp_set_config_stopbits(cfg, 1) != SP_OK ||
	    sp_set_config_flowcontrol(cfg, SP_FLOWCONTROL_NONE) != SP_OK ||
	    sp_set_config(s->sp, cfg) != SP_OK) {
		snprintf(err, errlen, "cannot configure %s at %d baud: %s", path,
			 baud, sp_msg(m, sizeof m));
		goto fail;
	}
	sp_free_config(cfg);
	find_by_id(path, s->by_id, sizeof s->by_id);
	low_latency_on(s);
	port_init(&s->fd.base, &serial_ops, "serial", url, o);
	s->fd.base.lines = 1;
	return &s->fd.base;
fail:
	if (cfg)
		sp_free_config(cfg);
	sp_close(s->sp);
	sp_free_port(s->sp);
	free(s);
	return NULL;
}
