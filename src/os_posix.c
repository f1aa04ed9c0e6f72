/*
 * os_posix.c - os.h for POSIX systems. Linux is what is built and tested;
 * the Linux-only calls sit behind #if so that a macOS build has a portable
 * path (untested: no macOS here): pipe2 (pipe + fcntl), sigtimedwait
 * (sigwait on a signal known to be pending), ru_maxrss (bytes on macOS).
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

double ncp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ncp_nap(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

static void interrupt_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

void ncp_os_init(struct ncp_os_state *st)
{
	sigset_t set;
	st->console_cp = 0;
	interrupt_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* A write to a closed pipe (`ncpflash ... | head`) fails with EPIPE
	 * instead of killing the process between two eFuse writes; children
	 * get the default back (ncp_spawn: POSIX_SPAWN_SETSIGDEF). */
	signal(SIGPIPE, SIG_IGN);
}

void ncp_os_done(const struct ncp_os_state *st)
{
	(void)st;
}

int ncp_interrupt_pending(void)
{
	sigset_t set;
	if (sigpending(&set))
		return 0;
	return sigismember(&set, SIGINT) == 1 || sigismember(&set, SIGTERM) == 1;
}

void ncp_interrupt_consume(void)
{
	sigset_t set;
	interrupt_set(&set);
#if defined(__linux__)
	struct timespec zero = {0, 0};
	while (ncp_interrupt_pending() && sigtimedwait(&set, NULL, &zero) > 0)
		;
#else
	/* no sigtimedwait (macOS): sigwait returns at once for a signal that
	 * is pending, and only the main thread consumes */
	int sig;
	while (ncp_interrupt_pending() && sigwait(&set, &sig) == 0)
		;
#endif
}

/* ---- processes ---- */

static int redirect(posix_spawn_file_actions_t *fa, const char *path, int fd,
		    int flags)
{
	if (!path)
		return 0;
	return posix_spawn_file_actions_addopen(
		fa, fd, strcmp(path, "null") == 0 ? "/dev/null" : path, flags, 0666);
}

int ncp_spawn(const struct ncp_child *c, long long *id, char *err, size_t errlen)
{
	const char *sh[] = {"/bin/sh", "-c", c->shell, NULL};
	char *const *argv = (char *const *)(c->shell ? sh : c->argv);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int app = c->append ? O_APPEND : O_TRUNC;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	redirect(&fa, c->in, 0, O_RDONLY);
	redirect(&fa, c->out, 1, O_WRONLY | O_CREAT | app);
	if (c->err && c->out && strcmp(c->err, c->out) == 0)
		posix_spawn_file_actions_adddup2(&fa, 1, 2); /* one file, one offset */
	else
		redirect(&fa, c->err, 2, O_WRONLY | O_CREAT | app);
	int r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r) {
		snprintf(err, errlen, "%s: %s", argv[0], strerror(r));
		return r;
	}
	*id = pid;
	return 0;
}

int ncp_wait(long long id, int *status, struct ncp_usage *u)
{
	int st;
	struct rusage ru;
	pid_t r = wait4((pid_t)id, &st, WNOHANG, &ru);

	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	u->utime = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	u->stime = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
#if defined(__APPLE__)
	u->maxrss_kib = (long long)ru.ru_maxrss / 1024; /* bytes there */
#else
	u->maxrss_kib = (long long)ru.ru_maxrss; /* KiB on Linux */
#endif
	return 1;
}

int ncp_kill(long long id, int how)
{
	static const int sigs[] = {SIGTERM, SIGKILL, SIGINT};
	return kill((pid_t)id, sigs[how < 0 || how > 2 ? 0 : how]);
}

int ncp_getpid(void)
{
	return (int)getpid();
}

/* ---- pipes ---- */

int ncp_pipe(int fds[2])
{
#if defined(__linux__)
	if (pipe2(fds, O_CLOEXEC))
		return -1;
#else
	if (pipe(fds))
		return -1;
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	return 0;
}

long ncp_pipe_read(int fd, void *buf, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EWOULDBLOCK)
			errno = EAGAIN;
		return (long)r;
	}
}

int ncp_pipe_wait(const int *fds, int n, double timeout)
{
	struct pollfd p[256];

	if (n > 256)
		n = 256;
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	int ms = timeout <= 0 ? 0 : (int)(timeout * 1000) + 1;
	int r = poll(p, (nfds_t)n, ms);
	return r < 0 && errno == EINTR ? 0 : r;
}

int ncp_dup(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* ---- files ---- */

int ncp_open(const char *path, int flags, int mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

int ncp_trylock(int fd)
{
	/* flock(2) locks belong to the open file description, so two
	 * descriptors of this process conflict exactly as two processes do */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	return errno == EWOULDBLOCK || errno == EINTR ? 1 : -1;
}

void ncp_unlock(int fd)
{
	flock(fd, LOCK_UN);
}

int ncp_replace(const char *from, const char *to)
{
	return rename(from, to);
}

int ncp_mkdir(const char *path)
{
	return mkdir(path, 0777);
}

char *ncp_realpath(const char *path)
{
	return realpath(path, NULL);
}

int ncp_is_sep(char c)
{
	return c == '/';
}

int ncp_isatty(int fd)
{
	return isatty(fd);
}

int ncp_term_cols(void)
{
	struct winsize ws;
	if (ioctl(2, TIOCGWINSZ, &ws) == 0 || ioctl(1, TIOCGWINSZ, &ws) == 0)
		return ws.ws_col;
	return 0;
}
