/*
 * check.h - the harness of the C unit tests (tests/c/test_*.c): CHECK(name, cond, fmt, ...)
 * prints "ok NAME" or "not ok NAME: why" and counts failures; main returns
 * `failures ? 1 : 0`.  unhex() reads test vectors ("0a ff 12", spaces allowed).
 */
#ifndef NCP_TEST_CHECK_H
#define NCP_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>

static int failures;

#define CHECK(name, cond, ...)                                   \
	do {                                                     \
		if (cond) {                                      \
			printf("ok %s\n", name);                 \
		} else {                                         \
			failures++;                              \
			printf("not ok %s: ", name);             \
			printf(__VA_ARGS__);                     \
			printf("\n");                            \
		}                                                \
	} while (0)

static inline size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (*s && n < cap) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		unsigned v;
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

#endif
