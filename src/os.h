/*
 * os.h - what the C core needs from the operating system, Lua-free: the
 * clock, the interrupt flag, processes, pipes, file locks and the few file
 * calls that differ. One implementation per platform, siblings behind this
 * header: os_posix.c (Linux; macOS untested) and os_win.c (Windows).
 * Functions return 0 / a result on success and -1 with errno set on
 * failure unless noted.
 *
 * Interrupts: no C code runs in a signal handler. ncp_os_init() (called
 * once by host_run before any thread starts) blocks SIGINT/SIGTERM on
 * POSIX (and ignores SIGPIPE: a closed stdout is an EPIPE, not a death),
 * or installs a console control handler on Windows; waits poll
 * ncp_interrupt_pending() in slices of <= 100 ms, and whoever turns it into
 * an "interrupted" error calls ncp_interrupt_consume() so that the cleanup
 * that follows is not interrupted again.
 */
#ifndef NCP_OS_H
#define NCP_OS_H

#include <stddef.h>
#include <string.h>

/* printf-style checking: mingw's C99 printf (__USE_MINGW_ANSI_STDIO, for
 * %zu) is checked as gnu_printf there. */
#if defined(__MINGW32__)
#define NCP_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#else
#define NCP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#endif

/* memmem(3), a GNU/BSD extension the Windows C runtime lacks. */
static inline const void *ncp_memmem(const void *hay, size_t hlen, const void *needle,
				     size_t nlen)
{
	const unsigned char *h = (const unsigned char *)hay;
	if (nlen == 0)
		return hay;
	for (size_t i = 0; nlen <= hlen && i <= hlen - nlen; i++)
		if (h[i] == *(const unsigned char *)needle &&
		    memcmp(h + i, needle, nlen) == 0)
			return h + i;
	return NULL;
}

/* Process start: interrupts as above; on Windows also binary-mode standard
 * streams and fopen() default, UTF-8 console output and 1 ms timer
 * resolution. ncp_os_done() undoes what outlives the process (the console's
 * output code page). */
struct ncp_os_state {
	unsigned console_cp; /* Windows: the code page to restore, 0 = none */
};
void ncp_os_init(struct ncp_os_state *st);
void ncp_os_done(const struct ncp_os_state *st);

/* Monotonic clock in seconds. */
double ncp_now(void);
/* Sleeps about s seconds, ignoring interrupts (callers slice). */
void ncp_nap(double s);

/* Non-zero when Ctrl-C / SIGINT / SIGTERM is pending. Does not consume it. */
int ncp_interrupt_pending(void);
/* Takes a pending interrupt off the queue. */
void ncp_interrupt_consume(void);

/* ---- processes ----
 * A child: argv[0] is looked up in PATH; stdin/stdout/stderr are paths,
 * "null" (the null device) or NULL (inherit); append: open outputs for
 * appending instead of truncating. The child gets default Ctrl-C handling.
 * shell != NULL instead runs that command line through the platform's
 * shell (/bin/sh -c on POSIX, cmd.exe /d /s /c on Windows) and argv is
 * ignored. The id is a pid on POSIX and a process handle on Windows; it is
 * valid until ncp_wait has reported the exit. */
struct ncp_child {
	const char *const *argv;
	const char *shell;
	const char *in, *out, *err;
	int append;
};
/* 0 and *id, or an errno value (message in err). */
int ncp_spawn(const struct ncp_child *c, long long *id, char *err, size_t errlen);

struct ncp_usage {
	double utime, stime; /* s */
	long long maxrss_kib;
};
/* 1 exited (*status = exit code, 128 + signal when killed; *u filled),
 * 0 still running, -1 error. */
int ncp_wait(long long id, int *status, struct ncp_usage *u);
/* how: 0 TERM, 1 KILL, 2 INT (Windows: all end the process, exit code
 * 128 + 15/9/2 as a signal would). 0 or -1. */
int ncp_kill(long long id, int how);
int ncp_getpid(void);

/* ---- pipes (device jobs: a thread writes JSON lines, the parent reads) ---- */
/* fds[0] read end (reads never block: ncp_pipe_read), fds[1] write end;
 * neither is inherited by children. */
int ncp_pipe(int fds[2]);
/* > 0 bytes, 0 at EOF, -1 with errno EAGAIN when nothing is there yet. */
long ncp_pipe_read(int fd, void *buf, size_t n);
/* Waits until one of the read ends has data or EOF, up to timeout s
 * (<= 100 ms per call is the caller's business). Number ready, or -1. */
int ncp_pipe_wait(const int *fds, int n, double timeout);
/* A duplicate of fd that children do not inherit. */
int ncp_dup(int fd);

/* ---- files ---- */
/* open() with children not inheriting the descriptor. */
int ncp_open(const char *path, int flags, int mode);
/* Exclusive lock on an open file without waiting: 0 locked, 1 held by
 * someone else (this process included), -1 error. */
int ncp_trylock(int fd);
void ncp_unlock(int fd);
/* Replaces `to` by `from` atomically (rename(2); MoveFileEx on Windows). */
int ncp_replace(const char *from, const char *to);
/* Creates one directory (mode 0777 & umask). EEXIST is an error here. */
int ncp_mkdir(const char *path);
/* The absolute, resolved path (symlinks followed) in malloc'd memory. */
char *ncp_realpath(const char *path);
/* Non-zero for a path separator ('/'; also '\\' on Windows). */
int ncp_is_sep(char c);
/* Non-zero when fd (0, 1, 2) is a terminal / console (on Windows the C
 * runtime's isatty() also says yes for NUL and COM ports: not here). */
int ncp_isatty(int fd);
/* Columns of the terminal on stderr/stdout, 0 when unknown. */
int ncp_term_cols(void);

#endif
