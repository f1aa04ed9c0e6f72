-- Bouffalo BL702L (BL704L): ROM flashing (load_function 2) at 500 kbaud, 8-byte MAC.
-- Data only (protocol.md §9, §6.1, §6.2); generic code reads these fields and never tests the name.
-- The ROM version below is not confirmed by the protocol notes (§9 lists it as "?"): a chip that
-- reports another one is not auto-detected; use --chip bl702l (docs/new-module.md).
-- Based on the BL616 file: only what differs is listed (each field replaces the BL616's whole).
-- Erase is "2 s + PD": PD keep-alives extend the deadline (erase_pd_extend, from the BL616).
return {
  base = "bl616",
  name = "bl702l",
  description = "Bouffalo BL702L / BL704L",
  baud = { handshake = 500000, load = 500000 },
  sync = { seconds = 0.003, read_timeout = 0.1, settle = 0.02, retries = 3 },   -- 3 ms burst
  boot_info = {
    lengths = { [24] = true },
    rom_version = 0,
    sign = 4, encrypt = 5,
    sw_cfg0 = 8,
    chip_id = { first = 16, last = 23, reverse = false },
  },
  -- the flash pin is in dev_info (boot info bytes 12..15, flash_cfg bits 28..26), not decoded:
  -- 0xFF = leave the ROM's pin setup alone
  flash_pin_from_boot_info = false,
  flash_set = { pin = 0xFF, clk = 0x41, io = 1, delay = 1 },
  header = {
    size = 240, flash_cfg = 8, clock = { magic = 100, data = 104, len = 8, crc = 112 },
    bootcfg = 116, image_len = 120, boot_entry = 124, image_offset = 128, hash = 132, crc = 236,
    clock_cfg = { 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 },
    boot_entry_value = 0x23000000,
  },
  mac_len = 8,
  tx_chunk = 2048,                     -- tx_size 2056
  read_chunk = 2048,
  rom_timeout = false,
  flash_table = false,                 -- Bouffalo's BL702L table is not carried: chip flash_cfg
  rom_versions = { [0x07020101] = "BL702L (assumed ROM version)" },
}
