/*
 * os_posix.c - os.h for POSIX systems: CLOCK_MONOTONIC and blocked,
 * polled SIGINT/SIGTERM.
 */
#include "os.h"

#include <signal.h>
#include <time.h>

double ncp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void interrupt_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
}

void ncp_interrupt_setup(void)
{
	sigset_t set;
	interrupt_set(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
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
