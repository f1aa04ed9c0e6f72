-- Bouffalo BL808 / BL606P: the ROM flashes directly (load_function 2), like the BL616.
-- Data only (protocol.md §9, §6.1, §6.2); generic code reads these fields and never tests the name.
-- Based on the BL616 file: only what differs is listed (each field replaces the BL616's whole);
-- the bauds, sync, flash_set, 84-byte SPI_Flash_Cfg block, 4096-byte frames (tx_size 4104) and
-- XZ are the BL616's, and so is the erase deadline (no PD keep-alives from this ROM: blisp).
return {
  base = "bl616",
  name = "bl808",
  description = "Bouffalo BL808 / BL606P",
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
  -- boot-header layout (protocol.md §6.2, 352 bytes): offsets of the fields `image create` fills
  header = {
    size = 352, flash_cfg = 8, clock = { magic = 100, data = 104, len = 20, crc = 124 },
    bootcfg = 128, image_offset = 132, image_len = 140, hash = 144, crc = 348,
    cpu_enable = 176, boot_entry = 184,   -- first CPU cfg, laid out like the BL616 one (assumed)
    clock_cfg = { 0x07, 0x04, 0x00, 0x03, 0x00, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00 },
    boot_entry_value = 0x58000000,
  },
  rom_timeout = false,                 -- no 0x23 on this ROM
  tx_chunk = 4096,                     -- tx_size 4104 in the vendor's bl808 config
  read_chunk = 4096,
  flash_table = false,                 -- Bouffalo's BL808 table is not carried: chip flash_cfg
  rom_versions = { [0x08080001] = "BL808" },
  flash_layout = { firmware = 0x0 },   -- whole_img at 0
}
