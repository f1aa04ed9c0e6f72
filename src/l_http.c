/*
 * l_http.c - ncpflash.core.http: a small HTTP server on libmicrohttpd
 * (Debian's libmicrohttpd), for the station's dashboard and JSON API
 * (lua/ncpflash/station/web.lua).  HTTP itself (request lines, headers,
 * chunking, keep-alive, limits) is libmicrohttpd's; nothing here parses it.
 *
 *   http.listen{host = "127.0.0.1", port = 8067, handler = fn,
 *               max_body = 65536, max_streams = 16} -> server
 *       host: a numeric IPv4 or IPv6 address; port 0 picks a free one
 *   server:port() -> the bound port
 *   server:poll(timeout)   serve for up to `timeout` seconds (<= 10): waits
 *       in select(2) on the server's sockets and calls handler(req) for each
 *       complete request, in this thread.  Returns the number of requests
 *       handled.
 *         req = {method=, path=, query = {k = v}, headers = {lowercase = v},
 *                body = "...", remote = "127.0.0.1"}
 *         handler returns {status = 200, type = "text/html", body = "...",
 *                headers = {Name = value}, stream = false}
 *       stream = true makes the reply an event stream (text/event-stream,
 *       Server-Sent Events): `body` is sent first, then everything
 *       server:send() passes, until the client goes or the server closes.
 *       A handler error (or a non-table result) answers 500; the error
 *       text is kept for server:log().
 *   server:send(data) -> n       queue data for every open event stream
 *       (n of them).  A stream whose client lags by more than 4 MiB is
 *       dropped.
 *   server:streams() -> n
 *   server:log() -> {lines}      libmicrohttpd's and the handler's error
 *       messages since the last call (nothing is printed from C)
 *   server:close()               also __close and __gc; idempotent: ends
 *       every stream, stops the daemon, frees everything
 *
 * Threads: libmicrohttpd runs in "external select" mode (no threads of its
 * own), so the Lua handler runs only inside server:poll(), in the caller's
 * thread and Lua state.  An event stream with nothing to send suspends its
 * connection (MHD_suspend_connection from the content reader, the one
 * place the library allows it); server:send() resumes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "host.h"

#define HTTP_MT "ncpflash.http.server"
#define LOG_MAX 32
#define STREAM_LAG_MAX (4u << 20)
#define MAX_HEADERS 16

struct stream {
	struct server *srv; /* NULL once the server is gone */
	struct MHD_Connection *conn;
	struct stream *next;
	char *buf;
	size_t len, cap, off;
	int suspended;
	int ended; /* server closing, or the client lagged: end the reply */
};

struct server {
	struct MHD_Daemon *d;
	lua_State *L;   /* set only inside poll() */
	int ud_index;   /* the server userdata's stack index during poll() */
	int handled;
	int in_poll;
	int resumed; /* a stream was resumed: MHD_run before MHD_get_fdset */
	size_t max_body;
	int max_streams, nstreams;
	struct stream *streams;
	char *log[LOG_MAX];
	int nlog;
	unsigned short port;
};

struct server_ud {
	struct server *srv; /* NULL once closed */
};

/* per-request state (MHD's con_cls) */
struct request {
	char *body;
	size_t len, cap;
	int too_big;
};

/* what the Lua handler answered, copied out of Lua */
struct answer {
	int status;
	int stream;
	char *body;
	size_t body_len;
	char *ctype;
	char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
	int nh;
};

static void log_add(struct server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_add(struct server *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (s->nlog == LOG_MAX) {
		free(s->log[0]);
		memmove(s->log, s->log + 1, (LOG_MAX - 1) * sizeof s->log[0]);
		s->nlog--;
	}
	s->log[s->nlog] = strdup(line);
	if (s->log[s->nlog])
		s->nlog++;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	struct server *s = cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	log_add(s, "libmicrohttpd: %s", line);
}

static void answer_free(struct answer *a)
{
	free(a->body);
	free(a->ctype);
	for (int i = 0; i < a->nh; i++) {
		free(a->hname[i]);
		free(a->hvalue[i]);
	}
}

/* --- event streams -------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *st = cls;
	if (st->off < st->len) {
		size_t n = st->len - st->off;
		if (n > max)
			n = max;
		memcpy(buf, st->buf + st->off, n);
		st->off += n;
		if (st->off == st->len)
			st->off = st->len = 0;
		return (ssize_t)n;
	}
	if (st->ended || !st->srv)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* nothing to send: park the connection until server:send() */
	st->suspended = 1;
	MHD_suspend_connection(st->conn);
	return 0;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;
	struct server *s = st->srv;
	if (s) {
		for (struct stream **p = &s->streams; *p; p = &(*p)->next)
			if (*p == st) {
				*p = st->next;
				break;
			}
		s->nstreams--;
	}
	free(st->buf);
	free(st);
}

static int stream_append(struct stream *st, const char *data, size_t n)
{
	if (st->len + n > STREAM_LAG_MAX)
		return -1;
	if (st->len + n > st->cap) {
		size_t cap = st->cap ? st->cap : 4096;
		while (cap < st->len + n)
			cap *= 2;
		char *b = realloc(st->buf, cap);
		if (!b)
			return -1;
		st->buf = b;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, data, n);
	st->len += n;
	return 0;
}

static void stream_wake(struct stream *st)
{
	if (st->suspended) {
		st->suspended = 0;
		MHD_resume_connection(st->conn);
		if (st->srv)
			st->srv->resumed = 1;
	}
}

/* --- requests ------------------------------------------------------------ */

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	lua_State *L = cls;
	if (!key)
		return MHD_YES;
	if (kind == MHD_HEADER_KIND) {
		luaL_Buffer b;
		luaL_buffinit(L, &b);
		for (const char *p = key; *p; p++)
			luaL_addchar(&b, (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p));
		luaL_pushresult(&b);
	} else {
		lua_pushstring(L, key);
	}
	lua_pushstring(L, value ? value : "");
	lua_settable(L, -3);
	return MHD_YES;
}

static char *dup_lua_string(lua_State *L, int idx, size_t *len)
{
	size_t n;
	const char *s = lua_tolstring(L, idx, &n);
	char *p = malloc(n + 1);
	if (!p)
		luaL_error(L, "out of memory");
	memcpy(p, s, n);
	p[n] = 0;
	if (len)
		*len = n;
	return p;
}

struct call {
	struct server *srv;
	struct MHD_Connection *conn;
	const char *url, *method;
	struct request *rq;
	struct answer *ans;
};

/* Runs under lua_pcall: build req, call the handler, copy the answer. */
static int dispatch(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	struct answer *a = c->ans;
	lua_pushvalue(L, 2); /* the handler */
	lua_createtable(L, 0, 7);
	lua_pushstring(L, c->method);
	lua_setfield(L, -2, "method");
	lua_pushstring(L, c->url);
	lua_setfield(L, -2, "path");
	lua_newtable(L);
	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, collect_kv, L);
	lua_setfield(L, -2, "query");
	lua_newtable(L);
	MHD_get_connection_values(c->conn, MHD_HEADER_KIND, collect_kv, L);
	lua_setfield(L, -2, "headers");
	lua_pushlstring(L, c->rq->body ? c->rq->body : "", c->rq->len);
	lua_setfield(L, -2, "body");
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		char host[INET6_ADDRSTRLEN] = "";
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
		lua_pushstring(L, host);
		lua_setfield(L, -2, "remote");
	}
	lua_call(L, 1, 1);
	if (!lua_istable(L, -1))
		return luaL_error(L, "the handler returned a %s, not a table", luaL_typename(L, -1));
	int t = lua_gettop(L);
	lua_getfield(L, t, "status");
	a->status = (int)luaL_optinteger(L, -1, 200);
	if (a->status < 100 || a->status > 599)
		return luaL_error(L, "bad HTTP status %d", a->status);
	lua_getfield(L, t, "stream");
	a->stream = lua_toboolean(L, -1);
	lua_getfield(L, t, "body");
	if (!lua_isnil(L, -1)) {
		if (!lua_isstring(L, -1))
			return luaL_error(L, "body must be a string");
		a->body = dup_lua_string(L, -1, &a->body_len);
	}
	lua_getfield(L, t, "type");
	if (!lua_isnil(L, -1))
		a->ctype = dup_lua_string(L, -1, NULL);
	lua_getfield(L, t, "headers");
	if (lua_istable(L, -1)) {
		int h = lua_gettop(L);
		lua_pushnil(L);
		while (lua_next(L, h) && a->nh < MAX_HEADERS) {
			if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
				a->hname[a->nh] = dup_lua_string(L, -2, NULL);
				a->hvalue[a->nh] = dup_lua_string(L, -1, NULL);
				a->nh++;
			}
			lua_pop(L, 1);
		}
	}
	return 0;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned code, const char *text)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ok = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct server *s = cls;
	struct request *rq = *con_cls;
	if (!rq) { /* headers only so far */
		rq = calloc(1, sizeof *rq);
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (rq->too_big || rq->len + n > s->max_body) {
			rq->too_big = 1;
			return MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap * 2 : 1024;
			while (cap < rq->len + n)
				cap *= 2;
			char *b = realloc(rq->body, cap);
			if (!b)
				return MHD_NO;
			rq->body = b;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		return MHD_YES;
	}
	if (rq->too_big)
		return reply_text(conn, 413, "request body too large\n");
	lua_State *L = s->L;
	if (!L)
		return reply_text(conn, 503, "server is closing\n");
	struct answer a = {0};
	struct call c = {s, conn, url, method, rq, &a};
	int top = lua_gettop(L);
	if (!lua_checkstack(L, 4)) {
		answer_free(&a);
		return reply_text(conn, 503, "server busy\n");
	}
	lua_pushcfunction(L, dispatch);
	lua_pushlightuserdata(L, &c);
	lua_getiuservalue(L, s->ud_index, 1); /* poll()'s frame: the server is at ud_index */
	int rc = lua_pcall(L, 2, 0, 0);
	if (rc != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		if (!msg && lua_istable(L, -1)) {
			lua_getfield(L, -1, "message");
			msg = lua_tostring(L, -1);
		}
		log_add(s, "handler error on %s %s: %s", method, url, msg ? msg : "(not a string)");
		lua_settop(L, top);
		answer_free(&a);
		return reply_text(conn, 500, "internal error (see the station's log)\n");
	}
	lua_settop(L, top);
	s->handled++;
	struct MHD_Response *r;
	struct stream *st = NULL;
	if (a.stream) {
		if (s->nstreams >= s->max_streams) {
			answer_free(&a);
			return reply_text(conn, 503, "too many event streams\n");
		}
		st = calloc(1, sizeof *st);
		if (!st) {
			answer_free(&a);
			return MHD_NO;
		}
		st->srv = s;
		st->conn = conn;
		if (a.body_len && stream_append(st, a.body, a.body_len)) {
			free(st->buf);
			free(st);
			answer_free(&a);
			return MHD_NO;
		}
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
		if (!r) {
			free(st->buf);
			free(st);
			answer_free(&a);
			return MHD_NO;
		}
		st->next = s->streams;
		s->streams = st;
		s->nstreams++;
		MHD_add_response_header(r, "Content-Type", a.ctype ? a.ctype : "text/event-stream");
	} else {
		r = MHD_create_response_from_buffer(a.body_len, a.body ? a.body : (void *)"",
						    a.body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
		if (!r) {
			answer_free(&a);
			return MHD_NO;
		}
		a.body = NULL; /* owned by the response now */
		MHD_add_response_header(r, "Content-Type", a.ctype ? a.ctype : "text/plain; charset=utf-8");
	}
	for (int i = 0; i < a.nh; i++)
		MHD_add_response_header(r, a.hname[i], a.hvalue[i]);
	enum MHD_Result ok = MHD_queue_response(conn, (unsigned)a.status, r);
	MHD_destroy_response(r);
	answer_free(&a);
	return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct request *rq = *con_cls;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* --- the server object ------------------------------------------------------ */

static struct server *check_srv(lua_State *L)
{
	struct server_ud *u = luaL_checkudata(L, 1, HTTP_MT);
	if (!u->srv)
		luaL_error(L, "http server is closed");
	return u->srv;
}

static void server_free(struct server *s)
{
	if (s->d) {
		/* every suspended stream must be resumed before the daemon
		 * stops (libmicrohttpd's rule); they then end their replies */
		for (struct stream *st = s->streams; st; st = st->next) {
			st->ended = 1;
			stream_wake(st);
		}
		s->L = NULL;
		MHD_run(s->d);
		for (struct stream *st = s->streams; st; st = st->next)
			stream_wake(st);
		MHD_stop_daemon(s->d);
		s->d = NULL;
	}
	/* streams the daemon did not free (it frees each reply it still
	 * holds, so normally none) must not point back at us */
	for (struct stream *st = s->streams; st; st = st->next)
		st->srv = NULL;
	for (int i = 0; i < s->nlog; i++)
		free(s->log[i]);
	free(s);
}

static int server_release(lua_State *L)
{
	struct server_ud *u = luaL_checkudata(L, 1, HTTP_MT);
	if (u->srv && u->srv->in_poll)
		return luaL_error(L, "http: close() from inside a request handler");
	if (u->srv) {
		struct server *s = u->srv;
		u->srv = NULL;
		server_free(s);
	}
	return 0;
}

static int l_listen(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "host");
	const char *host = luaL_optstring(L, -1, "127.0.0.1");
	lua_getfield(L, 1, "port");
	lua_Integer port = luaL_optinteger(L, -1, 0);
	lua_getfield(L, 1, "max_body");
	lua_Integer max_body = luaL_optinteger(L, -1, 65536);
	lua_getfield(L, 1, "max_streams");
	lua_Integer max_streams = luaL_optinteger(L, -1, 16);
	lua_getfield(L, 1, "handler");
	luaL_checktype(L, -1, LUA_TFUNCTION);
	int handler = lua_gettop(L);
	if (port < 0 || port > 65535)
		return luaL_error(L, "http.listen: port %d out of range", (int)port);
	if (max_body < 0 || max_streams < 0 || max_streams > 1000)
		return luaL_error(L, "http.listen: bad limits");

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	unsigned flags = MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	const char *h = host;
	char buf[64];
	size_t hl = strlen(host);
	if (hl > 2 && hl < sizeof buf && host[0] == '[' && host[hl - 1] == ']') {
		memcpy(buf, host + 1, hl - 2);
		buf[hl - 2] = 0;
		h = buf;
	}
	if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((unsigned short)port);
	} else if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((unsigned short)port);
		flags |= MHD_USE_IPv6;
	} else {
		return ncp_error(L, "usage", "http: listen address %s is not a numeric IPv4 or IPv6 address", host);
	}

	struct server_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
	u->srv = NULL;
	luaL_setmetatable(L, HTTP_MT);
	lua_pushvalue(L, handler);
	lua_setiuservalue(L, -2, 1);
	struct server *s = calloc(1, sizeof *s);
	if (!s)
		return luaL_error(L, "out of memory");
	u->srv = s; /* from here __gc frees it */
	s->max_body = (size_t)max_body;
	s->max_streams = (int)max_streams;
	s->d = MHD_start_daemon(flags, (unsigned short)port, NULL, NULL, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
				MHD_OPTION_END);
	if (!s->d) {
		int e = errno;
		const char *why = s->nlog ? s->log[s->nlog - 1] : strerror(e);
		lua_pushstring(L, why);
		return ncp_error(L, "port", "http: cannot listen on %s:%d: %s", host, (int)port, lua_tostring(L, -1));
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : (unsigned short)port;
	return 1;
}

static int l_port(lua_State *L)
{
	lua_pushinteger(L, check_srv(L)->port);
	return 1;
}

static int l_poll(lua_State *L)
{
	struct server *s = check_srv(L);
	double timeout = luaL_optnumber(L, 2, 0.1);
	if (timeout < 0)
		timeout = 0;
	if (timeout > 10)
		timeout = 10;
	if (s->in_poll)
		return luaL_error(L, "http: poll() from inside a request handler");
	double deadline = ncp_now() + timeout;
	s->handled = 0;
	s->ud_index = 1;
	lua_settop(L, 1);
	s->in_poll = 1;
	for (;;) {
		if (s->resumed) { /* the library's rule after MHD_resume_connection */
			s->resumed = 0;
			s->L = L;
			MHD_run(s->d);
			s->L = NULL;
		}
		fd_set rs, ws, es;
		FD_ZERO(&rs);
		FD_ZERO(&ws);
		FD_ZERO(&es);
		MHD_socket maxfd = 0;
		if (MHD_get_fdset(s->d, &rs, &ws, &es, &maxfd) != MHD_YES) {
			s->in_poll = 0;
			return ncp_error(L, "internal", "http: MHD_get_fdset failed (descriptor above FD_SETSIZE?)");
		}
		double left = deadline - ncp_now();
		if (left < 0)
			left = 0;
		MHD_UNSIGNED_LONG_LONG mhd_ms;
		if (MHD_get_timeout(s->d, &mhd_ms) == MHD_YES && (double)mhd_ms / 1000.0 < left)
			left = (double)mhd_ms / 1000.0;
		struct timeval tv = {(time_t)left, (long)((left - (double)(time_t)left) * 1e6)};
		int n = select(maxfd + 1, &rs, &ws, &es, &tv);
		if (n < 0 && errno != EINTR) {
			s->in_poll = 0;
			return ncp_error(L, "internal", "http: select: %s", strerror(errno));
		}
		s->L = L;
		if (n > 0)
			MHD_run_from_select(s->d, &rs, &ws, &es);
		else
			MHD_run(s->d);
		s->L = NULL;
		if (s->handled || ncp_now() >= deadline || ncp_interrupt_pending())
			break;
	}
	s->in_poll = 0;
	lua_pushinteger(L, s->handled);
	return 1;
}

static int l_send(lua_State *L)
{
	struct server *s = check_srv(L);
	size_t n;
	const char *data = luaL_checklstring(L, 2, &n);
	int count = 0;
	for (struct stream *st = s->streams; st; st = st->next) {
		if (st->ended)
			continue;
		if (stream_append(st, data, n)) {
			st->ended = 1; /* lagging client: end its reply */
			log_add(s, "event stream dropped: the client is more than %u bytes behind", STREAM_LAG_MAX);
		} else {
			count++;
		}
		stream_wake(st); /* poll() runs MHD_run first, as the library asks */
	}
	lua_pushinteger(L, count);
	return 1;
}

static int l_streams(lua_State *L)
{
	struct server *s = check_srv(L);
	int n = 0;
	for (struct stream *st = s->streams; st; st = st->next)
		if (!st->ended)
			n++;
	lua_pushinteger(L, n);
	return 1;
}

static int l_log(lua_State *L)
{
	struct server *s = check_srv(L);
	lua_createtable(L, s->nlog, 0);
	for (int i = 0; i < s->nlog; i++) {
		lua_pushstring(L, s->log[i]);
		lua_rawseti(L, -2, i + 1);
		free(s->log[i]);
	}
	s->nlog = 0;
	return 1;
}

int luaopen_ncpflash_core_http(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"port", l_port}, {"poll", l_poll},   {"send", l_send}, {"streams", l_streams},
		{"log", l_log},   {"close", server_release}, {NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
		{"listen", l_listen},
		{NULL, NULL},
	};
	luaL_newmetatable(L, HTTP_MT);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, server_release);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, server_release);
	lua_setfield(L, -2, "__close");
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
