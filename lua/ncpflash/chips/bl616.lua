-- Bouffalo BL616 / BL618 and its Qualcomm twin QCC743 (the chip in ST's ST67W611M1).
-- Data only (protocol.md §9); generic code reads these fields and never tests the name.
-- The other built-in chips say `base = "bl616"` and list only what differs (ncpflash.chip).

-- The 84-byte SPI flash configuration (protocol.md §6.2, the SPI_Flash_Cfg block) as named
-- fields in wire order: ST's flash_para.bin (QConn_Flash chips/qcc743/efuse_bootheader/), a
-- GD25Q32-style block, used for flash parts the table (chips/bl616_flash.lua) does not know
-- and with --flash-config chip.
-- Each entry: {name, size_in_bytes, value}; size 2 = u16 LE; a table value = byte array.
local flash_cfg = {
  {"io_mode", 1, 0x04}, {"cont_read_support", 1, 0x01}, {"clk_delay", 1, 0x00},
  {"clk_invert", 1, 0x00},
  {"reset_en_cmd", 1, 0x66}, {"reset_cmd", 1, 0x99}, {"exit_contread_cmd", 1, 0xFF},
  {"exit_contread_size", 1, 0x03},
  {"jedecid_cmd", 1, 0x9F}, {"jedecid_dmy_clk", 1, 0x00}, {"enter_32bit_addr_cmd", 1, 0xB7},
  {"exit_32bit_addr_cmd", 1, 0xE9},
  {"sector_size_kib", 1, 4}, {"mfg_id", 1, 0xC8}, {"page_size", 2, 256},
  {"chip_erase_cmd", 1, 0xC7}, {"sector_erase_cmd", 1, 0x20}, {"blk32_erase_cmd", 1, 0x52},
  {"blk64_erase_cmd", 1, 0xD8},
  {"write_enable_cmd", 1, 0x06}, {"page_prog_cmd", 1, 0x02}, {"qpage_prog_cmd", 1, 0x32},
  {"qpp_addr_mode", 1, 0x00},
  {"fast_read_cmd", 1, 0x0B}, {"fast_read_dmy_clk", 1, 1},
  {"qpi_fast_read_cmd", 1, 0x0B}, {"qpi_fast_read_dmy_clk", 1, 1},
  {"fast_read_do_cmd", 1, 0x3B}, {"fast_read_do_dmy_clk", 1, 1},
  {"fast_read_dio_cmd", 1, 0xBB}, {"fast_read_dio_dmy_clk", 1, 0},
  {"fast_read_qo_cmd", 1, 0x6B}, {"fast_read_qo_dmy_clk", 1, 1},
  {"fast_read_qio_cmd", 1, 0xEB}, {"fast_read_qio_dmy_clk", 1, 2},
  {"qpi_fast_read_qio_cmd", 1, 0xEB}, {"qpi_fast_read_qio_dmy_clk", 1, 2},
  {"qpi_page_prog_cmd", 1, 0x02}, {"write_vreg_enable_cmd", 1, 0x50},
  {"wel_reg_index", 1, 0}, {"qe_reg_index", 1, 1}, {"busy_reg_index", 1, 0},
  {"wel_bit_pos", 1, 1}, {"qe_bit_pos", 1, 1}, {"busy_bit_pos", 1, 0},
  {"wel_reg_write_len", 1, 2}, {"wel_reg_read_len", 1, 1},
  {"qe_reg_write_len", 1, 2}, {"qe_reg_read_len", 1, 1},
  {"release_power_down_cmd", 1, 0xAB}, {"busy_reg_read_len", 1, 1},
  {"read_reg_cmd", 4, {0x05, 0x35, 0x00, 0x00}}, {"write_reg_cmd", 4, {0x01, 0x01, 0x00, 0x00}},
  {"enter_qpi_cmd", 1, 0x38}, {"exit_qpi_cmd", 1, 0xFF},
  {"cont_read_code", 1, 0xA0}, {"cont_read_exit_code", 1, 0xFF},
  {"burst_wrap_cmd", 1, 0x77}, {"burst_wrap_dmy_clk", 1, 0x03},
  {"burst_wrap_data_mode", 1, 0x02}, {"burst_wrap_data", 1, 0x40},
  {"de_burst_wrap_cmd", 1, 0x77}, {"de_burst_wrap_dmy_clk", 1, 0x03},
  {"de_burst_wrap_data_mode", 1, 0x02}, {"de_burst_wrap_data", 1, 0xF0},
  {"sector_erase_time_ms", 2, 300}, {"blk32_erase_time_ms", 2, 1200},
  {"blk64_erase_time_ms", 2, 1200}, {"page_prog_time_ms", 2, 5},
  {"chip_erase_time_ms", 2, 33000}, {"power_down_delay", 1, 20}, {"qe_data", 1, 0},
}

return {
  name = "bl616",
  description = "Bouffalo BL616/BL618, Qualcomm QCC743",
  baud = { handshake = 500000, load = 2000000 },
  -- sync burst: count = floor(seconds * baud / 10) bytes of 0x55 (300 at 500 kbaud). settle:
  -- after the OK, as the vendor's handshake (30 ms; BL602's ISP document asks for >= 20 ms);
  -- boot_info_wait: 500 ms more before the first 0x10 of a connect, as the vendor's boot-info
  -- path (../shared/conformance/README.md)
  sync = { seconds = 0.006, read_timeout = 0.1, settle = 0.03, retries = 3 },
  boot_info_wait = 0.5,
  probe_timeout = 0.1,                 -- bare get_boot_info before any reset/sync
  baud_switch_guard = 0.11,            -- after 0x22: reopen at the new rate, flush, wait (vendor: ~110 ms)
  boot_info = {
    lengths = { [24] = true, [28] = true },
    rom_version = 0,                   -- u32 LE at byte offset 0
    sign = 4, encrypt = 5,             -- byte offsets
    sw_cfg0 = 8, sw_cfg1 = 20,         -- u32 LE offsets
    chip_id = { first = 12, last = 17, reverse = true },
  },
  flash_pin_from_boot_info = { shift = 14, mask = 0x3F },  -- replaces flash_set.pin 0x80
  flash_set = { pin = 0x80, clk = 0x41, io = 1, delay = 1 },
  flash_cfg = flash_cfg,               -- 84 bytes: the default for parts the table does not know
  flash_table = "ncpflash.chips.bl616_flash",   -- the flash-part table (0x3B block by JEDEC id)
  jedec_flag_required = false,         -- BL602/BL702 only: flag must be 0x80
  jedec_identified_flag = 0x80,
  -- boot-header layout (protocol.md §6.2): offsets of the fields `image create` fills
  header = {
    size = 256, flash_cfg = 8, clock = { magic = 100, data = 104, len = 12, crc = 116 },
    bootcfg = 120, image_offset = 124, image_len = 132, hash = 136, boot_entry = 176, crc = 252,
    cpu_enable = 168,                  -- M0 cfg: enable byte (boot_entry at +8)
    clock_cfg = { 0x07, 0x04, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00 },
    boot_entry_value = 0xA0000000,
  },
  load_function = 2,                   -- the ROM programs the flash itself
  mac_len = 6,
  -- data bytes per 0x31/0x3F frame and per 0x32 read: what the vendor sends (tx_size = 2056 in
  -- ST's and the generic config); more only after a probe (--frame-size, session.probe_frames)
  tx_chunk = 2048,
  read_chunk = 2048,
  decompress_write = true,
  compress_min = 4096,                 -- files up to this size go as plain 0x31 writes
  xz = { dict = 32768, check = "crc32", preset = 6 },
  sector_size = 4096,                  -- flash erase sector (bytes): blank runs, erase-skip blocks
  -- erase deadlines: the SDK's unit loop over the range, each unit at the flash part's maximum
  -- time (its table entry, never below these floors: ms), times erase_margin, plus 2 s; each PD
  -- moves the deadline to at least erase_pd_extend s from now. Floors: the datasheet maxima of a
  -- 32 Mbit part of this class (W25Q32FV: tSE 400 ms, tBE1 1.6 s, tBE2 2 s, as Bouffalo's SDK
  -- lists them; tCE 50 s), above the table's 300/1200/1200/33000 (docs/conformance.md)
  erase_floor_ms = { sector = 400, blk32 = 1600, blk64 = 2000, chip = 50000 },
  erase_margin = 1.5,                  -- the SDK busy-waits 1.5 x the table time before it gives up
  erase_pd_extend = 5,
  write_rate = 20000,                  -- bytes/s lower bound used to scale write deadlines
  sha_rate = 2 * 1024 * 1024,          -- bytes/s lower bound for XIP SHA-256
  rom_timeout = {                      -- ROM session timeout (protocol.md §2.2)
    long = 10.0, short = 2.0,
    -- "A0" parts (ROM version below) lack 0x23: memory-write addr <- ms << 16 | low
    mem_write = { rom_versions = { [0x06160001] = true }, addr = 0x6102DF04, low = 0x1200 },
  },
  rom_versions = { [0x06160001] = "BL616 A0", [0x06160002] = "BL616/QCC743" },
  flash_layout = { partition_table = { 0xE000, 0xF000 }, firmware = 0x10000 },
}
