/*
 * test_isp.c - unit tests of src/isp.c: tables, frames, reply parser.
 * Prints "ok NAME" / "not ok NAME: why"; exits 1 when anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isp.h"
#include "check.h"

/* A frame from the documents: rebuild it from cmd + payload with the
 * checksum on (or off) and compare byte for byte. */
static void frame_case(const char *name, const char *hex, int checksum)
{
	uint8_t want[64] = {0}, got[64] = {0};
	size_t n = unhex(hex, want, sizeof(want));
	if (n < 4) {
		CHECK(name, 0, "bad test vector %s", hex);
		return;
	}
	size_t m = isp_frame(got, sizeof(got), want[0], want + 4, n - 4, checksum);
	CHECK(name, m == n && memcmp(got, want, n) == 0,
	      "built %zu bytes, checksum 0x%02X, expected %s", m, got[1], hex);
}

static void test_frames(void)
{
	/* protocol.md Appendix A / §5.1 step 6: clk_set, checksum 0x2B */
	frame_case("frame clk_set 2 Mbaud (App. A)", "22 2B 08 00 01 00 00 00 80 84 1E 00", 1);
	/* §4.4: flash_set on the ST module */
	frame_case("frame flash_set_para 4 B (§4.4)", "3B 4F 04 00 08 41 01 01", 1);
	/* §5.1 "Example frames" */
	frame_case("frame flash_erase ST FW (§5.1)", "30 57 08 00 00 00 01 00 7F B8 17 00", 1);
	frame_case("frame xip_read_sha ST FW (§5.1)", "3E 57 08 00 00 00 01 00 80 B8 16 00", 1);
	frame_case("frame efuse_read 512 B (§5.1)", "41 0A 08 00 00 00 00 00 00 02 00 00", 1);
	frame_case("frame chip_erase (§5.1)", "3C 00 00 00", 1);
	/* checksum 0 = not checked */
	frame_case("frame set_timeout unchecked (§5.1)", "23 00 04 00 10 27 00 00", 0);
	frame_case("frame get_boot_info", "10 00 00 00", 0);
	frame_case("frame change_rate by hand (§3.1)",
		   "20 00 08 00 20 A1 07 00 80 84 1E 00", 0);

	uint8_t pl[300];
	for (size_t i = 0; i < sizeof(pl); i++)
		pl[i] = (uint8_t)(i * 7 + 3);
	uint32_t sum = (300 & 0xFF) + (300 >> 8);
	for (size_t i = 0; i < sizeof(pl); i++)
		sum += pl[i];
	CHECK("checksum includes both length bytes", isp_checksum(pl, 300) == (sum & 0xFF),
	      "got 0x%02X want 0x%02X", isp_checksum(pl, 300), sum & 0xFF);

	uint8_t out[8];
	CHECK("frame refuses a too small buffer", isp_frame(out, sizeof(out), 0x31, pl, 5, 1) == 0,
	      "returned non-zero");
	CHECK("frame refuses cap < 4", isp_frame(out, 3, 0x10, NULL, 0, 1) == 0, "returned non-zero");
	CHECK("frame refuses payload > 65535",
	      isp_frame(out, (size_t)-1, 0x31, pl, 0x10000, 1) == 0, "returned non-zero");

	/* A full 65535-byte payload: length field FF FF */
	uint8_t *big = calloc(1, 0x10003);
	uint8_t *fr = malloc(0x10003 + 4);
	if (big && fr) {
		memset(big, 1, 0xFFFF);
		size_t m = isp_frame(fr, 0x10003 + 4, 0x31, big, 0xFFFF, 1);
		/* 0xFF + 0xFF + 0xFFFF * 1 = 0x100FD -> 0xFD */
		CHECK("frame with 65535-byte payload", m == 0x10003 && fr[2] == 0xFF && fr[3] == 0xFF &&
		      fr[1] == 0xFD, "m=%zu len=%02X%02X cks=%02X", m, fr[3], fr[2], fr[1]);
	}
	free(big);
	free(fr);
}

static void test_tables(void)
{
	CHECK("op_name 0x30 flash_erase", isp_op_name(0x30) && !strcmp(isp_op_name(0x30), "flash_erase"),
	      "%s", isp_op_name(0x30) ? isp_op_name(0x30) : "NULL");
	CHECK("op_name 0x3F flash_decompress_write",
	      isp_op_name(0x3F) && !strcmp(isp_op_name(0x3F), "flash_decompress_write"), "wrong");
	CHECK("op_name 0x10 get_boot_info",
	      isp_op_name(0x10) && !strcmp(isp_op_name(0x10), "get_boot_info"), "wrong");
	CHECK("op_name 0x23 is set_timeout (opt_finish is an alias)",
	      isp_op_name(0x23) && !strcmp(isp_op_name(0x23), "set_timeout"), "wrong");
	CHECK("op_name unknown is NULL", isp_op_name(0x99) == NULL && isp_op_name(0x00) == NULL,
	      "not NULL");
	CHECK("reply_data flags", isp_op_find(0x10)->reply_data && isp_op_find(0x3E)->reply_data &&
	      !isp_op_find(0x30)->reply_data && !isp_op_find(0x3F)->reply_data, "wrong flags");

	int dup = 0;
	for (size_t i = 0; i < isp_op_count(); i++)
		for (size_t j = i + 1; j < isp_op_count(); j++) {
			const struct isp_op_info *a = isp_op_at(i), *b = isp_op_at(j);
			if (!strcmp(a->name, b->name) || (a->code == b->code && !a->alias && !b->alias))
				dup++;
		}
	CHECK("opcode names and codes unique", dup == 0, "%d duplicates", dup);
	CHECK("opcode count covers §4 (49 names)", isp_op_count() == 49, "%zu", isp_op_count());
	CHECK("op_at out of range is NULL", isp_op_at(isp_op_count()) == NULL, "not NULL");

	CHECK("fl_name 0x0003", isp_fl_name(3) && !strcmp(isp_fl_name(3), "FLASH_ERASE_ERROR"), "wrong");
	CHECK("fl_name 0x0103", isp_fl_name(0x103) && !strcmp(isp_fl_name(0x103), "CMD_CRC_ERROR"),
	      "wrong");
	CHECK("fl_name 0x000C", isp_fl_name(0xC) && !strcmp(isp_fl_name(0xC), "FLASH_WRITE_XZ_ERROR"),
	      "wrong");
	CHECK("fl_name 0x0408", isp_fl_name(0x408) && !strcmp(isp_fl_name(0x408), "EFUSE_WRITE_MAC_ERROR"),
	      "wrong");
	CHECK("fl_name 0xFFFF", isp_fl_name(0xFFFF) && !strcmp(isp_fl_name(0xFFFF), "FAIL"), "wrong");
	CHECK("fl_name unknown is NULL", isp_fl_name(0x1234) == NULL && isp_fl_name(0x0507) == NULL,
	      "not NULL");
	CHECK("fl_hint 0x0A0A", isp_fl_hint(0x0A0A) != NULL, "NULL");
	int sorted = 1;
	for (size_t i = 1; i < isp_fl_count(); i++)
		if (isp_fl_at(i - 1)->code >= isp_fl_at(i)->code)
			sorted = 0;
	CHECK("FL table sorted and unique", sorted, "not sorted");
}

/* Parse buf[0..n-1] in one go. */
static enum isp_result parse1(const char *bytes, size_t n, int want, struct isp_parser *p)
{
	isp_parse_init(p, want);
	return isp_parse_feed(p, (const uint8_t *)bytes, n);
}

/* Parse feeding one more byte each call; returns the final result and
 * checks that every intermediate call said NEED_MORE with a sane need. */
static enum isp_result parse_split(const char *bytes, size_t n, int want, struct isp_parser *p,
				   int *bad_need)
{
	isp_parse_init(p, want);
	*bad_need = 0;
	enum isp_result r = ISP_R_NEED_MORE;
	for (size_t k = 0; k <= n; k++) {
		r = isp_parse_feed(p, (const uint8_t *)bytes, k);
		if (r != ISP_R_NEED_MORE)
			return r;
		if (p->need == 0)
			(*bad_need)++;
	}
	return r;
}

#define S(lit) lit, sizeof(lit) - 1

static void test_parser(void)
{
	struct isp_parser p;
	int bad;

	CHECK("parse OK", parse1(S("OK"), 0, &p) == ISP_R_OK && p.consumed == 2, "r/consumed wrong");
	CHECK("parse OK leaves trailing bytes", parse1(S("OKxyz"), 0, &p) == ISP_R_OK && p.consumed == 2,
	      "consumed %zu", p.consumed);
	CHECK("parse empty needs 2", parse1("", 0, 0, &p) == ISP_R_NEED_MORE && p.need == 2,
	      "need %zu", p.need);
	CHECK("parse 'O' needs 1", parse1(S("O"), 0, &p) == ISP_R_NEED_MORE && p.need == 1,
	      "need %zu", p.need);

	enum isp_result r = parse1(S("OK\x04\x00\xc8\x60\x16\x00"), 1, &p);
	CHECK("parse OK+len+data (JEDEC)", r == ISP_R_DATA && p.data_len == 4 && p.data_off == 4 &&
	      p.consumed == 8, "r=%s len=%zu off=%zu", isp_result_name(r), p.data_len, p.data_off);
	r = parse_split(S("OK\x04\x00\xc8\x60\x16\x00"), 1, &p, &bad);
	CHECK("parse OK+len+data split byte by byte", r == ISP_R_DATA && p.data_len == 4 && !bad,
	      "r=%s", isp_result_name(r));
	r = parse1(S("OK\x00\x00"), 1, &p);
	CHECK("parse OK+len 0", r == ISP_R_DATA && p.data_len == 0 && p.consumed == 4, "r=%s",
	      isp_result_name(r));
	r = parse1(S("OK\x04\x00\xc8"), 1, &p);
	CHECK("parse partial data needs the rest", r == ISP_R_NEED_MORE && p.need == 3, "need %zu",
	      p.need);
	r = parse1(S("OKOKOK\x02\x00hi"), 1, &p);
	CHECK("parse duplicated OK pairs before the length", r == ISP_R_DATA && p.data_len == 2 &&
	      p.data_off == 8 && p.ok_pairs == 3, "r=%s len=%zu off=%zu", isp_result_name(r),
	      p.data_len, p.data_off);
	r = parse_split(S("OKOKOK\x02\x00hi"), 1, &p, &bad);
	CHECK("parse duplicated OK pairs, split", r == ISP_R_DATA && p.data_len == 2 && !bad, "r=%s",
	      isp_result_name(r));

	r = parse1(S("FL\x03\x00"), 0, &p);
	CHECK("parse FL 0x0003", r == ISP_R_FL && p.fl == 3 && p.consumed == 4, "r=%s fl=%u",
	      isp_result_name(r), p.fl);
	r = parse1(S("FL\x03\x01"), 1, &p);
	CHECK("parse FL 0x0103 (LE) on a data command", r == ISP_R_FL && p.fl == 0x0103, "fl=%04X",
	      p.fl);
	r = parse_split(S("FL\x0c\x00"), 0, &p, &bad);
	CHECK("parse FL split", r == ISP_R_FL && p.fl == 0xC && !bad, "r=%s", isp_result_name(r));
	r = parse1(S("OKFL\x0c\x00"), 1, &p);
	CHECK("parse FL after OK on a data command", r == ISP_R_FL && p.fl == 0xC, "r=%s",
	      isp_result_name(r));
	r = parse1(S("FL\x03"), 0, &p);
	CHECK("parse FL partial code needs 1", r == ISP_R_NEED_MORE && p.need == 1, "need %zu", p.need);

	CHECK("parse PD", parse1(S("PD"), 0, &p) == ISP_R_PENDING && p.consumed == 2, "wrong");
	CHECK("parse PD on a data command", parse1(S("PDOK"), 1, &p) == ISP_R_PENDING &&
	      p.consumed == 2, "wrong");

	r = parse1(S("\x55\x55"), 0, &p);
	CHECK("parse garbage is malformed", r == ISP_R_MALFORMED && p.bad_off == 0, "r=%s",
	      isp_result_name(r));
	r = parse1(S("KO"), 0, &p);
	CHECK("parse 'KO' is malformed (stricter than the reference)", r == ISP_R_MALFORMED, "r=%s",
	      isp_result_name(r));
	r = parse1(S("Ok"), 1, &p);
	CHECK("parse lowercase k is malformed", r == ISP_R_MALFORMED, "r=%s", isp_result_name(r));

	/* huge length: 0xFFFF bytes of data announced, 3 present */
	r = parse1(S("OK\xff\xff" "abc"), 1, &p);
	CHECK("parse huge length waits for data", r == ISP_R_NEED_MORE && p.need == 0xFFFF - 3,
	      "r=%s need=%zu", isp_result_name(r), p.need);
	/* 0x4B4F looks like "OK" and is skipped as a duplicated ack (documented) */
	r = parse1(S("OKOK\x01\x00z"), 1, &p);
	CHECK("parse OK OK len 1", r == ISP_R_DATA && p.data_len == 1, "r=%s", isp_result_name(r));

	/* too many OK pairs */
	char many[2 * (ISP_MAX_OK_PAIRS + 2)];
	for (size_t i = 0; i < sizeof(many); i += 2) {
		many[i] = 'O';
		many[i + 1] = 'K';
	}
	r = parse1(many, sizeof(many), 1, &p);
	CHECK("parse endless OK pairs is malformed", r == ISP_R_MALFORMED &&
	      p.bad_off == 2 * ISP_MAX_OK_PAIRS, "r=%s off=%zu", isp_result_name(r), p.bad_off);

	/* final result is sticky */
	isp_parse_init(&p, 0);
	isp_parse_feed(&p, (const uint8_t *)"OK", 2);
	r = isp_parse_feed(&p, (const uint8_t *)"OKFL\x01\x00", 6);
	CHECK("parse result is sticky", r == ISP_R_OK && p.consumed == 2, "r=%s", isp_result_name(r));

	/* buffer shrinking between calls is refused, not read out of bounds */
	isp_parse_init(&p, 1);
	isp_parse_feed(&p, (const uint8_t *)"OK\x05\x00ab", 6);
	r = isp_parse_feed(&p, (const uint8_t *)"OK", 2);
	CHECK("parse shrinking buffer is malformed", r == ISP_R_MALFORMED, "r=%s", isp_result_name(r));

	CHECK("result names", !strcmp(isp_result_name(ISP_R_DATA), "data") &&
	      !strcmp(isp_result_name(ISP_R_PENDING), "pd"), "wrong");
}

/* Random inputs, one shot and split at random points: the parser must
 * terminate, keep every offset inside the input, and agree with itself. */
static void test_fuzz(void)
{
	uint32_t seed = 12345;
	int bad = 0;
	uint8_t buf[600];
	static const char alpha[] = "OKFLPD\x00\x01\x02\xff";
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 0;
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 16) % sizeof(buf);
		for (n = 0; n < len; n++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly protocol letters so deep states are reached */
			buf[n] = (seed >> 24) < 200 ? (uint8_t)alpha[(seed >> 16) % (sizeof(alpha) - 1)]
						    : (uint8_t)(seed >> 16);
		}
		int want = (int)(seed >> 31);
		struct isp_parser a, b;
		isp_parse_init(&a, want);
		enum isp_result ra = isp_parse_feed(&a, buf, n);
		isp_parse_init(&b, want);
		enum isp_result rb = ISP_R_NEED_MORE;
		size_t k = 0;
		while (k < n && rb == ISP_R_NEED_MORE) {
			seed = seed * 1103515245u + 12345u;
			k += 1 + (seed >> 16) % 7;
			if (k > n)
				k = n;
			rb = isp_parse_feed(&b, buf, k);
		}
		if (ra != rb)
			bad++;
		if (ra != ISP_R_NEED_MORE && a.consumed > n)
			bad++;
		if (ra == ISP_R_DATA && a.data_off + a.data_len > n)
			bad++;
		if (ra == ISP_R_NEED_MORE && (a.need == 0 || a.need > 0xFFFF))
			bad++;
		if (ra == ISP_R_DATA && (a.data_off != b.data_off || a.data_len != b.data_len))
			bad++;
	}
	CHECK("fuzz: 20000 random replies, whole vs split agree and stay in bounds", bad == 0,
	      "%d inconsistencies", bad);
}

int main(void)
{
	test_frames();
	test_tables();
	test_parser();
	test_fuzz();
	return failures ? 1 : 0;
}
