/*
 * fuzz_isp.c - the ISP reply parser (src/isp.c) and frame builder.
 *
 * The parser is fed the input in one piece and again in pieces whose
 * sizes come from the input itself; both must give the same result, and
 * every reported offset must lie inside what was fed.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"

static int fz_isp_fail(const char *what, size_t n)
{
	fprintf(stderr, "fuzz_isp: %s (input %zu bytes)\n", what, n);
	return -1;
}

static int fz_isp_check(const struct isp_parser *p, enum isp_result r, size_t n)
{
	if (r == ISP_R_NEED_MORE)
		return p->need >= 1 && p->pos <= n ? 0 : fz_isp_fail("need/pos", n);
	if (p->consumed > n || p->consumed > ISP_MAX_REPLY)
		return fz_isp_fail("consumed beyond the input", n);
	if (r == ISP_R_DATA && (p->data_off + p->data_len != p->consumed ||
				p->data_off < 4))
		return fz_isp_fail("data outside the reply", n);
	if (r == ISP_R_MALFORMED && p->bad_off > n)
		return fz_isp_fail("bad_off beyond the input", n);
	if (p->ok_pairs > ISP_MAX_OK_PAIRS)
		return fz_isp_fail("too many OK pairs accepted", n);
	return 0;
}

int ncp_fuzz_isp(const uint8_t *data, size_t n)
{
	/* an exact-size copy, so that any over-read is caught by ASan */
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, n);
	int rc = 0;
	for (int want = 0; want < 2 && rc == 0; want++) {
		struct isp_parser whole, piece;
		isp_parse_init(&whole, want);
		enum isp_result rw = isp_parse_feed(&whole, buf, n);
		rc = fz_isp_check(&whole, rw, n);
		/* again in pieces: 1 + (byte % 7) bytes at a time */
		isp_parse_init(&piece, want);
		enum isp_result rp = ISP_R_NEED_MORE;
		size_t fed = 0;
		while (rc == 0 && fed < n && rp == ISP_R_NEED_MORE) {
			size_t step = 1 + buf[fed] % 7u;
			fed = fed + step > n ? n : fed + step;
			rp = isp_parse_feed(&piece, buf, fed);
			rc = fz_isp_check(&piece, rp, fed);
		}
		if (rc == 0 && n > 0 && rp != rw)
			rc = fz_isp_fail("piecewise result differs", n);
		if (rc == 0 && rw != ISP_R_NEED_MORE &&
		    (piece.consumed != whole.consumed || piece.fl != whole.fl ||
		     piece.data_len != whole.data_len))
			rc = fz_isp_fail("piecewise fields differ", n);
		if (rc == 0 && isp_parse_feed(&whole, buf, n) != rw)
			rc = fz_isp_fail("final result not sticky", n);
		(void)isp_result_name(rw);
	}
	/* frames: build one from the input and check its layout */
	if (rc == 0 && n > 0) {
		size_t len = n - 1;
		uint8_t *frame = malloc(len + ISP_HEADER_LEN);
		if (frame) {
			size_t fl = isp_frame(frame, len + ISP_HEADER_LEN, buf[0],
					      buf + 1, len, 1);
			if (len <= ISP_MAX_PAYLOAD &&
			    (fl != len + ISP_HEADER_LEN || frame[0] != buf[0] ||
			     frame[1] != isp_checksum(buf + 1, len) ||
			     (frame[2] | frame[3] << 8) != (int)len))
				rc = fz_isp_fail("frame layout", n);
			if (isp_frame(frame, len + ISP_HEADER_LEN - 1, buf[0],
				      buf + 1, len, 1) != 0)
				rc = fz_isp_fail("frame ignored its capacity", n);
			free(frame);
		}
		(void)isp_op_name(buf[0]);
		(void)isp_fl_name(n >= 3 ? (unsigned)(buf[1] | buf[2] << 8) : 0);
	}
	free(buf);
	return rc;
}

#ifndef NCP_FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ncp_fuzz_isp(data, size))
		abort();
	return 0;
}
#endif
