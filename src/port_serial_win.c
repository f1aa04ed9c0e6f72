/*
 * port_serial_win.c - serial ports on Windows (COM3, \\.\COM38), and port
 * enumeration: SetupAPI's Ports class (description, manufacturer, USB
 * VID:PID and serial number), then the ports only the SERIALCOMM registry
 * key or the DOS device names know (virtual ports; what wine maps). The
 * sibling of port_serial_posix.c behind the same port_serial_open /
 * port_list.
 *
 * Synchronous I/O with COMMTIMEOUTS, no overlapped I/O: a read waits at
 * most one slice (<= 100 ms) for its first byte (ReadIntervalTimeout =
 * ReadTotalTimeoutMultiplier = MAXDWORD, ReadTotalTimeoutConstant = the
 * slice: "return what is there, or the first byte that arrives"), so the
 * deadline and Ctrl-C are checked between slices as everywhere else.
 * Overlapped reads ignore COMMTIMEOUTS under wine and PurgeComm aborts a
 * pending WaitCommEvent there (docs: portability facts in README), which
 * is why libserialport's Windows backend is not used.
 *
 * 8N1, no flow control. DTR/RTS stay as the driver sets them at open until
 * the caller changes them (EscapeCommFunction); every SetCommState keeps
 * the levels set since, so a baud change does not re-assert a line.
 */
#include "port_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <windows.h>
#include <cfgmgr32.h>
#include <initguid.h> /* GUID_DEVCLASS_PORTS defined here, not imported */
#include <devguid.h>
#include <setupapi.h>

#define SLICE_MS 100

struct win_serial {
	struct port base;
	HANDLE h;
	char name[64];          /* "COM38" */
	int dtr, rts;           /* -1 as opened, else the level we set */
	DWORD read_ms, write_ms; /* the COMMTIMEOUTS constants in force */
	/* from SetupAPI, when the port is listed there */
	char description[256], manufacturer[128], serial[128];
	int vid, pid;
};

static void win_msg(char *buf, size_t len, DWORD e)
{
	DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
				 NULL, e, 0, buf, (DWORD)len, NULL);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.' ||
			 buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (n == 0)
		snprintf(buf, len, "Windows error %lu", (unsigned long)e);
}

static int fail(struct port *p, const char *what)
{
	DWORD e = GetLastError();
	char m[200];

	win_msg(m, sizeof m, e);
	if (e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_FUNCTION) {
		port_seterr(p, "%s: %s is not supported by this port's driver (%s)",
			    p->url, what, m);
		return PORT_UNSUPPORTED;
	}
	port_seterr(p, "%s: %s failed: %s", p->url, what, m);
	return PORT_EIO;
}

static int set_timeouts(struct win_serial *s, DWORD read_ms, DWORD write_ms)
{
	if (read_ms == s->read_ms && write_ms == s->write_ms)
		return PORT_OK;
	COMMTIMEOUTS t = {
		.ReadIntervalTimeout = MAXDWORD,
		.ReadTotalTimeoutMultiplier = read_ms ? MAXDWORD : 0,
		.ReadTotalTimeoutConstant = read_ms,
		.WriteTotalTimeoutMultiplier = 0,
		.WriteTotalTimeoutConstant = write_ms,
	};
	if (!SetCommTimeouts(s->h, &t))
		return fail(&s->base, "setting the timeouts");
	s->read_ms = read_ms;
	s->write_ms = write_ms;
	return PORT_OK;
}

static DWORD slice_ms(double deadline)
{
	double left = deadline - ncp_now();
	if (left <= 0)
		return 0;
	DWORD ms = (DWORD)(left * 1000 + 0.999);
	return ms > SLICE_MS ? SLICE_MS : ms;
}

static int ser_read(struct port *p, uint8_t *buf, size_t n, double deadline)
{
	struct win_serial *s = (struct win_serial *)p;

	if (n > 0x10000000u)
		n = 0x10000000u;
	for (;;) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		DWORD ms = slice_ms(deadline), got = 0;
		int rc = set_timeouts(s, ms, s->write_ms);
		if (rc != PORT_OK)
			return rc < 0 ? rc : PORT_EIO;
		if (!ReadFile(s->h, buf, (DWORD)n, &got, NULL)) {
			DWORD e = GetLastError();
			if (e == ERROR_OPERATION_ABORTED) { /* a purge ended the read */
				if (ncp_now() >= deadline)
					return 0;
				continue;
			}
			SetLastError(e);
			fail(p, "read");
			if (e == ERROR_ACCESS_DENIED || e == ERROR_BAD_COMMAND ||
			    e == ERROR_DEVICE_NOT_CONNECTED || e == ERROR_GEN_FAILURE)
				port_seterr(p, "%s: the device was disconnected", p->url);
			return PORT_EIO;
		}
		if (got > 0)
			return (int)got;
		if (ncp_now() >= deadline)
			return 0;
	}
}

static int ser_write(struct port *p, const uint8_t *buf, size_t n,
		     double deadline)
{
	struct win_serial *s = (struct win_serial *)p;
	size_t done = 0;

	while (done < n) {
		if (ncp_interrupt_pending())
			return PORT_EINTR;
		DWORD ms = slice_ms(deadline), put = 0;
		if (ms == 0)
			break;
		int rc = set_timeouts(s, s->read_ms, ms);
		if (rc != PORT_OK)
			return rc < 0 ? rc : PORT_EIO;
		size_t k = n - done > 0x10000000u ? 0x10000000u : n - done;
		if (!WriteFile(s->h, buf + done, (DWORD)k, &put, NULL)) {
			fail(p, "write");
			return PORT_EIO;
		}
		done += put;
	}
	return (int)done;
}

static int ser_drain(struct port *p, double deadline)
{
	struct win_serial *s = (struct win_serial *)p;

	for (;;) {
		DWORD errs = 0;
		COMSTAT st;
		if (!ClearCommError(s->h, &errs, &st))
			return fail(p, "querying the output queue");
		if (st.cbOutQue == 0)
			return PORT_OK;
		if (ncp_now() >= deadline) {
			port_seterr(p, "%s: %lu bytes still queued at the deadline", p->url,
				    (unsigned long)st.cbOutQue);
			return PORT_ETIMEDOUT;
		}
		if (port_sleep(0.002) == PORT_EINTR)
			return PORT_EINTR;
	}
}

static int ser_flush_input(struct port *p)
{
	if (!PurgeComm(((struct win_serial *)p)->h, PURGE_RXCLEAR | PURGE_RXABORT))
		return fail(p, "flush");
	return PORT_OK;
}

/* 8N1, no flow control, `baud`, and the line levels set so far. */
static int apply_state(struct win_serial *s, int baud)
{
	DCB d;

	memset(&d, 0, sizeof d);
	d.DCBlength = sizeof d;
	if (!GetCommState(s->h, &d))
		return fail(&s->base, "reading the port settings");
	d.BaudRate = (DWORD)baud;
	d.ByteSize = 8;
	d.Parity = NOPARITY;
	d.StopBits = ONESTOPBIT;
	d.fBinary = TRUE;
	d.fParity = FALSE;
	d.fOutxCtsFlow = FALSE;
	d.fOutxDsrFlow = FALSE;
	d.fDsrSensitivity = FALSE;
	d.fOutX = FALSE;
	d.fInX = FALSE;
	d.fErrorChar = FALSE;
	d.fNull = FALSE;
	d.fAbortOnError = FALSE;
	if (s->dtr >= 0)
		d.fDtrControl = s->dtr ? DTR_CONTROL_ENABLE : DTR_CONTROL_DISABLE;
	else if (d.fDtrControl == DTR_CONTROL_HANDSHAKE)
		d.fDtrControl = DTR_CONTROL_ENABLE;
	if (s->rts >= 0)
		d.fRtsControl = s->rts ? RTS_CONTROL_ENABLE : RTS_CONTROL_DISABLE;
	else if (d.fRtsControl == RTS_CONTROL_HANDSHAKE || d.fRtsControl == RTS_CONTROL_TOGGLE)
		d.fRtsControl = RTS_CONTROL_ENABLE;
	if (!SetCommState(s->h, &d)) {
		char what[64];
		snprintf(what, sizeof what, "setting %d baud 8N1", baud);
		return fail(&s->base, what);
	}
	return PORT_OK;
}

static int ser_set_baud(struct port *p, int baud)
{
	return apply_state((struct win_serial *)p, baud);
}

static int ser_set_lines(struct port *p, int dtr, int rts)
{
	struct win_serial *s = (struct win_serial *)p;

	if (dtr >= 0) {
		if (!EscapeCommFunction(s->h, dtr ? SETDTR : CLRDTR))
			return fail(p, "setting DTR");
		s->dtr = dtr;
	}
	if (rts >= 0) {
		if (!EscapeCommFunction(s->h, rts ? SETRTS : CLRRTS))
			return fail(p, "setting RTS");
		s->rts = rts;
	}
	return PORT_OK;
}

static int ser_send_break(struct port *p, double seconds)
{
	struct win_serial *s = (struct win_serial *)p;

	if (!SetCommBreak(s->h))
		return fail(p, "break");
	int sl = port_sleep(seconds);
	BOOL ok = ClearCommBreak(s->h);
	if (sl != PORT_OK)
		return sl;
	return ok ? PORT_OK : fail(p, "ending break");
}

static void ser_close(struct port *p)
{
	struct win_serial *s = (struct win_serial *)p;

	CloseHandle(s->h);
	free(s);
}

static void ser_info(struct port *p, struct port_info *out)
{
	struct win_serial *s = (struct win_serial *)p;

	out->name = s->name;
	out->description = s->description[0] ? s->description : NULL;
	out->manufacturer = s->manufacturer[0] ? s->manufacturer : NULL;
	out->serial = s->serial[0] ? s->serial : NULL;
	out->usb_vid = s->vid;
	out->usb_pid = s->pid;
	out->low_latency = "not set by ncpflash on Windows (FTDI: the driver's latency timer)";
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

/* ---- enumeration (SetupAPI, the "Ports (COM & LPT)" class) ---- */

struct dev {
	char name[64], description[256], manufacturer[128], serial[128];
	int vid, pid;
};

static int hex4(const char *s)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* VID/PID and serial from a device instance id: "USB\VID_0403&PID_6001\A50285BI"
 * (the last part is the serial when it has no '&'; Windows makes one up
 * otherwise) or "FTDIBUS\VID_0403+PID_6001+A50285BIA\0000". */
static int parse_instance(const char *id, struct dev *d)
{
	const char *v = strstr(id, "VID_"), *p = strstr(id, "PID_");
	if (!v || !p)
		return 0;
	d->vid = hex4(v + 4);
	d->pid = hex4(p + 4);
	if (d->vid < 0 || d->pid < 0) {
		d->vid = d->pid = -1;
		return 0;
	}
	if (strncmp(id, "FTDIBUS\\", 8) == 0) {
		const char *sn = strchr(p, '+');
		if (sn) {
			size_t k = strcspn(sn + 1, "\\");
			if (k > 1 && k < sizeof d->serial) {
				memcpy(d->serial, sn + 1, k - 1); /* drop the channel letter */
				d->serial[k - 1] = '\0';
			}
		}
	} else {
		const char *last = strrchr(id, '\\');
		if (last && last > p && !strchr(last + 1, '&') && strlen(last + 1) < sizeof d->serial)
			snprintf(d->serial, sizeof d->serial, "%s", last + 1);
	}
	return 1;
}

static void usb_ids(DEVINST inst, struct dev *d)
{
	char id[MAX_DEVICE_ID_LEN + 1];

	for (int depth = 0; depth < 3; depth++) {
		if (CM_Get_Device_IDA(inst, id, sizeof id, 0) != CR_SUCCESS)
			return;
		if (parse_instance(id, d))
			return;
		DEVINST parent;
		if (CM_Get_Parent(&parent, inst, 0) != CR_SUCCESS)
			return;
		inst = parent;
	}
}

static void reg_prop(HDEVINFO set, SP_DEVINFO_DATA *di, DWORD prop, char *out, size_t len)
{
	DWORD type = 0;
	out[0] = '\0';
	if (!SetupDiGetDeviceRegistryPropertyA(set, di, prop, &type, (BYTE *)out,
					       (DWORD)len - 1, NULL))
		out[0] = '\0';
	out[len - 1] = '\0';
}

/* Names already reported by each_port (ports listed by several sources). */
struct seen {
	char names[128][16];
	int n;
};

static int seen_before(struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (_stricmp(s->names[i], name) == 0)
			return 1;
	if (s->n < 128 && strlen(name) < sizeof s->names[0])
		snprintf(s->names[s->n++], sizeof s->names[0], "%s", name);
	return 0;
}

/* Ports without Plug and Play data: HARDWARE\DEVICEMAP\SERIALCOMM (drivers
 * register there) and the DOS device names COM1..COM255 (what wine maps). */
static int other_ports(int (*fn)(void *ctx, const struct dev *d), void *ctx,
		       struct seen *seen)
{
	HKEY k;
	if (RegOpenKeyExA(HKEY_LOCAL_MACHINE, "HARDWARE\\DEVICEMAP\\SERIALCOMM", 0, KEY_READ,
			  &k) == ERROR_SUCCESS) {
		for (DWORD i = 0;; i++) {
			char vname[256];
			struct dev d;
			DWORD vl = sizeof vname, type = 0, dl = sizeof d.name - 1;
			memset(&d, 0, sizeof d);
			d.vid = d.pid = -1;
			if (RegEnumValueA(k, i, vname, &vl, NULL, &type, (BYTE *)d.name, &dl) !=
			    ERROR_SUCCESS)
				break;
			if (type != REG_SZ || seen_before(seen, d.name))
				continue;
			snprintf(d.description, sizeof d.description, "serial port (%s)", vname);
			if (fn(ctx, &d)) {
				RegCloseKey(k);
				return 1;
			}
		}
		RegCloseKey(k);
	}
	DWORD cap = 65536;
	char *all = NULL;
	for (int tries = 0; tries < 4; tries++, cap *= 4) {
		free(all);
		if (!(all = malloc(cap)))
			return 0;
		if (QueryDosDeviceA(NULL, all, cap) != 0)
			break;
		if (GetLastError() != ERROR_INSUFFICIENT_BUFFER) {
			free(all);
			return 0;
		}
	}
	int stop = 0;
	for (const char *n = all; *n && !stop; n += strlen(n) + 1) {
		if (_strnicmp(n, "COM", 3) != 0 || !n[3] || strspn(n + 3, "0123456789") != strlen(n + 3) ||
		    seen_before(seen, n))
			continue;
		struct dev d;
		memset(&d, 0, sizeof d);
		d.vid = d.pid = -1;
		snprintf(d.name, sizeof d.name, "%s", n);
		for (char *c = d.name; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		snprintf(d.description, sizeof d.description, "serial port");
		stop = fn(ctx, &d);
	}
	free(all);
	return stop;
}

/* Calls fn for each present port with a PortName; stops when fn returns 1. */
static int each_port(int (*fn)(void *ctx, const struct dev *d), void *ctx,
		     char *err, size_t errlen)
{
	HDEVINFO set = SetupDiGetClassDevsA(&GUID_DEVCLASS_PORTS, NULL, NULL, DIGCF_PRESENT);
	if (set == INVALID_HANDLE_VALUE) {
		char m[160];
		struct seen seen = {.n = 0};
		win_msg(m, sizeof m, GetLastError());
		if (other_ports(fn, ctx, &seen) || seen.n > 0)
			return PORT_OK;
		snprintf(err, errlen, "cannot list serial ports: %s", m);
		return PORT_EIO;
	}
	SP_DEVINFO_DATA di = {.cbSize = sizeof di};
	struct seen seen = {.n = 0};
	int stop = 0;
	for (DWORD i = 0; !stop && SetupDiEnumDeviceInfo(set, i, &di); i++) {
		struct dev d;
		memset(&d, 0, sizeof d);
		d.vid = d.pid = -1;
		HKEY k = SetupDiOpenDevRegKey(set, &di, DICS_FLAG_GLOBAL, 0, DIREG_DEV, KEY_READ);
		if (k == INVALID_HANDLE_VALUE)
			continue;
		DWORD type = 0, sz = sizeof d.name - 1;
		LONG r = RegQueryValueExA(k, "PortName", NULL, &type, (BYTE *)d.name, &sz);
		RegCloseKey(k);
		if (r != ERROR_SUCCESS || type != REG_SZ || strncmp(d.name, "LPT", 3) == 0)
			continue;
		d.name[sizeof d.name - 1] = '\0';
		reg_prop(set, &di, SPDRP_FRIENDLYNAME, d.description, sizeof d.description);
		if (!d.description[0])
			reg_prop(set, &di, SPDRP_DEVICEDESC, d.description, sizeof d.description);
		reg_prop(set, &di, SPDRP_MFG, d.manufacturer, sizeof d.manufacturer);
		usb_ids(di.DevInst, &d);
		if (!seen_before(&seen, d.name))
			stop = fn(ctx, &d);
	}
	SetupDiDestroyDeviceInfoList(set);
	if (!stop)
		other_ports(fn, ctx, &seen);
	return PORT_OK;
}

struct list_ctx {
	void (*fn)(void *ctx, const struct port_listing *e);
	void *ctx;
};

static int list_one(void *ctx, const struct dev *d)
{
	struct list_ctx *l = ctx;
	struct port_listing e = {
		.name = d->name,
		.description = d->description[0] ? d->description : NULL,
		.manufacturer = d->manufacturer[0] ? d->manufacturer : NULL,
		.serial = d->serial[0] ? d->serial : NULL,
		.transport = d->vid >= 0 ? "usb" : "native",
		.usb_vid = d->vid,
		.usb_pid = d->pid,
	};
	l->fn(l->ctx, &e);
	return 0;
}

int port_list(void (*fn)(void *ctx, const struct port_listing *e), void *ctx,
	      char *err, size_t errlen)
{
	struct list_ctx l = {fn, ctx};
	return each_port(list_one, &l, err, errlen);
}

static int find_one(void *ctx, const struct dev *d)
{
	struct win_serial *s = ctx;
	if (_stricmp(d->name, s->name) != 0)
		return 0;
	snprintf(s->description, sizeof s->description, "%s", d->description);
	snprintf(s->manufacturer, sizeof s->manufacturer, "%s", d->manufacturer);
	snprintf(s->serial, sizeof s->serial, "%s", d->serial);
	s->vid = d->vid;
	s->pid = d->pid;
	return 1;
}

/* ---- open ---- */

/* "COM3", "com3", "\\.\COM38", "//./COM38" -> name "COM38", device path
 * "\\.\COM38" (COM10 and up only open with the prefix). 0, or -1 when the
 * path is no port name. */
static int port_name(const char *path, char *name, size_t nlen, char *dev, size_t dlen)
{
	const char *n = path;
	if ((path[0] == '\\' || path[0] == '/') && (path[1] == '\\' || path[1] == '/') &&
	    path[2] == '.' && (path[3] == '\\' || path[3] == '/'))
		n = path + 4;
	if (!*n || strpbrk(n, "\\/:") || strlen(n) >= nlen)
		return -1;
	snprintf(name, nlen, "%s", n);
	if (_strnicmp(name, "COM", 3) == 0)
		for (char *c = name; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
	snprintf(dev, dlen, "\\\\.\\%s", name);
	return 0;
}

struct port *port_serial_open(const char *url, const char *path,
			      const struct port_opts *o, char *err,
			      size_t errlen, enum port_open_failure *why)
{
	char name[64], dev[80], m[200];
	int baud = o->baud > 0 ? o->baud : 115200;

	if (port_name(path, name, sizeof name, dev, sizeof dev) < 0) {
		size_t k;
		port_missing(path, err, errlen, why);
		k = strlen(err);
		snprintf(err + k, errlen - k, "; Windows names serial ports COM3 or \\\\.\\COM38");
		return NULL;
	}
	struct win_serial *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(s->name, sizeof s->name, "%s", name);
	s->dtr = s->rts = -1;
	s->vid = s->pid = -1;
	s->read_ms = s->write_ms = MAXDWORD; /* force the first SetCommTimeouts */
	s->h = CreateFileA(dev, GENERIC_READ | GENERIC_WRITE, 0 /* exclusive */, NULL,
			   OPEN_EXISTING, 0 /* synchronous */, NULL);
	if (s->h == INVALID_HANDLE_VALUE) {
		DWORD e = GetLastError();
		free(s);
		if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) {
			port_missing(path, err, errlen, why);
		} else if (e == ERROR_ACCESS_DENIED || e == ERROR_SHARING_VIOLATION) {
			*why = PORT_FAIL_BUSY;
			snprintf(err, errlen, "%s is busy (in use by another program)", path);
		} else {
			win_msg(m, sizeof m, e);
			snprintf(err, errlen, "cannot open %s: %s", path, m);
		}
		return NULL;
	}
	port_init(&s->base, &serial_ops, "serial", url, o);
	s->base.lines = 1;
	if (apply_state(s, baud) != PORT_OK || set_timeouts(s, 0, SLICE_MS) != PORT_OK) {
		snprintf(err, errlen, "cannot configure %s at %d baud: %s", path, baud, s->base.err);
		ser_close(&s->base);
		return NULL;
	}
	PurgeComm(s->h, PURGE_RXCLEAR | PURGE_TXCLEAR);
	char lerr[160];
	each_port(find_one, s, lerr, sizeof lerr);
	return &s->base;
}
