/*
 * isp.c - opcode/FL tables, frame builder and reply parser (see isp.h).
 */
#include "isp.h"

#include <string.h>

#include "le.h"

static const struct isp_op_info ops[] = {
	{ISP_GET_CHIP_ID, 1, 0, "get_chip_id"},
	{ISP_GET_BOOT_INFO, 1, 0, "get_boot_info"},
	{ISP_LOAD_BOOT_HEADER, 0, 0, "load_boot_header"},
	{ISP_LOAD_PUBLIC_KEY, 0, 0, "load_public_key"},
	{ISP_LOAD_PUBLIC_KEY2, 0, 0, "load_public_key2"},
	{ISP_LOAD_SIGNATURE, 0, 0, "load_signature"},
	{ISP_LOAD_SIGNATURE2, 0, 0, "load_signature2"},
	{ISP_LOAD_AES_IV, 0, 0, "load_aes_iv"},
	{ISP_LOAD_SEG_HEADER, 1, 0, "load_seg_header"},
	{ISP_LOAD_SEG_DATA, 0, 0, "load_seg_data"},
	{ISP_CHECK_IMAGE, 0, 0, "check_image"},
	{ISP_RUN_IMAGE, 0, 0, "run_image"},
	{ISP_LOAD_SHA384_P2, 0, 0, "load_sha384_p2"},
	{ISP_CHANGE_RATE, 0, 0, "change_rate"},
	{ISP_RESET, 0, 0, "reset"},
	{ISP_CLK_SET, 0, 0, "clk_set"},
	{ISP_SET_TIMEOUT, 0, 0, "set_timeout"},
	{ISP_OPT_FINISH, 0, 1, "opt_finish"},
	{ISP_SET_PASSWORD, 0, 0, "set_password"},
	{ISP_FLASH_ERASE, 0, 0, "flash_erase"},
	{ISP_FLASH_WRITE, 0, 0, "flash_write"},
	{ISP_FLASH_READ, 1, 0, "flash_read"},
	{ISP_FLASH_BOOT, 0, 0, "flash_boot"},
	{ISP_FLASH_XIP_READ, 1, 0, "flash_xip_read"},
	{ISP_FLASH_SWITCH_BANK, 0, 0, "flash_switch_bank"},
	{ISP_FLASH_READ_JEDEC_ID, 1, 0, "flash_read_jedec_id"},
	{ISP_FLASH_READ_STATUS_REG, 1, 0, "flash_read_status_reg"},
	{ISP_FLASH_WRITE_STATUS_REG, 0, 0, "flash_write_status_reg"},
	{ISP_FLASH_WRITE_CHECK, 0, 0, "flash_write_check"},
	{ISP_FLASH_SET_PARA, 0, 0, "flash_set_para"},
	{ISP_FLASH_CHIP_ERASE, 0, 0, "flash_chip_erase"},
	{ISP_FLASH_READ_SHA, 1, 0, "flash_read_sha"},
	{ISP_FLASH_XIP_READ_SHA, 1, 0, "flash_xip_read_sha"},
	{ISP_FLASH_DECOMPRESS_WRITE, 0, 0, "flash_decompress_write"},
	{ISP_EFUSE_WRITE, 0, 0, "efuse_write"},
	{ISP_EFUSE_READ, 1, 0, "efuse_read"},
	{ISP_EFUSE_READ_MAC, 1, 0, "efuse_read_mac"},
	{ISP_EFUSE_WRITE_MAC, 0, 0, "efuse_write_mac"},
	{ISP_MEMORY_WRITE, 0, 0, "memory_write"},
	{ISP_MEMORY_READ, 1, 0, "memory_read"},
	{ISP_XIP_READ_START, 0, 0, "xip_read_start"},
	{ISP_XIP_READ_FINISH, 0, 0, "xip_read_finish"},
	{ISP_LOG_READ, 1, 0, "log_read"},
	{ISP_EFUSE_SECURITY_WRITE, 0, 0, "efuse_security_write"},
	{ISP_EFUSE_SECURITY_READ, 1, 0, "efuse_security_read"},
	{ISP_ECDH_GET_PK, 1, 0, "ecdh_get_pk"},
	{ISP_ECDH_CHALLENGE, 1, 0, "ecdh_challenge"},
	{ISP_ISP_MODE, 0, 0, "isp_mode"},
	{ISP_IAP_MODE, 0, 0, "iap_mode"},
};

/* protocol.md §7.1; spellings as in Bouffalo's bflb_utils.py without the
 * BFLB_ prefix (including its "LEN_CHECKERROR" and "PASSWORDERROR"). */
static const struct isp_fl_info fl_table[] = {
	{0x0000, "SUCCESS"},
	{0x0001, "FLASH_INIT_ERROR"},
	{0x0002, "FLASH_ERASE_PARA_ERROR"},
	{0x0003, "FLASH_ERASE_ERROR"},
	{0x0004, "FLASH_WRITE_PARA_ERROR"},
	{0x0005, "FLASH_WRITE_ADDR_ERROR"},
	{0x0006, "FLASH_WRITE_ERROR"},
	{0x0007, "FLASH_BOOT_PARA_ERROR"},
	{0x0008, "FLASH_SET_PARA_ERROR"},
	{0x0009, "FLASH_READ_STATUS_REG_ERROR"},
	{0x000A, "FLASH_WRITE_STATUS_REG_ERROR"},
	{0x000B, "FLASH_DECOMPRESS_WRITE_ERROR"},
	{0x000C, "FLASH_WRITE_XZ_ERROR"},
	{0x000D, "FLASH_SWITCH_BANK_ERROR"},
	{0x0101, "CMD_ID_ERROR"},
	{0x0102, "CMD_LEN_ERROR"},
	{0x0103, "CMD_CRC_ERROR"},
	{0x0104, "CMD_SEQ_ERROR"},
	{0x0201, "IMG_BOOTHEADER_LEN_ERROR"},
	{0x0202, "IMG_BOOTHEADER_NOT_LOAD_ERROR"},
	{0x0203, "IMG_BOOTHEADER_MAGIC_ERROR"},
	{0x0204, "IMG_BOOTHEADER_CRC_ERROR"},
	{0x0205, "IMG_BOOTHEADER_ENCRYPT_NOTFIT"},
	{0x0206, "IMG_BOOTHEADER_SIGN_NOTFIT"},
	{0x0207, "IMG_SEGMENT_CNT_ERROR"},
	{0x0208, "IMG_AES_IV_LEN_ERROR"},
	{0x0209, "IMG_AES_IV_CRC_ERROR"},
	{0x020A, "IMG_PK_LEN_ERROR"},
	{0x020B, "IMG_PK_CRC_ERROR"},
	{0x020C, "IMG_PK_HASH_ERROR"},
	{0x020D, "IMG_SIGNATURE_LEN_ERROR"},
	{0x020E, "IMG_SIGNATURE_CRC_ERROR"},
	{0x020F, "IMG_SECTIONHEADER_LEN_ERROR"},
	{0x0210, "IMG_SECTIONHEADER_CRC_ERROR"},
	{0x0211, "IMG_SECTIONHEADER_DST_ERROR"},
	{0x0212, "IMG_SECTIONDATA_LEN_ERROR"},
	{0x0213, "IMG_SECTIONDATA_DEC_ERROR"},
	{0x0214, "IMG_SECTIONDATA_TLEN_ERROR"},
	{0x0215, "IMG_SECTIONDATA_CRC_ERROR"},
	{0x0216, "IMG_HALFBAKED_ERROR"},
	{0x0217, "IMG_HASH_ERROR"},
	{0x0218, "IMG_SIGN_PARSE_ERROR"},
	{0x0219, "IMG_SIGN_ERROR"},
	{0x021A, "IMG_DEC_ERROR"},
	{0x021B, "IMG_ALL_INVALID_ERROR"},
	{0x0301, "IF_RATE_LEN_ERROR"},
	{0x0302, "IF_RATE_PARA_ERROR"},
	{0x0303, "IF_PASSWORDERROR"},
	{0x0304, "IF_PASSWORDCLOSE"},
	{0x0401, "EFUSE_WRITE_PARA_ERROR"},
	{0x0402, "EFUSE_WRITE_ADDR_ERROR"},
	{0x0403, "EFUSE_WRITE_ERROR"},
	{0x0404, "EFUSE_READ_PARA_ERROR"},
	{0x0405, "EFUSE_READ_ADDR_ERROR"},
	{0x0406, "EFUSE_READ_ERROR"},
	{0x0407, "EFUSE_READ_MAC_ERROR"},
	{0x0408, "EFUSE_WRITE_MAC_ERROR"},
	{0x0501, "MEMORY_WRITE_PARA_ERROR"},
	{0x0502, "MEMORY_WRITE_ADDR_ERROR"},
	{0x0503, "MEMORY_WRITE_ERROR"},
	{0x0504, "MEMORY_READ_PARA_ERROR"},
	{0x0505, "MEMORY_READ_ADDR_ERROR"},
	{0x0506, "MEMORY_READ_ERROR"},
	{0x0508, "REG_WRITE_PARA_ERROR"},
	{0x0509, "REG_WRITE_ADDR_ERROR"},
	{0x050A, "REG_WRITE_ERROR"},
	{0x050B, "REG_READ_PARA_ERROR"},
	{0x050C, "REG_READ_ADDR_ERROR"},
	{0x050D, "REG_READ_ERROR"},
	{0x0601, "ECDH_PARA_ERROR"},
	{0x0602, "ECDH_PRIVATE_KEY_ERROR"},
	{0x0603, "ECDH_SHARED_KEY_ERROR"},
	{0x0604, "ECDH_RANDOM_VAL_ERROR"},
	{0x0605, "ECDH_DECRYPT_ERROR"},
	{0x0606, "ECDH_ENCRYPT_ERROR"},
	{0x0701, "SDCARD_MOUNT_ERROR"},
	{0x0702, "SDCARD_FILE_NOT_FOUND_ERROR"},
	{0x0703, "SDCARD_READ_LEN_ERROR"},
	{0x0704, "SDCARD_READ_ERROR"},
	{0x0901, "CODEPATH_CHECK_ERROR"},
	{0x0A01, "PASSWORD_LEN_CHECKERROR"},
	{0x0A02, "PASSWORD_MODE_NEED_PSW"},
	{0x0A03, "PASSWORD_MODE_CLOSE"},
	{0x0B01, "MODE_LEN_CHECK_ERROR"},
	{0x0C01, "BOOT2_VERSION_CHECK_ERROR"},
	{0xFFFC, "PLL_ERROR"},
	{0xFFFD, "INVASION_ERROR"},
	{0xFFFE, "POLLING"},
	{0xFFFF, "FAIL"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t isp_op_count(void)
{
	return COUNT(ops);
}

const struct isp_op_info *isp_op_at(size_t i)
{
	return i < COUNT(ops) ? &ops[i] : NULL;
}

const struct isp_op_info *isp_op_find(unsigned code)
{
	for (size_t i = 0; i < COUNT(ops); i++)
		if (ops[i].code == code && !ops[i].alias)
			return &ops[i];
	return NULL;
}

const char *isp_op_name(unsigned code)
{
	const struct isp_op_info *o = isp_op_find(code);
	return o ? o->name : NULL;
}

size_t isp_fl_count(void)
{
	return COUNT(fl_table);
}

const struct isp_fl_info *isp_fl_at(size_t i)
{
	return i < COUNT(fl_table) ? &fl_table[i] : NULL;
}

const char *isp_fl_name(unsigned code)
{
	for (size_t i = 0; i < COUNT(fl_table); i++)
		if (fl_table[i].code == code)
			return fl_table[i].name;
	return NULL;
}

const char *isp_fl_hint(unsigned code)
{
	switch (code) {
	case 0x0A0A:
		return "chip is protected or closed";
	case 0x0103:
		return "the device computed a different frame checksum";
	case 0x0101:
		return "the device does not implement this command";
	default:
		return NULL;
	}
}

uint8_t isp_checksum(const uint8_t *payload, size_t len)
{
	uint32_t sum = (uint32_t)(len & 0xFF) + (uint32_t)((len >> 8) & 0xFF);
	for (size_t i = 0; i < len; i++)
		sum += payload[i];
	return (uint8_t)(sum & 0xFF);
}

size_t isp_frame(uint8_t *out, size_t cap, uint8_t cmd, const uint8_t *payload,
		 size_t len, int checksum)
{
	if (len > ISP_MAX_PAYLOAD || cap < ISP_HEADER_LEN || cap - ISP_HEADER_LEN < len)
		return 0;
	out[0] = cmd;
	out[1] = checksum ? isp_checksum(payload, len) : 0;
	ncp_put_le16(out + 2, (uint32_t)len);
	if (len)
		memcpy(out + ISP_HEADER_LEN, payload, len);
	return len + ISP_HEADER_LEN;
}

/* ---- reply parser ---- */

enum { S_FIRST, S_AFTER_OK, S_FL, S_DATA, S_DONE };

void isp_parse_init(struct isp_parser *p, int want_data)
{
	memset(p, 0, sizeof(*p));
	p->want_data = want_data ? 1 : 0;
	p->state = S_FIRST;
	p->need = 2;
}

static int pair_is(const uint8_t *b, char a, char c)
{
	return b[0] == (uint8_t)a && b[1] == (uint8_t)c;
}

static enum isp_result finish(struct isp_parser *p, enum isp_result r, size_t consumed)
{
	p->state = S_DONE;
	p->result = (int)r;
	p->consumed = consumed;
	p->need = 0;
	return r;
}

enum isp_result isp_parse_feed(struct isp_parser *p, const uint8_t *buf, size_t n)
{
	for (;;) {
		if (p->state == S_DONE)
			return (enum isp_result)p->result;
		if (n < p->pos) /* caller shrank the buffer: refuse to guess */
			return finish(p, ISP_R_MALFORMED, p->pos);
		size_t avail = n - p->pos;
		const uint8_t *b = buf + p->pos;

		switch (p->state) {
		case S_FIRST:
		case S_AFTER_OK:
			if (avail < 2) {
				p->need = 2 - avail;
				return ISP_R_NEED_MORE;
			}
			if (pair_is(b, 'O', 'K')) {
				if (p->ok_pairs >= ISP_MAX_OK_PAIRS) {
					p->bad_off = p->pos;
					return finish(p, ISP_R_MALFORMED, p->pos);
				}
				p->ok_pairs++;
				p->pos += 2;
				if (!p->want_data)
					return finish(p, ISP_R_OK, p->pos);
				p->state = S_AFTER_OK;
				break;
			}
			if (pair_is(b, 'F', 'L')) {
				p->pos += 2;
				p->state = S_FL;
				break;
			}
			if (pair_is(b, 'P', 'D')) {
				p->pos += 2;
				return finish(p, ISP_R_PENDING, p->pos);
			}
			if (p->state == S_FIRST) {
				p->bad_off = p->pos;
				return finish(p, ISP_R_MALFORMED, p->pos);
			}
			/* S_AFTER_OK: this pair is the data length */
			p->data_len = ncp_get_le16(b);
			p->pos += 2;
			p->data_off = p->pos;
			p->state = S_DATA;
			break;
		case S_FL:
			if (avail < 2) {
				p->need = 2 - avail;
				return ISP_R_NEED_MORE;
			}
			p->fl = ncp_get_le16(b);
			p->pos += 2;
			return finish(p, ISP_R_FL, p->pos);
		case S_DATA:
			if (avail < p->data_len) {
				p->need = p->data_len - avail;
				return ISP_R_NEED_MORE;
			}
			p->pos += p->data_len;
			return finish(p, ISP_R_DATA, p->pos);
		default:
			return finish(p, ISP_R_MALFORMED, p->pos);
		}
	}
}

const char *isp_result_name(enum isp_result r)
{
	switch (r) {
	case ISP_R_NEED_MORE:
		return "need";
	case ISP_R_OK:
		return "ok";
	case ISP_R_DATA:
		return "data";
	case ISP_R_FL:
		return "fl";
	case ISP_R_PENDING:
		return "pd";
	case ISP_R_MALFORMED:
		return "malformed";
	}
	return "?";
}
