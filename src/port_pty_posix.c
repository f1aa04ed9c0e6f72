/*
 * port_pty_posix.c - a pseudo-terminal path (e.g. one end of a socat pty pair),
 * which libserialport refuses. termios raw mode, data only: baud changes
 * are applied to termios (a pty ignores them), lines and break are
 * reported unsupported.
 */
#include "port_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#if defined(__linux__)
#include <sys/sysmacros.h> /* major() */
#endif
#include <termios.h>
#include <unistd.h>

struct pty_port {
	struct port_fd fd; /* the byte stream: port_fd.c */
	char path[PATH_MAX];
};

int port_is_pty(const char *path)
{
	struct stat st;
	char real[PATH_MAX];

	if (stat(path, &st) != 0 || !S_ISCHR(st.st_mode))
		return 0;
	/* Unix98 pty slaves: majors 136..143; legacy BSD ptys: 3 */
	unsigned maj = major(st.st_rdev);
	if ((maj >= 136 && maj <= 143) || maj == 3)
		return 1;
	if (realpath(path, real) && strncmp(real, "/dev/pts/", 9) == 0)
		return 1;
#if defined(__APPLE__)
	if (realpath(path, real) && strncmp(real, "/dev/ttys", 9) == 0)
		return 1; /* untested: no macOS here */
#endif
	return 0;
}

/* The rates above 230400 are not POSIX: each is used where termios has it
 * (Linux has all; macOS none). */
static speed_t speed_of(int baud)
{
	switch (baud) {
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	case 230400: return B230400;
#ifdef B460800
	case 460800: return B460800;
#endif
#ifdef B500000
	case 500000: return B500000;
#endif
#ifdef B576000
	case 576000: return B576000;
#endif
#ifdef B921600
	case 921600: return B921600;
#endif
#ifdef B1000000
	case 1000000: return B1000000;
#endif
#ifdef B1500000
	case 1500000: return B1500000;
#endif
#ifdef B2000000
	case 2000000: return B2000000;
#endif
#ifdef B3000000
	case 3000000: return B3000000;
#endif
	default: return 0;
	}
}

static int pty_flush_input(struct port *p)
{
	if (tcflush(((struct pty_port *)p)->fd.fd, TCIFLUSH) < 0) {
		port_seterr(p, "%s: flush failed: %s", p->url, strerror(errno));
		return PORT_EIO;
	}
	return PORT_OK;
}

static int pty_set_baud(struct port *p, int baud)
{
	struct pty_port *t = (struct pty_port *)p;
	struct termios tio;
	speed_t s = speed_of(baud);

	/* A pty has no wire: any rate is accepted; standard ones are also
	 * written to termios so the other end can see them. */
	if (s && tcgetattr(t->fd.fd, &tio) == 0) {
		cfsetispeed(&tio, s);
		cfsetospeed(&tio, s);
		tcsetattr(t->fd.fd, TCSANOW, &tio);
	}
	return PORT_OK;
}

static int pty_set_lines(struct port *p, int dtr, int rts)
{
	(void)dtr;
	(void)rts;
	port_seterr(p, "a pseudo-terminal has no modem lines (DTR/RTS ignored)");
	return PORT_UNSUPPORTED;
}

static int pty_send_break(struct port *p, double seconds)
{
	(void)seconds;
	port_seterr(p, "a pseudo-terminal cannot send a break");
	return PORT_UNSUPPORTED;
}

static void pty_close(struct port *p)
{
	struct pty_port *t = (struct pty_port *)p;

	port_fd_close(&t->fd);
	free(t);
}

static void pty_info(struct port *p, struct port_info *out)
{
	out->name = ((struct pty_port *)p)->path;
	out->description = "pseudo-terminal";
}

static const struct port_ops pty_ops = {
	.read = port_fd_op_read,
	.write = port_fd_op_write,
	.drain = port_fd_op_drain,
	.flush_input = pty_flush_input,
	.set_baud = pty_set_baud,
	.set_lines = pty_set_lines,
	.send_break = pty_send_break,
	.close = pty_close,
	.info = pty_info,
};

struct port *port_pty_open(const char *url, const char *path,
			   const struct port_opts *o, char *err, size_t errlen,
			   enum port_open_failure *why)
{
	struct pty_port *t = calloc(1, sizeof *t);
	struct termios tio;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->fd.fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (t->fd.fd < 0) {
		int e = errno;
		*why = e == ENOENT ? PORT_FAIL_MISSING :
		       e == EBUSY  ? PORT_FAIL_BUSY : PORT_FAIL_IO;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
		free(t);
		return NULL;
	}
	if (flock(t->fd.fd, LOCK_EX | LOCK_NB) < 0) {
		*why = PORT_FAIL_BUSY;
		snprintf(err, errlen, "%s is busy (locked by another program)",
			 path);
		close(t->fd.fd);
		free(t);
		return NULL;
	}
	if (tcgetattr(t->fd.fd, &tio) == 0) {
		cfmakeraw(&tio);
		tio.c_cflag |= CLOCAL | CREAD;
		tio.c_cc[VMIN] = 1; /* with O_NONBLOCK: EAGAIN, not 0, when idle */
		tio.c_cc[VTIME] = 0;
		tcsetattr(t->fd.fd, TCSANOW, &tio);
	}
	if (!realpath(path, t->path))
		snprintf(t->path, sizeof t->path, "%s", path);
	t->fd.closed_msg = "the other end of the pseudo-terminal was closed";
	port_init(&t->fd.base, &pty_ops, "pty", url, o);
	pty_set_baud(&t->fd.base, t->fd.base.baud);
	return &t->fd.base;
}
