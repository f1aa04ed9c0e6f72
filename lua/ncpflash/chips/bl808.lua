-- Bouffalo BL808 / BL606P: the ROM flashes directly (load_function 2), like the BL616.
-- Data only (protocol.md §9, §6.1, §6.2); generic code reads these fields and never tests the name.
return {
  name = "bl808",
  description = "Bouffalo BL808 / BL606P",
  load_function = 2,                   -- 2: the ROM itself programs the flash
  baud = { handshake = 500000, load = 2000000 },
  sync = { seconds = 0.006, read_timeout = 0.1, settle = 0.02, retries = 3 },
  probe_timeout = 0.1,
  baud_switch_guard = 0.01,
  -- protocol.md §2.1: 300 ms after the sync the reference tool writes 0x2000F038 <- 0x18000000
  -- (purpose undocumented); sent once per connect, right after the handshake / boot-info read
  post_sync_writes = { { delay = 0.3, addr = 0x2000F038, value = 0x18000000 } },
  boot_info = {
    lengths = { [24] = true },
    rom_version = 0,
    sign = 4, encrypt = 6,             -- group 0 (bytes 5 and 7 are group 1)
    sw_cfg0 = 8, sw_cfg1 = 20,
    chip_id = { first = 12, last = 17, reverse = true },
  },
  flash_pin_from_boot_info = { shift = 14, mask = 0x1F },
  flash_set = { pin = 0x80, clk = 0x41, io = 1, delay = 1 },
  flash_cfg = require("ncpflash.chips.bl616").flash_cfg,   -- same 84-byte SPI_Flash_Cfg block
  jedec_flag_required = false,
  jedec_identified_flag = 0x80,
  header_size = 352,
  -- boot-header layout (protocol.md §6.2, 352 bytes): offsets of the fields `image create` fills
  header = {
    size = 352, flash_cfg = 8, clock = { magic = 100, data = 104, len = 20, crc = 124 },
    bootcfg = 128, image_offset = 132, image_len = 140, hash = 144, crc = 348,
    cpu_enable = 176, boot_entry = 184,   -- first CPU cfg, laid out like the BL616 one (assumed)
    clock_cfg = { 0x07, 0x04, 0x00, 0x03, 0x00, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00 },
    boot_entry_value = 0x58000000,
  },
  mac_len = 6,
  tx_chunk = 4096,                     -- tx_size 4104 = 8 + 4096 data bytes per frame
  read_chunk = 4096,
  decompress_write = true,
  compress_min = 4096,
  xz = { dict = 32768, check = "crc32", preset = 6 },
  sector_size = 4096,
  erase_timeout = 100,                 -- no PD keep-alives from this ROM (blisp)
  erase_rate = 20000, write_rate = 20000, sha_rate = 2 * 1024 * 1024,
  rom_timeout = false,                 -- no 0x23 on this ROM
  rom_versions = { [0x08080001] = "BL808" },
  flash_layout = { firmware = 0x0 },   -- whole_img at 0
}
