/*
 * l_isp.c - ncpflash.core.isp: opcodes, frames, reply parsing and the one
 * command path (write a frame, read and parse the reply with a deadline).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "isp.h"
#include "l_port.h"

/* Longest wait in one port read, so interrupts are seen promptly. */
#define SLICE_S 0.1
/* How many received bytes an error message shows in hex. */
#define SHOW_BYTES 16

/* cmd argument: an integer 0..255 or an opcode name (any case). */
static unsigned check_cmd(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = lua_tostring(L, idx);
		char low[40];
		size_t i;
		for (i = 0; s[i] && i + 1 < sizeof(low); i++)
			low[i] = (char)tolower((unsigned char)s[i]);
		low[i] = 0;
		for (size_t k = 0; k < isp_op_count() && !s[i]; k++) {
			const struct isp_op_info *o = isp_op_at(k);
			if (strcmp(o->name, low) == 0)
				return o->code;
		}
		luaL_argerror(L, idx, lua_pushfstring(L, "unknown opcode name '%s'", s));
		return 0;
	}
	lua_Integer c = luaL_checkinteger(L, idx);
	if (c < 0 || c > 0xFF)
		luaL_argerror(L, idx, "opcode must be 0..255");
	return (unsigned)c;
}

static const char *check_payload(lua_State *L, int idx, size_t *len)
{
	if (lua_isnoneornil(L, idx)) {
		*len = 0;
		return "";
	}
	const char *s = luaL_checklstring(L, idx, len);
	if (*len > ISP_MAX_PAYLOAD)
		luaL_argerror(L, idx, "payload longer than 65535 bytes");
	return s;
}

/* "flash_erase" or "0x99" for unknown codes. */
static const char *op_label(unsigned cmd, char *buf, size_t len)
{
	const char *n = isp_op_name(cmd);
	if (n)
		return n;
	snprintf(buf, len, "0x%02x", cmd);
	return buf;
}

/* isp.frame(cmd, payload, checksum=true) -> string */
static int l_frame(lua_State *L)
{
	unsigned cmd = check_cmd(L, 1);
	size_t len;
	const char *pl = check_payload(L, 2, &len);
	int cks = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
	luaL_Buffer b;
	uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, len + ISP_HEADER_LEN);
	size_t n = isp_frame(out, len + ISP_HEADER_LEN, (uint8_t)cmd,
			     (const uint8_t *)pl, len, cks);
	luaL_pushresultsize(&b, n);
	return 1;
}

/* isp.checksum(payload) -> integer */
static int l_checksum(lua_State *L)
{
	size_t len;
	const char *pl = check_payload(L, 1, &len);
	lua_pushinteger(L, isp_checksum((const uint8_t *)pl, len));
	return 1;
}

static void set_fl_fields(lua_State *L, int t, unsigned fl)
{
	lua_pushinteger(L, fl);
	lua_setfield(L, t, "fl");
	const char *n = isp_fl_name(fl);
	if (n) {
		lua_pushstring(L, n);
		lua_setfield(L, t, "fl_name");
	}
}

/* isp.parse(bytes, want_data) -> {status=, consumed=, need=, data=, fl=,
 * fl_name=, ok_pairs=, bad_offset=} */
static int l_parse(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	int want = lua_toboolean(L, 2);
	struct isp_parser p;
	isp_parse_init(&p, want);
	enum isp_result r = isp_parse_feed(&p, (const uint8_t *)s, n);
	lua_createtable(L, 0, 6);
	int t = lua_gettop(L);
	lua_pushstring(L, isp_result_name(r));
	lua_setfield(L, t, "status");
	lua_pushinteger(L, (lua_Integer)p.ok_pairs);
	lua_setfield(L, t, "ok_pairs");
	switch (r) {
	case ISP_R_NEED_MORE:
		lua_pushinteger(L, (lua_Integer)p.need);
		lua_setfield(L, t, "need");
		break;
	case ISP_R_DATA:
		lua_pushlstring(L, s + p.data_off, p.data_len);
		lua_setfield(L, t, "data");
		break;
	case ISP_R_FL:
		set_fl_fields(L, t, p.fl);
		break;
	case ISP_R_MALFORMED:
		lua_pushinteger(L, (lua_Integer)p.bad_off);
		lua_setfield(L, t, "bad_offset");
		break;
	default:
		break;
	}
	if (r != ISP_R_NEED_MORE) {
		lua_pushinteger(L, (lua_Integer)p.consumed);
		lua_setfield(L, t, "consumed");
	}
	return 1;
}

/* " (received N bytes: 4F 4B ...)" */
static void describe_got(char *out, size_t len, const uint8_t *got, size_t n)
{
	int w = snprintf(out, len, "received %zu byte%s", n, n == 1 ? "" : "s");
	if (w < 0 || (size_t)w >= len)
		return;
	size_t at = (size_t)w;
	for (size_t i = 0; i < n && i < SHOW_BYTES && at + 4 < len; i++) {
		w = snprintf(out + at, len - at, "%s%02X", i ? " " : ": ", got[i]);
		if (w < 0 || (size_t)w >= len - at)
			return;
		at += (size_t)w;
	}
	if (n > SHOW_BYTES && at + 5 < len)
		snprintf(out + at, len - at, " ...");
}

/* Pushes the error-fields table {op=, cmd=, got=} and returns its index. */
static int push_fields(lua_State *L, const char *op, unsigned cmd,
		       const uint8_t *got, size_t n)
{
	lua_createtable(L, 0, 5);
	int t = lua_gettop(L);
	lua_pushstring(L, op);
	lua_setfield(L, t, "op");
	lua_pushinteger(L, cmd);
	lua_setfield(L, t, "cmd");
	lua_pushlstring(L, (const char *)got, n);
	lua_setfield(L, t, "got");
	return t;
}

struct cmd_opts {
	double timeout;
	double pending_extend; /* with pending: each PD moves the deadline to >= now + this */
	int checksum, data, pending;
};

static void read_opts(lua_State *L, int idx, struct cmd_opts *o)
{
	o->timeout = 2.0;
	o->checksum = 1;
	o->data = 0;
	o->pending = 0;
	o->pending_extend = 0;
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	if (lua_getfield(L, idx, "timeout") != LUA_TNIL) {
		int isnum;
		o->timeout = lua_tonumberx(L, -1, &isnum);
		if (!isnum || !(o->timeout >= 0) || o->timeout > 1e6)
			luaL_argerror(L, idx, "opts.timeout must be a number of seconds >= 0");
	}
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "checksum") != LUA_TNIL)
		o->checksum = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, idx, "data");
	o->data = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_getfield(L, idx, "pending");
	o->pending = lua_toboolean(L, -1);
	lua_pop(L, 1);
	if (lua_getfield(L, idx, "pending_extend") != LUA_TNIL) {
		int isnum;
		o->pending_extend = lua_tonumberx(L, -1, &isnum);
		if (!isnum || !(o->pending_extend >= 0) || o->pending_extend > 1e6)
			luaL_argerror(L, idx, "opts.pending_extend must be a number of seconds >= 0");
	}
	lua_pop(L, 1);
}

/*
 * isp.command(port, cmd, payload, opts) -> data string (opts.data) or true
 *
 * Writes the frame, then reads exactly as many bytes as the parser asks
 * for (so nothing of a later reply is consumed), in slices of <= 100 ms,
 * until a final result or the deadline (opts.timeout after the write).
 * With opts.pending a "PD" is dropped and the wait goes on until the same
 * deadline (opts.pending_extend: each PD moves it to at least that many
 * seconds from now); without it "PD" is a protocol error. isp.send and isp.reply are
 * its two halves (stop-and-wait with work between them, or a bounded
 * number of frames in flight), sharing this code.
 */

/* Writes the frame. The frame lives in a userdata (freed by the GC even
 * when an error unwinds). */
static void send_frame(lua_State *L, struct port *port, unsigned cmd,
		       const char *pl, size_t plen, const struct cmd_opts *o)
{
	uint8_t *frame = (uint8_t *)lua_newuserdatauv(L, plen + ISP_HEADER_LEN, 0);
	size_t flen = isp_frame(frame, plen + ISP_HEADER_LEN, (uint8_t)cmd,
				(const uint8_t *)pl, plen, o->checksum);
	ncp_port_write(L, port, frame, flen);
	lua_pop(L, 1);
}

static int read_reply(lua_State *L, struct port *port, unsigned cmd,
		      struct cmd_opts o);

/* The arguments (port, cmd, payload, opts) of isp.command / isp.send: writes
 * the frame; returns the port, *cmd and *o for the reply. */
static struct port *send_args(lua_State *L, unsigned *cmd, struct cmd_opts *o)
{
	struct port *port = ncp_checkport(L, 1);
	*cmd = check_cmd(L, 2);
	size_t plen;
	const char *pl = check_payload(L, 3, &plen);
	read_opts(L, 4, o);
	send_frame(L, port, *cmd, pl, plen, o);
	return port;
}

static int l_command(lua_State *L)
{
	unsigned cmd;
	struct cmd_opts o;
	struct port *port = send_args(L, &cmd, &o);
	return read_reply(L, port, cmd, o);
}

/* isp.send(port, cmd, payload, opts): the first half of isp.command (the
 * frame is written; opts.checksum). */
static int l_send(lua_State *L)
{
	unsigned cmd;
	struct cmd_opts o;
	send_args(L, &cmd, &o);
	return 0;
}

/* isp.reply(port, cmd, opts): the second half of isp.command - reads and
 * parses the reply to a frame sent with isp.send (the deadline counts
 * from this call). */
static int l_reply(lua_State *L)
{
	struct port *port = ncp_checkport(L, 1);
	unsigned cmd = check_cmd(L, 2);
	struct cmd_opts o;
	read_opts(L, 3, &o);
	return read_reply(L, port, cmd, o);
}

/* Reads exactly the bytes the reply needs, until a final result or the
 * deadline (o.timeout from now). */
static int read_reply(lua_State *L, struct port *port, unsigned cmd,
		      struct cmd_opts o)
{
	char opbuf[8];
	const char *op = op_label(cmd, opbuf, sizeof(opbuf));
	/* the reply starts in a small stack buffer and moves to a userdata
	 * only when a long data reply announces itself */
	uint8_t small[256];
	uint8_t *buf = small;
	size_t cap = sizeof(small);

	double deadline = ncp_now() + o.timeout;
	struct isp_parser p;
	isp_parse_init(&p, o.data);
	size_t n = 0;        /* bytes of the current reply in buf */
	unsigned pds = 0;
	int last_look = 0;
	char got[128];
	for (;;) {
		enum isp_result r = isp_parse_feed(&p, buf, n);
		switch (r) {
		case ISP_R_OK:
			if (o.data) /* cannot happen: want_data never ends at OK */
				break;
			lua_pushboolean(L, 1);
			return 1;
		case ISP_R_DATA:
			lua_pushlstring(L, (const char *)buf + p.data_off, p.data_len);
			return 1;
		case ISP_R_FL: {
			int t = push_fields(L, op, cmd, buf, n);
			set_fl_fields(L, t, p.fl);
			const char *name = isp_fl_name(p.fl);
			const char *hint = isp_fl_hint(p.fl);
			ncp_error_fields(L, t, "device",
					 "%s (0x%02X): device answered FL 0x%04X %s%s%s%s", op,
					 cmd, p.fl, name ? name : "(unknown code)",
					 hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
			return 0;
		}
		case ISP_R_PENDING:
			if (!o.pending) {
				int t = push_fields(L, op, cmd, buf, n);
				ncp_error_fields(L, t, "protocol",
						 "%s (0x%02X): device answered PD (busy), which this "
						 "command does not expect",
						 op, cmd);
				return 0;
			}
			pds++;
			if (o.pending_extend > 0 && deadline < ncp_now() + o.pending_extend)
				deadline = ncp_now() + o.pending_extend; /* busy, not gone */
			n = 0;
			isp_parse_init(&p, o.data);
			continue;
		case ISP_R_MALFORMED: {
			describe_got(got, sizeof(got), buf, n);
			int t = push_fields(L, op, cmd, buf, n);
			ncp_error_fields(L, t, "protocol",
					 "%s (0x%02X): malformed reply at byte %zu, expected "
					 "OK, FL or PD (%s)",
					 op, cmd, p.bad_off, got);
			return 0;
		}
		case ISP_R_NEED_MORE:
			break;
		}
		if (r != ISP_R_NEED_MORE)
			break; /* unreachable; keeps the compiler honest */

		if (ncp_interrupt_pending())
			ncp_error_fields(L, 0, "interrupted", "%s (0x%02X): interrupted", op, cmd);
		double left = deadline - ncp_now();
		if (left <= 0 && !last_look) {
			/* past the deadline: a non-blocking look at what is already there */
			last_look = 1;
			left = 0;
		} else if (left <= 0) {
			describe_got(got, sizeof(got), buf, n);
			int t = push_fields(L, op, cmd, buf, n);
			if (pds) {
				lua_pushinteger(L, pds);
				lua_setfield(L, t, "pending");
			}
			ncp_error_fields(L, t, "timeout",
					 "%s (0x%02X): %s within %.2f s (%s%s)", op, cmd,
					 n == 0 ? "no reply" : "incomplete reply",
					 o.timeout, got,
					 pds ? ", after the device reported PD (busy)" : "");
			return 0;
		}
		size_t want = p.need;
		if (want > cap - n && buf == small) {
			uint8_t *big = (uint8_t *)lua_newuserdatauv(L, ISP_MAX_REPLY, 0);
			memcpy(big, small, n);
			buf = big;
			cap = ISP_MAX_REPLY;
		}
		if (want > cap - n) /* cannot happen: ISP_MAX_REPLY bounds a reply */
			want = cap - n;
		size_t got_n = ncp_port_read(L, port, buf + n, want,
					     left < SLICE_S ? left : SLICE_S);
		n += got_n;
		if (got_n > 0)
			last_look = 0; /* progress: past the deadline, keep looking while bytes are there */
	}
	return luaL_error(L, "isp.command: internal parser state");
}

/* isp.sync(port, count): writes count x 0x55. */
static int l_sync(lua_State *L)
{
	struct port *port = ncp_checkport(L, 1);
	lua_Integer count = luaL_checkinteger(L, 2);
	if (count < 0 || count > 1000000)
		luaL_argerror(L, 2, "count must be 0..1000000");
	if (count == 0)
		return 0;
	uint8_t *buf = (uint8_t *)lua_newuserdatauv(L, (size_t)count, 0);
	memset(buf, 0x55, (size_t)count);
	ncp_port_write(L, port, buf, (size_t)count);
	return 0;
}

static int l_fl_hint(lua_State *L)
{
	lua_Integer c = luaL_checkinteger(L, 1);
	const char *h = (c >= 0 && c <= 0xFFFF) ? isp_fl_hint((unsigned)c) : NULL;
	if (h)
		lua_pushstring(L, h);
	else
		lua_pushnil(L);
	return 1;
}

int luaopen_ncpflash_core_isp(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{"frame", l_frame},
		{"checksum", l_checksum},
		{"parse", l_parse},
		{"command", l_command},
		{"send", l_send},
		{"reply", l_reply},
		{"sync", l_sync},
		{"fl_hint", l_fl_hint},
		{NULL, NULL},
	};
	luaL_newlib(L, fns);
	int m = lua_gettop(L);

	/* isp.op (NAME -> code), isp.op_name (code -> name), isp.reply_data */
	lua_newtable(L);
	lua_newtable(L);
	lua_newtable(L);
	for (size_t k = 0; k < isp_op_count(); k++) {
		const struct isp_op_info *o = isp_op_at(k);
		char up[40];
		size_t i;
		for (i = 0; o->name[i] && i + 1 < sizeof(up); i++)
			up[i] = (char)toupper((unsigned char)o->name[i]);
		up[i] = 0;
		lua_pushinteger(L, o->code);
		lua_setfield(L, m + 1, up);
		if (!o->alias) {
			lua_pushstring(L, o->name);
			lua_rawseti(L, m + 2, o->code);
			if (o->reply_data) {
				lua_pushboolean(L, 1);
				lua_rawseti(L, m + 3, o->code);
			}
		}
	}
	lua_setfield(L, m, "reply_data");
	lua_setfield(L, m, "op_name");
	lua_setfield(L, m, "op");

	/* isp.fl_name (code -> NAME), isp.fl (NAME -> code) */
	lua_newtable(L);
	lua_newtable(L);
	for (size_t k = 0; k < isp_fl_count(); k++) {
		const struct isp_fl_info *f = isp_fl_at(k);
		lua_pushstring(L, f->name);
		lua_rawseti(L, m + 1, f->code);
		lua_pushinteger(L, f->code);
		lua_setfield(L, m + 2, f->name);
	}
	lua_setfield(L, m, "fl");
	lua_setfield(L, m, "fl_name");

	lua_pushinteger(L, ISP_MAX_PAYLOAD);
	lua_setfield(L, m, "MAX_PAYLOAD");
	return 1;
}
