/*
 * l_jobs.c - ncpflash.core.jobs: device jobs in threads, one Lua state each.
 *
 * Why threads and not coroutines: every layer below the recipes (port
 * reads with deadlines, isp.command, the connect ladder's sleeps, XZ
 * compression) is written as plain blocking calls, which keeps recipes
 * readable.  Coroutines would need every one of those waits turned into a
 * yield over non-blocking I/O, and one CPU-heavy step (XZ of a 1 MiB image)
 * would still stall every other board.  A thread per job runs the
 * unchanged library in a fresh host Lua state (host_main), shares no Lua
 * data with the others, and uses both cores.  The only channel back is a
 * pipe of JSON event lines (ncpflash.events in --json mode) that the parent
 * polls (os.h: ncp_pipe_wait); the only channel in is an atomic cancel flag that the
 * child's instruction hook turns into an "interrupted" error.
 *
 *   jobs.start(argv, {index = n})  -> job      (argv[1] is the program name)
 *   job:read()          -> bytes available now ("" none yet), nil at EOF
 *   job:result()        -> exit code once the thread has ended, else nil
 *   job:cancel()        ask the job to stop (it ends with "interrupted")
 *   job:join(timeout)   -> true when the thread ended and was joined
 *   jobs.wait(jobs_list, timeout) -> number of jobs with input or EOF,
 *                       interrupted (true when SIGINT/SIGTERM is pending: it
 *                       is left pending so that every job sees it too; the
 *                       caller consumes it once all jobs have ended)
 *   jobs.self()         -> nil, or {index = n} inside a job
 *   jobs.events()       -> inside a job: a Lua file handle on the event pipe
 *   jobs.lock(path, timeout) -> lock (an exclusive lock on path, created if
 *                       missing: flock(2), LockFileEx on Windows; raises
 *                       "timeout"); lock:unlock(), __close, __gc
 *
 * Ownership: the job record is shared by the parent's userdata and the
 * thread, with an atomic reference count; whoever drops the last reference
 * closes the read end and frees it.  A job whose thread does not end within
 * the deadline at __gc is detached, never waited on forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

#define JOB_MT "ncpflash.job"
#define LOCK_MT "ncpflash.lock"

struct job {
	_Atomic int refs;
	_Atomic int cancel;
	_Atomic int finished;
	int code;
	int rfd;        /* parent's read end, -1 once closed */
	int eof;
	int joined;
	int detached;
	pthread_t thread;
	struct host_job hj;
	int argc;
	char **argv;
};

struct job_ud {
	struct job *job;
};

struct lock_ud {
	int fd;
};

static void job_release(struct job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	if (j->rfd >= 0)
		close(j->rfd);
	for (int i = 0; i < j->argc; i++)
		free(j->argv[i]);
	free(j->argv);
	free(j);
}

static void *job_thread(void *arg)
{
	struct job *j = arg;
#if !defined(_WIN32)
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* SIGPIPE too: EPIPE instead */
#endif
	j->code = host_main(j->argc, j->argv, &j->hj);
	close(j->hj.event_fd);
	atomic_store(&j->finished, 1);
	job_release(j);
	return NULL;
}

static struct job *check_job(lua_State *L, int i)
{
	struct job_ud *u = luaL_checkudata(L, i, JOB_MT);
	if (!u->job)
		luaL_error(L, "job already released");
	return u->job;
}

static int l_start(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	int index = 0;
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "index");
		index = (int)luaL_optinteger(L, -1, 0);
		lua_pop(L, 1);
	}
	lua_Integer n = luaL_len(L, 1);
	if (n < 1 || n > 4096)
		return luaL_argerror(L, 1, "argv needs 1..4096 strings");
	struct job_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
	u->job = NULL;
	luaL_setmetatable(L, JOB_MT);
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return luaL_error(L, "out of memory");
	j->rfd = -1;
	j->joined = 1; /* nothing to join until the thread runs */
	j->argv = calloc((size_t)n + 1, sizeof *j->argv);
	if (!j->argv) {
		free(j);
		return luaL_error(L, "out of memory");
	}
	u->job = j; /* from here __gc frees it */
	atomic_init(&j->refs, 1);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		const char *s = lua_tostring(L, -1);
		if (!s)
			return luaL_argerror(L, 1, "argv entries must be strings");
		j->argv[j->argc] = strdup(s);
		if (!j->argv[j->argc])
			return luaL_error(L, "out of memory");
		j->argc++;
		lua_pop(L, 1);
	}
	int fds[2];
	if (ncp_pipe(fds))
		return ncp_error(L, "internal", "jobs: pipe: %s", strerror(errno));
	j->rfd = fds[0];
	j->hj.event_fd = fds[1];
	j->hj.index = index;
	j->hj.cancel = &j->cancel;
	atomic_init(&j->hj.interrupted, 0);
	atomic_fetch_add(&j->refs, 1); /* the thread's reference */
	j->joined = 0;
	int err = pthread_create(&j->thread, NULL, job_thread, j);
	if (err) {
		atomic_fetch_sub(&j->refs, 1);
		close(fds[1]);
		j->joined = 1;
		return ncp_error(L, "internal", "jobs: cannot start a thread: %s", strerror(err));
	}
	return 1;
}

static int l_read(lua_State *L)
{
	struct job *j = check_job(L, 1);
	if (j->eof) {
		lua_pushnil(L);
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	size_t total = 0;
	for (;;) {
		char *p = luaL_prepbuffsize(&b, 16384);
		long got = ncp_pipe_read(j->rfd, p, 16384);
		if (got > 0) {
			luaL_addsize(&b, (size_t)got);
			total += (size_t)got;
			if (total >= 1 << 20)
				break;
			continue;
		}
		if (got == 0) {
			j->eof = 1;
			break;
		}
		if (errno == EAGAIN)
			break;
		return ncp_error(L, "internal", "jobs: read: %s", strerror(errno));
	}
	luaL_pushresult(&b);
	if (total == 0 && j->eof)
		lua_pushnil(L);
	return 1;
}

static int l_result(lua_State *L)
{
	struct job *j = check_job(L, 1);
	if (!atomic_load(&j->finished))
		return 0;
	lua_pushinteger(L, j->code);
	return 1;
}

static int l_cancel(lua_State *L)
{
	atomic_store(&check_job(L, 1)->cancel, 1);
	return 0;
}

/* Wait (up to timeout s) for the thread to end, draining its pipe so a
 * full pipe cannot block it; then join.  Returns 1 when joined. */
static int job_join(struct job *j, double timeout)
{
	if (j->joined)
		return 1;
	double deadline = ncp_now() + timeout;
	char sink[4096];
	while (!atomic_load(&j->finished)) {
		if (ncp_now() >= deadline)
			return 0;
		while (!j->eof && j->rfd >= 0) {
			long got = ncp_pipe_read(j->rfd, sink, sizeof sink);
			if (got == 0)
				j->eof = 1;
			if (got <= 0)
				break;
		}
		ncp_nap(0.01);
	}
	pthread_join(j->thread, NULL);
	j->joined = 1;
	return 1;
}

static int l_join(lua_State *L)
{
	struct job *j = check_job(L, 1);
	double t = luaL_optnumber(L, 2, 10.0);
	lua_pushboolean(L, job_join(j, t));
	return 1;
}

static int job_gc(lua_State *L)
{
	struct job_ud *u = luaL_checkudata(L, 1, JOB_MT);
	struct job *j = u->job;
	if (!j)
		return 0;
	u->job = NULL;
	if (!j->joined) {
		atomic_store(&j->cancel, 1);
		if (!job_join(j, 5.0) && !j->detached) {
			pthread_detach(j->thread);
			j->detached = 1;
		}
	}
	job_release(j);
	return 0;
}

static int l_wait(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	double timeout = luaL_optnumber(L, 2, 0.1);
	int fds[256];
	int n = 0, ready = 0;
	lua_Integer len = luaL_len(L, 1);
	for (lua_Integer i = 1; i <= len && n < 256; i++) {
		lua_geti(L, 1, i);
		struct job_ud *u = luaL_testudata(L, -1, JOB_MT);
		lua_pop(L, 1);
		if (!u || !u->job)
			continue;
		if (u->job->eof) {
			ready++;
			continue;
		}
		fds[n++] = u->job->rfd;
	}
	double deadline = ncp_now() + timeout;
	int interrupted = 0;
	while (!ready) {
		if (ncp_interrupt_pending()) {
			interrupted = 1;
			break;
		}
		double left = deadline - ncp_now();
		if (left <= 0)
			break;
		int got = ncp_pipe_wait(fds, n, left > 0.1 ? 0.1 : left);
		if (got < 0)
			return ncp_error(L, "internal", "jobs: poll: %s", strerror(errno));
		if (got > 0)
			ready = got;
	}
	lua_pushinteger(L, ready);
	lua_pushboolean(L, interrupted);
	return 2;
}

static int l_self(lua_State *L)
{
	struct host_job *hj = host_job_of(L);
	if (!hj)
		return 0;
	lua_createtable(L, 0, 1);
	lua_pushinteger(L, hj->index);
	lua_setfield(L, -2, "index");
	return 1;
}

static int events_close(lua_State *L)
{
	luaL_Stream *s = luaL_checkudata(L, 1, LUA_FILEHANDLE);
	int r = fclose(s->f);
	return luaL_fileresult(L, r == 0, NULL);
}

static int l_events(lua_State *L)
{
	struct host_job *hj = host_job_of(L);
	if (!hj)
		return luaL_error(L, "jobs.events: not inside a job");
	luaL_Stream *s = lua_newuserdatauv(L, sizeof *s, 0);
	s->closef = NULL;
	luaL_setmetatable(L, LUA_FILEHANDLE);
	int fd = ncp_dup(hj->event_fd);
	if (fd < 0)
		return ncp_error(L, "internal", "jobs.events: dup: %s", strerror(errno));
	s->f = fdopen(fd, "w");
	if (!s->f) {
		close(fd);
		return ncp_error(L, "internal", "jobs.events: fdopen: %s", strerror(errno));
	}
	s->closef = events_close;
	return 1;
}

/* --- file locks ----------------------------------------------------------- */

static int l_lock(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	double timeout = luaL_optnumber(L, 2, 30.0);
	struct lock_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
	u->fd = -1;
	luaL_setmetatable(L, LOCK_MT);
	int fd = ncp_open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return ncp_error(L, "input", "cannot open lock file %s: %s", path, strerror(errno));
	u->fd = fd;
	double deadline = ncp_now() + timeout;
	for (;;) {
		int r = ncp_trylock(fd);
		if (r == 0)
			break;
		if (r < 0)
			return ncp_error(L, "input", "cannot lock %s: %s", path, strerror(errno));
		if (ncp_interrupt_pending())
			return ncp_error(L, "interrupted", "interrupted");
		if (ncp_now() >= deadline)
			return ncp_error(L, "timeout", "%s is locked by another process for more than %.1f s",
					 path, timeout);
		ncp_nap(0.005);
	}
	return 1;
}

static int lock_release(lua_State *L)
{
	struct lock_ud *u = luaL_checkudata(L, 1, LOCK_MT);
	if (u->fd >= 0) {
		ncp_unlock(u->fd);
		close(u->fd);
		u->fd = -1;
	}
	return 0;
}

int luaopen_ncpflash_core_jobs(lua_State *L)
{
	static const luaL_Reg job_methods[] = {
		{"read", l_read},     {"result", l_result}, {"cancel", l_cancel},
		{"join", l_join},     {NULL, NULL},
	};
	static const luaL_Reg lock_methods[] = {
		{"unlock", lock_release},
		{NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
		{"start", l_start}, {"wait", l_wait},     {"self", l_self},
		{"events", l_events}, {"lock", l_lock}, {NULL, NULL},
	};
	ncp_register_class(L, JOB_MT, job_methods, job_gc, NULL);
	ncp_register_class(L, LOCK_MT, lock_methods, lock_release, NULL);
	luaL_newlib(L, funcs);
	return 1;
}
