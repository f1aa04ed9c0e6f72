/*
 * test_fuzz_regress.c - replays the fuzz regression inputs and seed corpus
 * (tests/fuzz/regress/TARGET/ and tests/fuzz/corpus/TARGET/, relative to
 * the working directory: the repository root under `make test`) through
 * the same target functions `make fuzz` runs, each within 5 s (a hang is a
 * finding too).  One result line per target.
 */
#define NCP_FUZZ_NO_ENTRY 1
#include "../fuzz/fuzz_isp.c"
#include "../fuzz/fuzz_lua.c"
#include "../fuzz/fuzz_rfc2217.c"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int call_target(const char *target, const uint8_t *d, size_t n)
{
	if (strcmp(target, "isp") == 0)
		return ncp_fuzz_isp(d, n);
	if (strcmp(target, "rfc2217") == 0)
		return ncp_fuzz_rfc2217(d, n);
	return ncp_fuzz_lua(target, d, n);
}

/* Replays every file in dir; returns the number of findings, counts files. */
static int replay_dir(const char *target, const char *dir, int *files, char *first,
		      size_t firstlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int bad = 0;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, got;
		uint8_t chunk[4096];
		while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
			if (len + got > cap) {
				cap = (len + got) * 2;
				uint8_t *nb = realloc(buf, cap);
				if (!nb)
					break;
				buf = nb;
			}
			memcpy(buf + len, chunk, got);
			len += got;
		}
		fclose(f);
		(*files)++;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int bad_one = call_target(target, buf ? buf : (const uint8_t *)"", len);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (secs > 5.0) { /* make fuzz treats more than 10 s as a hang */
			fprintf(stderr, "%s: %.1f s\n", path, secs);
			bad_one = -1;
		}
		if (bad_one) {
			if (!bad)
				snprintf(first, firstlen, "%s", path);
			bad++;
		}
		free(buf);
	}
	if (d)
		closedir(d);
	return bad;
}

int main(void)
{
	static const char *const targets[] = {"isp", "rfc2217", "ini", "bfpt",
					      "bfnp", "efuse", "ota"};
	int failed = 0;

	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		char dir[256], first[1024] = "";
		int files = 0, bad = 0;
		snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", targets[i]);
		bad += replay_dir(targets[i], dir, &files, first, sizeof first);
		snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", targets[i]);
		bad += replay_dir(targets[i], dir, &files, first, sizeof first);
		if (bad) {
			printf("not ok replay %s: %d of %d inputs fail, first %s\n",
			       targets[i], bad, files, first);
			failed = 1;
		} else if (files == 0) {
			printf("skip replay %s: no inputs under tests/fuzz (run from the repository root)\n",
			       targets[i]);
		} else {
			printf("ok replay %s (%d inputs)\n", targets[i], files);
		}
	}
	return failed;
}
