/*
 * os.h - what the C core needs from the operating system, Lua-free:
 * the monotonic clock and the interrupt (Ctrl-C / SIGTERM) flag.
 *
 * One implementation per platform: os_posix.c (Linux, macOS).
 *
 * Interrupts: the process never runs a signal handler. ncp_interrupt_setup()
 * (called once by host_run before any thread starts) blocks SIGINT/SIGTERM;
 * waits poll ncp_interrupt_pending() in slices of <= 100 ms, and whoever
 * turns it into an "interrupted" error calls ncp_interrupt_consume() so
 * that the cleanup that follows is not interrupted again.
 */
#ifndef NCP_OS_H
#define NCP_OS_H

/* Monotonic clock in seconds. */
double ncp_now(void);

/* Block SIGINT/SIGTERM in the calling thread (threads started later
 * inherit it). */
void ncp_interrupt_setup(void);

/* Non-zero when SIGINT/SIGTERM is pending. Does not consume it. */
int ncp_interrupt_pending(void);

/* Take pending SIGINT/SIGTERM off the queue. */
void ncp_interrupt_consume(void);

#endif
