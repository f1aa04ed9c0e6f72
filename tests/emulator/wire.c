/*
 * wire.c - the UART between the host's adapter and the chip.
 *
 * Output: the device queues chunks (bytes + the UART baud they were sent at
 * + a release time).  When a chunk is released it is resampled if the host's
 * receiver runs at another baud (uart_resample), then TX faults apply.
 * Input: host bytes are queued with their wire arrival time (realtime: paced
 * at 10 bits per byte at the host's baud, plus the adapter latency when the
 * host starts talking after the device did) and fed to the device one by one
 * while it is not busy.  Replies carry the same latency the other way.
 *
 * Baud mismatch model (uart_resample): the sender's bytes are laid out as an
 * ideal 8N1 waveform (idle high, start 0, 8 data bits LSB first, stop 1) at
 * tx_baud; the receiver waits for a 1->0 edge, checks the start bit at half a
 * bit time (a high level there is a false start), samples 8 data bits at the
 * centres of its own bit cells and re-arms after the centre of the stop bit.
 * Framing errors still deliver the byte (as a tty does with IGNPAR off).
 * Integer time, so the result is deterministic.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ncpsim.h"

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int level(const uint8_t *in, size_t n, uint64_t bit)
{
	if (bit >= (uint64_t)n * 10)
		return 1;
	size_t k = (size_t)(bit / 10);
	unsigned b = (unsigned)(bit % 10);
	if (b == 0)
		return 0;
	if (b == 9)
		return 1;
	return (in[k] >> (b - 1)) & 1;
}

size_t uart_resample(const uint8_t *in, size_t n, uint32_t tx_baud, uint32_t rx_baud,
		     uint8_t *out, size_t cap)
{
	if (tx_baud == 0 || rx_baud == 0 || n == 0)
		return 0;
	/* time unit: 1 / (2 * tx * rx) s; a tx bit lasts 2*rx units, an rx bit 2*tx. */
	const uint64_t tb = 2ull * rx_baud, rb = 2ull * tx_baud;
	const uint64_t total = (uint64_t)n * 10;
	uint64_t t = 0;
	size_t o = 0;
	while (o < cap) {
		uint64_t j = (t + tb - 1) / tb;
		while (j < total && !(level(in, n, j) == 0 && (j == 0 || level(in, n, j - 1) == 1)))
			j++;
		if (j >= total)
			break;
		uint64_t t0 = j * tb;
		if (level(in, n, (t0 + rb / 2) / tb) != 0) { /* false start */
			t = t0 + rb / 2 + 1;
			continue;
		}
		unsigned byte = 0;
		for (unsigned d = 0; d < 8; d++)
			byte |= (unsigned)level(in, n, (t0 + rb / 2 + (d + 1) * rb) / tb) << d;
		out[o++] = (uint8_t)byte;
		t = t0 + rb / 2 + 9 * rb;
	}
	return o;
}

void wire_send(struct sim *s, const uint8_t *d, size_t n, uint32_t baud, double at, int flags)
{
	if (n == 0)
		return;
	struct outq *q = &s->out;
	if (q->n == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 16;
		struct chunk *c = realloc(q->c, nc * sizeof *c);
		if (!c)
			return;
		q->c = c;
		q->cap = nc;
	}
	uint8_t *copy = malloc(n);
	if (!copy)
		return;
	memcpy(copy, d, n);
	if (baud == 0)
		baud = 115200;
	bool raw = flags & WS_RAW;
	if (s->tm.realtime && !raw) {
		s->rx.turnaround = true;
		if (at < q->line_free)
			at = q->line_free;
		q->line_free = at + (double)n * 10.0 / baud;
	}
	q->c[q->n++] = (struct chunk){ .at = at, .baud = baud, .len = n, .data = copy, .flags = flags };
}

static bool grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t nc = *cap ? *cap : 1024;
	while (nc < need)
		nc *= 2;
	uint8_t *b = realloc(*buf, nc);
	if (!b)
		return false;
	*buf = b;
	*cap = nc;
	return true;
}

size_t wire_take_output(struct sim *s, double now, uint8_t **buf, size_t *cap)
{
	struct outq *q = &s->out;
	size_t len = 0, done = 0;
	bool silent = fault_find(&s->faults, F_SILENT) != NULL;
	for (; done < q->n; done++) {
		struct chunk *c = &q->c[done];
		if (c->at > now)
			break;
		size_t upto = c->len;
		bool raw = c->flags & WS_RAW;
		if (s->tm.realtime && !raw) {
			double k = floor((now - c->at) * c->baud / 10.0);
			if (k < (double)upto)
				upto = (size_t)k;
		}
		if (upto > c->sent && !(silent && !raw)) {
			size_t sn = upto - c->sent;
			const uint8_t *src = c->data + c->sent;
			uint32_t hb = s->host_baud;
			if (!raw && !((c->flags & WS_ROM) && s->host_follows) && hb && hb != c->baud) {
				if (!grow(buf, cap, len + sn * 5 + 8))
					break;
				len += uart_resample(src, sn, c->baud, hb, *buf + len, sn * 5 + 8);
			} else {
				if (!grow(buf, cap, len + sn))
					break;
				memcpy(*buf + len, src, sn);
				len += sn;
			}
		}
		c->sent = upto;
		if (c->sent < c->len)
			break;
		free(c->data);
	}
	if (done) {
		memmove(q->c, q->c + done, (q->n - done) * sizeof *q->c);
		q->n -= done;
	}
	if (len)
		len = fault_line(&s->faults, DIR_TX, s->host_baud ? s->host_baud : s->dev_baud, *buf, len);
	return len;
}

void wire_purge_out(struct sim *s)
{
	for (size_t i = 0; i < s->out.n; i++)
		free(s->out.c[i].data);
	s->out.n = 0;
}

void wire_purge_in(struct sim *s)
{
	s->rx.head = s->rx.n = 0;
}

void wire_host_rx(struct sim *s, const uint8_t *d, size_t n, double now)
{
	if (n == 0)
		return;
	if (s->replay) { /* --replay: the trace answers, the device model hears nothing */
		replay_input(s, d, n, now);
		return;
	}
	if (fault_find(&s->faults, F_ECHO))
		wire_send(s, d, n, s->host_baud, now, WS_RAW);
	uint8_t tmp[4096];
	struct rxq *q = &s->rx;
	while (n) {
		size_t k = n < sizeof tmp ? n : sizeof tmp;
		memcpy(tmp, d, k);
		d += k;
		n -= k;
		size_t m = fault_line(&s->faults, DIR_RX, s->host_baud ? s->host_baud : s->dev_baud, tmp, k);
		if (q->head == q->n)
			q->head = q->n = 0;
		if (q->n + m > q->cap) {
			if (q->head) {
				memmove(q->b, q->b + q->head, q->n - q->head);
				memmove(q->t, q->t + q->head, (q->n - q->head) * sizeof *q->t);
				memmove(q->baud, q->baud + q->head, (q->n - q->head) * sizeof *q->baud);
				q->n -= q->head;
				q->head = 0;
			}
			if (q->n + m > q->cap) {
				size_t nc = q->cap ? q->cap : 4096;
				while (nc < q->n + m)
					nc *= 2;
				uint8_t *b = realloc(q->b, nc);
				if (b)
					q->b = b;
				double *t = realloc(q->t, nc * sizeof *t);
				if (t)
					q->t = t;
				uint32_t *bd = realloc(q->baud, nc * sizeof *bd);
				if (bd)
					q->baud = bd;
				if (!b || !t || !bd)
					return;
				q->cap = nc;
			}
		}
		uint32_t hb = s->host_follows ? 0 : s->host_baud;
		uint32_t pb = s->host_baud ? s->host_baud : (s->dev_baud ? s->dev_baud : 115200);
		double per = s->tm.realtime ? 10.0 / pb : 0;
		for (size_t i = 0; i < m; i++) {
			double t = now;
			if (s->tm.realtime) {
				if (q->clock < now)
					q->clock = now;
				if (q->turnaround) { /* adapter latency per direction change */
					q->clock += s->tm.latency;
					q->turnaround = false;
				}
				q->clock += per;
				t = q->clock;
			}
			q->b[q->n] = tmp[i];
			q->t[q->n] = t;
			q->baud[q->n] = hb;
			q->n++;
		}
	}
	wire_pump(s, now);
}

void wire_pump(struct sim *s, double now)
{
	struct rxq *q = &s->rx;
	while (q->head < q->n && q->t[q->head] <= now && now >= s->busy_until && !s->quit) {
		uint8_t b = q->b[q->head];
		uint32_t hb = q->baud[q->head];
		q->head++;
		dev_input(s, b, hb, now);
	}
	if (q->head == q->n)
		q->head = q->n = 0;
}

/* The next byte is due at `at`, the last one queued at `last`: the loop wakes at most once a
 * millisecond while bytes trickle in or out (what a byte in the middle of a frame or reply does
 * is seen by nobody before the last one), and exactly when the last one is due (a frame is
 * complete, a reply has arrived), so a stop-and-wait exchange is not late by the timer. */
static double paced(double at, double last)
{
	return last <= at + 0.001 ? last : at + 0.001;
}

double wire_next_event(const struct sim *s)
{
	double t = INFINITY;
	if (s->out.n) {
		const struct chunk *c = &s->out.c[0];
		double at = c->at;
		if (s->tm.realtime && !(c->flags & WS_RAW)) {
			double bit = 10.0 / c->baud;
			at = paced(c->at + (double)(c->sent + 1) * bit, c->at + (double)c->len * bit);
		}
		t = at;
	}
	if (s->rx.head < s->rx.n) {
		double at = s->rx.t[s->rx.head], last = s->rx.t[s->rx.n - 1];
		if (at < s->busy_until)
			at = s->busy_until;
		if (last < at)
			last = at;
		at = paced(at, last);
		if (at < t)
			t = at;
	}
	return t;
}

void wire_free(struct sim *s)
{
	wire_purge_out(s);
	free(s->out.c);
	free(s->rx.b);
	free(s->rx.t);
	free(s->rx.baud);
}
