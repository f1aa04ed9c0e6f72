-- BL616 / QCC743 eFuse map (512 bytes), data only. Read by ncpflash.efuse.
--
-- Sources (each field names its own in `src`):
--   P  = docs protocol.md §6.7/§6.8 (itself citing Bouffalo's bflb-mcu-tool
--        libs/bl616/efuse_cfg_keys.py, "[S:T-616EF]", for names and bit positions)
--   ST = st67w611m1.md §2.6 (ST's read_chip_info.py and W61 driver offsets)
--   BK = the same Bouffalo BL616 key table, for names the docs do not spell out. Names only:
--        the meaning is what the name says, not verified on silicon.
-- Where nobody says what a bit does, the description says "unknown".
--
-- Field shapes:
--   bit-field of the little-endian 32-bit word at `offset`: bits = {lo, hi}
--   byte range: len = N (kind "bytes", "hash", "mac", "ascii", "counter")
-- `values` maps integer values to words; `lock` marks write/read-lock bits with the byte range
-- they protect (`protects = {first, len}`), used by the burn planner. `lockout` says what a
-- field locks out for good (the plan names it; every wr_lock_/rd_lock_ field is one too);
-- `lockout_flag` = a burn that sets it needs --allow-lockout NAME.

local F = {}
local function bit(offset, lo, hi, name, desc, src, extra)
  local f = { name = name, offset = offset, bits = { lo, hi or lo }, description = desc, src = src }
  for k, v in pairs(extra or {}) do f[k] = v end
  F[#F + 1] = f
end
local function bytes(offset, len, kind, name, desc, src, extra)
  local f = { name = name, offset = offset, len = len, kind = kind, description = desc, src = src }
  for k, v in pairs(extra or {}) do f[k] = v end
  F[#F + 1] = f
end

-- word 0 (offset 0x00): configuration
bit(0x00, 0, 1, "ef_sf_aes_mode", "flash AES mode (0 = off)", "BK",
  { lockout = "flash encryption: only images encrypted with the eFuse key run", lockout_flag = true })
bit(0x00, 4, 5, "ef_sboot_en", "secure-boot enable bits of word 0 (ST's file leaves them 0)", "BK",
  { lockout = "secure boot" })
bit(0x00, 6, 9, "ef_uart_dis", "UART disable bits", "BK",
  { lockout = "UART download disabled: no more flashing over UART", lockout_flag = true })
bit(0x00, 24, 25, "ef_dbg_jtag_1_dis", "JTAG 1 disable", "BK", { lockout = "JTAG disabled" })
bit(0x00, 26, 27, "ef_dbg_jtag_0_dis", "JTAG disable (ST's read_chip_info: 3 = disabled)", "P,ST",
  { values = { [0] = "enabled", [3] = "disabled" }, security = "jtag", lockout = "JTAG disabled" })
bit(0x00, 28, 31, "ef_dbg_mode", "debug mode", "BK")
bytes(0x04, 16, "bytes", "ef_dbg_pwd", "debug password (16 bytes)", "BK")
-- MAC slot 0 (factory) and key slots
bytes(0x14, 6, "mac", "mac_slot_0", "default (factory) MAC, stored reversed, + zero-bit count at 0x1A", "P,ST",
  { slot = 0 })
bytes(0x1C, 32, "hash", "public_key_hash",
  "key slots 0-1: SHA-256 of the image-signing public key (secure-boot root of trust)", "P,ST",
  { security = "pk_hash" })
bytes(0x3C, 16, "bytes", "key_slot_2", "key slot 2 (unknown use on ST67W611M1)", "BK")
bytes(0x4C, 16, "bytes", "key_slot_3", "key slot 3 (unknown use on ST67W611M1)", "BK")
-- sw_usage_0 (offset 0x5C = 92)
bit(0x5C, 0, 0, "bootrom_protect", "boot ROM protect", "BK")
bit(0x5C, 1, 1, "uart_log_disable", "ROM UART log disable", "BK")
bit(0x5C, 4, 4, "uartboot_disable", "UART boot (this download mode!) disable", "BK",
  { lockout = "UART download disabled: no more flashing over UART", lockout_flag = true })
bit(0x5C, 7, 7, "sign_cfg", "sw_usage_0 sign_cfg: secure boot, ROM accepts signed images only", "P",
  { values = { [0] = "off", [1] = "SECURE BOOT" }, security = "sign_cfg",
    lockout = "secure boot: only images signed with the key in slots 0-1 boot" })
bit(0x5C, 9, 11, "jtag_cfg", "JTAG pin configuration", "BK")
bit(0x5C, 29, 29, "hbn_check_sign", "check signature when waking from hibernate", "BK")
bytes(0x60, 4, "bytes", "sw_usage_1", "sw_usage_1 (clock/boot options; not decoded)", "BK")
-- customer MAC slots
bytes(0x64, 6, "mac", "mac_slot_1", "customer MAC 1, stored reversed, + zero-bit count at 0x6A", "P,ST",
  { slot = 1 })
bytes(0x70, 6, "mac", "mac_slot_2", "customer MAC 2, stored reversed, + zero-bit count at 0x76", "P,ST",
  { slot = 2 })
-- lock word (offset 0x7C = 124)
bit(0x7C, 0, 3, "ef_sec_lifecycle", "security life cycle", "BK")
bit(0x7C, 12, 12, "wr_lock_rsvd_1",
  "write lock rsvd_1 per Bouffalo's table; ST's driver reads this bit as anti-rollback enable", "P,ST")
bit(0x7C, 14, 14, "wr_lock_boot_mode", "write lock: boot mode (word 0)", "BK")
bit(0x7C, 15, 15, "wr_lock_dbg_pwd", "write lock: debug password", "BK", { lock = "wr", protects = { 0x04, 16 } })
bit(0x7C, 16, 16, "wr_lock_wifi_mac", "write lock: MAC slot 0", "BK", { lock = "wr", protects = { 0x14, 8 } })
bit(0x7C, 17, 17, "wr_lock_key_slot_0", "write lock: key slot 0 (first half of the key hash)", "P",
  { lock = "wr", protects = { 0x1C, 16 } })
bit(0x7C, 18, 18, "wr_lock_key_slot_1", "write lock: key slot 1 (second half of the key hash)", "P",
  { lock = "wr", protects = { 0x2C, 16 } })
bit(0x7C, 19, 19, "wr_lock_key_slot_2", "write lock: key slot 2", "BK", { lock = "wr", protects = { 0x3C, 16 } })
bit(0x7C, 20, 20, "wr_lock_key_slot_3", "write lock: key slot 3", "BK", { lock = "wr", protects = { 0x4C, 16 } })
bit(0x7C, 21, 21, "wr_lock_sw_usage_0", "write lock: sw_usage_0", "BK", { lock = "wr", protects = { 0x5C, 4 } })
bit(0x7C, 26, 26, "rd_lock_dbg_pwd", "read lock: debug password", "BK", { lock = "rd", protects = { 0x04, 16 } })
bit(0x7C, 27, 27, "rd_lock_key_slot_0", "read lock: key slot 0", "BK", { lock = "rd", protects = { 0x1C, 16 } })
bit(0x7C, 28, 28, "rd_lock_key_slot_1", "read lock: key slot 1", "BK", { lock = "rd", protects = { 0x2C, 16 } })
bit(0x7C, 29, 29, "rd_lock_key_slot_2", "read lock: key slot 2", "BK", { lock = "rd", protects = { 0x3C, 16 } })
bit(0x7C, 30, 30, "rd_lock_key_slot_3", "read lock: key slot 3", "BK", { lock = "rd", protects = { 0x4C, 16 } })
-- 0x80..0xFF
bytes(0xC0, 28, "bytes", "rf_trim_a", "RF/analog trim words 0xC0..0xDB (ST reads 0xC0..0xF4 as RF trim)", "ST")
bit(0xDC, 26, 26, "unknown_0xdc_bit26",
  "unknown: set by ST's efusedata.bin; inside ST's RF-trim range (Bouffalo: key_slot_9_w3)", "ST")
bytes(0xE0, 24, "bytes", "rf_trim_b", "RF/analog trim words 0xE0..0xF7 (ST reads 0xC0..0xF4 as RF trim)", "ST")
bytes(0xFC, 4, "bytes", "ef_data_1_lock", "lock word of 0x80..0xFF (key slots 4-10); not decoded", "BK",
  { lockout = "write/read locks of 0x80..0xFF" })
-- 0x100..0x1FF (ST's manufacturing data)
bytes(0x100, 24, "ascii", "part_number", "part number (ASCII, until a 0x03 byte)", "ST")
bytes(0x118, 2, "bytes", "bom", "BOM / manufacturing info (width assumed: 2 bytes)", "ST")
bytes(0x11A, 2, "bytes", "year_week", "manufacturing year/week (width assumed: 2 bytes)", "ST")
bytes(0x170, 16, "counter", "anti_rollback_boot2", "boot2 anti-rollback counter (value = set bits, assumed)", "ST")
bytes(0x180, 32, "counter", "anti_rollback_app", "app anti-rollback counter (value = set bits, assumed)", "ST")

return {
  chip = "bl616",
  size = 512,
  read_chunk = 512,                     -- bytes per 0x41/0x81 read (ST reads 0x000-0x1FF at once)
  -- burn order (protocol.md §6.7): 256..511, 128..255, then 0..127 whose word 124 holds the locks
  regions = { { start = 256, len = 256 }, { start = 128, len = 128 }, { start = 0, len = 128 } },
  lock_word = 124,
  secure_write = true,                  -- §6.8: the tool forces the ECDH path on BL616
  write_timeout = 2.0,                  -- the tool sets the ROM timeout to 2 s before eFuse writes
  mac = { slots = { 0x14, 0x64, 0x70 }, customer = { 0x64, 0x70 }, len = 6, reversed = true },
  fields = F,
  -- the "saved/encrypted" file format (bflb security_save, what ST ships)
  saved = { size = 4608, data_offset = 4096, key = "BOUFFALOLABKEYIV", iv = "BOUFFALOLABK\0\0\0\0" },
}
