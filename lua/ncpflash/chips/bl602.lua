-- Bouffalo BL602 / BL604: the ROM only loads RAM images (load_function 1). ncpflash uploads the
-- eflash_loader image you give it (--loader FILE; ncpflash ships no vendor binaries), then
-- talks to the loader: re-handshake at the load speed, PD keep-alives during erase, JEDEC flag
-- 0x80. Data only (protocol.md §5.2, §9); generic code reads these fields.
-- Based on the BL616 file: only what differs is listed (each field replaces the BL616's whole);
-- the loader sends PD while erasing (each extends the deadline: erase_pd_extend).
return {
  base = "bl616",
  name = "bl602",
  description = "Bouffalo BL602 / BL604 (RAM eflash_loader)",
  load_function = 1,                   -- 1: upload a RAM eflash_loader first (ncpflash.loader)
  loader = {
    chunk = 4080,                      -- 0x18 segment-data bytes per frame
    run_sequence = { { cmd = "RUN_IMAGE" } },
    settle = 0.2,                      -- after the run: the loader starts and waits for a sync
    running_rom_version = 0xFFFFFFFF,  -- get_boot_info from a running loader: skip the upload
    -- eflash_loader_<xtal>.bin from the Bouffalo tools (BL602: 24m/26m/32m/38p4m/40m/none/rc32m)
    hint = "eflash_loader_40m.bin from Bouffalo's flash tool (chips/bl602/eflash_loader/)",
  },
  baud = { handshake = 500000, load = 500000 },
  boot_info = {
    lengths = { [20] = true },
    rom_version = 0,
    sign = 4, encrypt = 5,
    chip_id = { first = 12, last = 17, reverse = true },
  },
  flash_pin_from_boot_info = false,
  flash_set = { pin = 0xFF, clk = 0x41, io = 1, delay = 1 },   -- 0xFF: don't re-init pins
  jedec_flag_required = true,          -- the loader must have identified the flash (0x80)
  header = {
    size = 176, flash_cfg = 8, clock = { magic = 100, data = 104, len = 8, crc = 112 },
    bootcfg = 116, image_len = 120, boot_entry = 124, image_offset = 128, hash = 132, crc = 172,
    clock_cfg = { 0x04, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00 },
    boot_entry_value = 0x21000000,
  },
  tx_chunk = 2048,                     -- tx_size 2056
  read_chunk = 2048,
  rom_timeout = false,
  rom_versions = { [0x00000001] = "BL602", [0x06020001] = "BL602" },
}
