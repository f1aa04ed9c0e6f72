/*
 * isp.h - Bouffalo UART ISP protocol: opcodes, FL codes, frames, replies.
 *
 * Pure C, no Lua, no I/O.  The wire format is protocol.md §3:
 *   host -> chip: cmd(1) | checksum(1) | len(2, LE) | payload(len)
 *   chip -> host: "OK" | "OK" len(2, LE) data | "FL" code(2, LE) | "PD"
 */
#ifndef NCP_ISP_H
#define NCP_ISP_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes (protocol.md §4).  Names in isp_ops[] are the lowercase table
 * names ("flash_erase"); the Lua module exposes them uppercased. */
enum isp_opcode {
	ISP_GET_CHIP_ID = 0x05,
	ISP_GET_BOOT_INFO = 0x10,
	ISP_LOAD_BOOT_HEADER = 0x11,
	ISP_LOAD_PUBLIC_KEY = 0x12,
	ISP_LOAD_PUBLIC_KEY2 = 0x13,
	ISP_LOAD_SIGNATURE = 0x14,
	ISP_LOAD_SIGNATURE2 = 0x15,
	ISP_LOAD_AES_IV = 0x16,
	ISP_LOAD_SEG_HEADER = 0x17,
	ISP_LOAD_SEG_DATA = 0x18,
	ISP_CHECK_IMAGE = 0x19,
	ISP_RUN_IMAGE = 0x1A,
	ISP_LOAD_SHA384_P2 = 0x1B,
	ISP_CHANGE_RATE = 0x20,
	ISP_RESET = 0x21,
	ISP_CLK_SET = 0x22,
	ISP_SET_TIMEOUT = 0x23, /* ROM; the eflash_loader calls it opt_finish */
	ISP_OPT_FINISH = 0x23,
	ISP_SET_PASSWORD = 0x24,
	ISP_FLASH_ERASE = 0x30,
	ISP_FLASH_WRITE = 0x31,
	ISP_FLASH_READ = 0x32,
	ISP_FLASH_BOOT = 0x33,
	ISP_FLASH_XIP_READ = 0x34,
	ISP_FLASH_SWITCH_BANK = 0x35,
	ISP_FLASH_READ_JEDEC_ID = 0x36,
	ISP_FLASH_READ_STATUS_REG = 0x37,
	ISP_FLASH_WRITE_STATUS_REG = 0x38,
	ISP_FLASH_WRITE_CHECK = 0x3A,
	ISP_FLASH_SET_PARA = 0x3B,
	ISP_FLASH_CHIP_ERASE = 0x3C,
	ISP_FLASH_READ_SHA = 0x3D,
	ISP_FLASH_XIP_READ_SHA = 0x3E,
	ISP_FLASH_DECOMPRESS_WRITE = 0x3F,
	ISP_EFUSE_WRITE = 0x40,
	ISP_EFUSE_READ = 0x41,
	ISP_EFUSE_READ_MAC = 0x42,
	ISP_EFUSE_WRITE_MAC = 0x43,
	ISP_MEMORY_WRITE = 0x50,
	ISP_MEMORY_READ = 0x51,
	ISP_XIP_READ_START = 0x60,
	ISP_XIP_READ_FINISH = 0x61,
	ISP_LOG_READ = 0x71,
	ISP_EFUSE_SECURITY_WRITE = 0x80,
	ISP_EFUSE_SECURITY_READ = 0x81,
	ISP_ECDH_GET_PK = 0x90,
	ISP_ECDH_CHALLENGE = 0x91,
	ISP_ISP_MODE = 0xA0,
	ISP_IAP_MODE = 0xA1,
};

struct isp_op_info {
	uint8_t code;
	uint8_t reply_data; /* 1: the reply is OK + len + data (§3.2) */
	uint8_t alias;      /* 1: second name for a code (not used by isp_op_name) */
	const char *name;   /* lowercase, as in protocol.md §4 */
};

/* The opcode table; isp_op_count() entries. */
const struct isp_op_info *isp_op_at(size_t i);
size_t isp_op_count(void);

/* Primary lowercase name of an opcode, or NULL when unknown. */
const char *isp_op_name(unsigned code);

/* Look up an opcode entry by code (primary entry), NULL when unknown. */
const struct isp_op_info *isp_op_find(unsigned code);

/* FL code -> name (protocol.md §7.1, e.g. 0x0003 -> "FLASH_ERASE_ERROR"),
 * or NULL when unknown. */
const char *isp_fl_name(unsigned code);

/* A host-side hint for some codes (0x0A0A -> "chip is protected or
 * closed"), or NULL. */
const char *isp_fl_hint(unsigned code);

struct isp_fl_info {
	uint16_t code;
	const char *name;
};
const struct isp_fl_info *isp_fl_at(size_t i);
size_t isp_fl_count(void);

/* Maximum payload of one frame: the length field is 16 bits. */
#define ISP_MAX_PAYLOAD 0xFFFFu
#define ISP_HEADER_LEN 4u

/* Checksum of a frame with this payload: low byte of
 * len_lo + len_hi + sum(payload).  len must be <= ISP_MAX_PAYLOAD. */
uint8_t isp_checksum(const uint8_t *payload, size_t len);

/* Build a frame into out (cap bytes).  checksum != 0: compute it; 0: send
 * 0x00 ("not checked").  Returns the frame length (len + 4), or 0 when
 * len > ISP_MAX_PAYLOAD or cap is too small (nothing written then). */
size_t isp_frame(uint8_t *out, size_t cap, uint8_t cmd, const uint8_t *payload,
		 size_t len, int checksum);

/* ---- Reply parser -------------------------------------------------------
 *
 * Incremental and buffer-free: the caller keeps every received byte of
 * one reply in an append-only buffer and calls isp_parse_feed() with the
 * whole buffer each time more bytes arrive; the parser resumes where it
 * stopped (p->pos).  It only ever reads buf[0 .. n-1].
 *
 * Choices where the wire behaviour is [U] or where we are tolerant
 * (protocol.md §3.2):
 *  - Replies are read in 2-byte pairs.  A pair must be exactly "OK", "FL"
 *    or "PD".  The reference tool accepts a pair as OK when *either* byte
 *    is 'O' or 'K'; we are stricter: anything else is MALFORMED, so line
 *    noise is reported (with the bytes) instead of being taken as success.
 *  - want_data: any number of further "OK" pairs before the length are
 *    skipped, as the reference tool does (duplicated acks).  This makes a
 *    genuine length of 0x4B4F (19279) unrepresentable; no command returns
 *    that much in one reply (the largest known is 0x4004), so it is safe.
 *    At most ISP_MAX_OK_PAIRS "OK" pairs are accepted in one reply; more is
 *    MALFORMED (a stuck line repeating "OK" is not a reply), which also
 *    bounds a reply to ISP_MAX_REPLY bytes.
 *  - want_data: "FL" or "PD" may also follow the duplicated "OK" pairs.
 *  - !want_data: the reply ends after "OK"; bytes after it are not read
 *    (the parser asks for exactly what it needs, so nothing of a following
 *    reply is ever consumed).
 *  - "PD" is reported as ISP_R_PENDING with consumed = 2; the caller
 *    decides whether to keep waiting (and then restarts the parser on the
 *    bytes after it) or to treat it as an error.
 *  - FL code 0x0000 (SUCCESS) is still reported as ISP_R_FL: the device
 *    chose the error form, and the caller reports it verbatim.
 */
#define ISP_MAX_OK_PAIRS 64u
#define ISP_MAX_REPLY (2u * ISP_MAX_OK_PAIRS + 2u + 0xFFFFu)

enum isp_result {
	ISP_R_NEED_MORE = 0, /* p->need more bytes are required */
	ISP_R_OK,            /* plain OK (consumed = 2 + skipped pairs) */
	ISP_R_DATA,          /* OK + len + data: data at buf[p->data_off], p->data_len */
	ISP_R_FL,            /* FL + code: p->fl */
	ISP_R_PENDING,       /* PD */
	ISP_R_MALFORMED,     /* p->bad_off: offset of the offending pair */
};

struct isp_parser {
	int want_data;
	int state;        /* internal */
	int result;       /* internal: the final result once reached */
	size_t pos;       /* bytes of buf already examined */
	size_t need;      /* NEED_MORE: bytes still missing (>= 1) */
	size_t consumed;  /* final results: bytes that belong to the reply */
	size_t data_off;  /* ISP_R_DATA */
	size_t data_len;  /* ISP_R_DATA */
	unsigned fl;      /* ISP_R_FL */
	unsigned ok_pairs; /* "OK" pairs seen (>1 means duplicated acks) */
	size_t bad_off;   /* ISP_R_MALFORMED */
};

void isp_parse_init(struct isp_parser *p, int want_data);

/* Examine buf[0..n-1] (n must not shrink between calls).  Returns the
 * result; after a final result (anything but NEED_MORE) further calls
 * return the same result. */
enum isp_result isp_parse_feed(struct isp_parser *p, const uint8_t *buf, size_t n);

/* Name of a result for messages/tests: "need", "ok", "data", "fl", "pd",
 * "malformed". */
const char *isp_result_name(enum isp_result r);

#endif
