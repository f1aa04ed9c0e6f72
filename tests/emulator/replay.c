/*
 * replay.c - `ncpsim --replay TRACE`: answer from a wire trace recorded by
 * ncpflash (--trace / --trace-file, format in docs/api/port.md) instead of
 * the device model, so that a user's bug report becomes a regression test.
 *
 * The trace's TX lines (host -> device) are what the host is expected to
 * send, its RX lines what the device answered.  Consecutive lines of one
 * direction are merged.  RX bytes before the first TX are queued at start;
 * after the host has sent
 * all bytes of a TX run, the RX run that followed it is sent at once (at
 * the host's baud: no resampling).  Notes ("--" lines) are skipped.
 *
 * When the host sends a byte that differs from the trace, the replay has
 * diverged: the log and stderr say where (host byte offset, trace line,
 * expected and received bytes) and nothing more is answered, as a device
 * that stopped talking.  Bytes past the end of the trace are reported the
 * same way.  At exit the log gets one summary line.
 */
#include "ncpsim.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct replay_run {
	bool tx;
	size_t line; /* first trace line of the run */
	uint8_t *d;
	size_t n, cap;
};

struct replay {
	struct replay_run *run;
	size_t nrun, caprun;
	size_t cur;        /* current run */
	size_t off;        /* bytes of the current TX run matched */
	uint64_t host_bytes, sent_bytes;
	bool diverged, done_reported;
};

static int rp_append(struct replay *r, bool tx, size_t line, const uint8_t *d, size_t n)
{
	struct replay_run *last = r->nrun ? &r->run[r->nrun - 1] : NULL;
	if (!last || last->tx != tx) {
		if (r->nrun == r->caprun) {
			size_t nc = r->caprun ? r->caprun * 2 : 64;
			struct replay_run *nr = realloc(r->run, nc * sizeof *nr);
			if (!nr)
				return -1;
			r->run = nr;
			r->caprun = nc;
		}
		last = &r->run[r->nrun++];
		*last = (struct replay_run){ .tx = tx, .line = line };
	}
	if (last->n + n > last->cap) {
		size_t nc = last->cap ? last->cap : 256;
		while (nc < last->n + n)
			nc *= 2;
		uint8_t *nd = realloc(last->d, nc);
		if (!nd)
			return -1;
		last->d = nd;
		last->cap = nc;
	}
	memcpy(last->d + last->n, d, n);
	last->n += n;
	return 0;
}

/* One trace line: "  12.345 [label] TX 4: 55 55 55 55".  Returns 1 for a
 * data line (dir/bytes filled), 0 for anything else, -1 when malformed. */
static int rp_parse_line(char *l, bool *tx, uint8_t *buf, size_t cap, size_t *n)
{
	char *p = l, *e;
	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return 0;
	strtod(p, &e);
	if (e == p)
		return 0; /* not a trace line (e.g. a user's note): skipped */
	p = e;
	while (*p == ' ')
		p++;
	if (*p == '[') {
		p = strchr(p, ']');
		if (!p)
			return -1;
		p++;
		while (*p == ' ')
			p++;
	}
	if (strncmp(p, "TX ", 3) && strncmp(p, "RX ", 3))
		return 0; /* "--" notes */
	*tx = p[0] == 'T';
	unsigned long cnt = strtoul(p + 3, &e, 10);
	if (e == p + 3 || *e != ':' || cnt > cap)
		return -1;
	p = e + 1;
	size_t k = 0;
	while (k < cnt) {
		while (*p == ' ')
			p++;
		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
			return -1;
		char hx[3] = { p[0], p[1], 0 };
		buf[k++] = (uint8_t)strtoul(hx, NULL, 16);
		p += 2;
	}
	*n = k;
	return 1;
}

int replay_load(struct sim *s, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot read the trace", path);
		return -1;
	}
	struct replay *r = calloc(1, sizeof *r);
	uint8_t *buf = malloc(1 << 20);
	char *line = NULL;
	size_t lcap = 0, lineno = 0, data_lines = 0;
	int rc = r && buf ? 0 : -1;
	if (rc)
		snprintf(err, errlen, "out of memory");
	while (rc == 0 && getline(&line, &lcap, f) > 0) {
		bool tx;
		size_t n;
		lineno++;
		int k = rp_parse_line(line, &tx, buf, 1 << 20, &n);
		if (k < 0) {
			snprintf(err, errlen, "%s:%zu: malformed trace line", path, lineno);
			rc = -1;
		} else if (k > 0) {
			data_lines++;
			if (rp_append(r, tx, lineno, buf, n)) {
				snprintf(err, errlen, "out of memory");
				rc = -1;
			}
		}
	}
	free(line);
	free(buf);
	fclose(f);
	if (rc == 0 && data_lines == 0) {
		snprintf(err, errlen, "%s: no TX/RX lines (record one with ncpflash --trace-file)", path);
		rc = -1;
	}
	s->replay = r;
	if (rc)
		replay_free(s);
	return rc;
}

static void rp_note(struct sim *s, const char *fmt, const char *a, size_t line,
		    unsigned exp, unsigned got)
{
	struct replay *r = s->replay;
	char msg[300];
	snprintf(msg, sizeof msg, fmt, a, (unsigned long long)r->host_bytes, line, exp, got);
	fprintf(stderr, "ncpsim: %s\n", msg);
	if (s->log) {
		fprintf(s->log, "%s\n", msg);
		fflush(s->log);
	}
}

/* Sends the RX runs from r->cur on, up to the next TX run. */
static void rp_answer(struct sim *s, double now)
{
	struct replay *r = s->replay;
	while (r->cur < r->nrun && !r->run[r->cur].tx) {
		struct replay_run *x = &r->run[r->cur++];
		wire_send(s, x->d, x->n, s->host_baud, now, WS_RAW);
		r->sent_bytes += x->n;
	}
	r->off = 0;
	if (r->cur == r->nrun && !r->done_reported && s->log) {
		r->done_reported = true;
		fprintf(s->log, "replay: trace complete (%llu host bytes matched, %llu bytes answered)\n",
			(unsigned long long)r->host_bytes, (unsigned long long)r->sent_bytes);
		fflush(s->log);
	}
}

void replay_start(struct sim *s, double now)
{
	if (s->replay)
		rp_answer(s, now);
}

void replay_input(struct sim *s, const uint8_t *d, size_t n, double now)
{
	struct replay *r = s->replay;
	for (size_t i = 0; i < n && !r->diverged; i++) {
		if (r->cur >= r->nrun) {
			r->diverged = true;
			rp_note(s, "replay: %s at host byte %llu (after trace line %zu): expected nothing, got %02x",
				"host sent more than the trace", r->nrun ? r->run[r->nrun - 1].line : 0, 0, d[i]);
			break;
		}
		struct replay_run *x = &r->run[r->cur];
		if (d[i] != x->d[r->off]) {
			r->diverged = true;
			rp_note(s, "replay: %s at host byte %llu (TX run from trace line %zu): expected %02x, got %02x",
				"diverged", x->line, x->d[r->off], d[i]);
			break;
		}
		r->host_bytes++;
		if (++r->off == x->n) {
			r->cur++;
			rp_answer(s, now);
		}
	}
}

void replay_free(struct sim *s)
{
	struct replay *r = s->replay;
	if (!r)
		return;
	if (s->log)
		fprintf(s->log, "replay: end: %llu host bytes matched, %llu bytes answered, %s\n",
			(unsigned long long)r->host_bytes, (unsigned long long)r->sent_bytes,
			r->diverged ? "DIVERGED" : r->cur >= r->nrun ? "complete" : "incomplete");
	for (size_t i = 0; i < r->nrun; i++)
		free(r->run[i].d);
	free(r->run);
	free(r);
	s->replay = NULL;
}
