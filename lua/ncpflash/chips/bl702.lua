-- Bouffalo BL702 / BL704 / BL706: RAM eflash_loader (load_function 1) like the BL602, started
-- by four memory writes instead of run_image (protocol.md §9), 3 ms sync burst, 8-byte MAC, no
-- decompress-write. Data only; generic code reads these fields.
-- Based on the BL616 file: only what differs is listed (each field replaces the BL616's whole).
return {
  base = "bl616",
  name = "bl702",
  description = "Bouffalo BL702 / BL704 / BL706 (RAM eflash_loader)",
  load_function = 1,
  loader = {
    chunk = 4080,
    -- the ROM's run_image is replaced by these writes; the last one resets into the loaded
    -- image and is not acknowledged
    run_sequence = {
      { cmd = "MEMORY_WRITE", addr = 0x4000F100, value = 0x4E424845 },
      { cmd = "MEMORY_WRITE", addr = 0x4000F104, value = 0x22010000 },
      { cmd = "MEMORY_WRITE", addr = 0x40000018, value = 0x00000000 },
      { cmd = "MEMORY_WRITE", addr = 0x40000018, value = 0x00000002, no_reply = true },
    },
    settle = 0.2,
    running_rom_version = 0xFFFFFFFF,
    hint = "eflash_loader_32m.bin from Bouffalo's flash tool (chips/bl702/eflash_loader/)",
  },
  baud = { handshake = 500000, load = 500000 },
  sync = { seconds = 0.003, read_timeout = 0.1, settle = 0.02, retries = 3 },   -- 3 ms burst
  boot_info = {
    lengths = { [24] = true },
    rom_version = 0,
    sign = 4, encrypt = 5,
    chip_id = { first = 16, last = 23, reverse = false },
  },
  flash_pin_from_boot_info = false,
  flash_set = { pin = 0xFF, clk = 0x41, io = 1, delay = 1 },
  jedec_flag_required = true,
  header = {
    size = 176, flash_cfg = 8, clock = { magic = 100, data = 104, len = 8, crc = 112 },
    bootcfg = 116, image_len = 120, boot_entry = 124, image_offset = 128, hash = 132, crc = 172,
    clock_cfg = { 0x01, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00 },
    boot_entry_value = 0x23000000,
  },
  mac_len = 8,
  tx_chunk = 2048,
  read_chunk = 2048,
  decompress_write = false,            -- the reference tool never uses 0x3F on the BL702
  rom_timeout = false,
  rom_versions = { [0x07020001] = "BL702" },
}
