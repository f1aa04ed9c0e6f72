-- ACME W1: a (fictional) BL616 module, the worked example of docs/new-module.md.
-- Copy to ~/.config/ncpflash/boards/acme_w1.lua and use it with `--board acme_w1`. No rebuild.
--
-- What differs from the ST67W611M1 board file:
--   * the reset wiring is inverted: the adapter's RTS and DTR drive the module's CHIP_EN and BOOT
--     through non-inverting buffers, so an asserted line is a HIGH pin (active = "high"), the
--     opposite of the Bouffalo auto-download circuit;
--   * 8 MiB of flash, partition tables at 0x8000/0x9000, firmware at 0x20000;
--   * a flash part that wants dual-output reads (io_mode 1) in the boot header.
return {
  name = "acme_w1",
  description = "ACME W1 module (BL616, 8 MiB flash, non-inverting reset buffers)",
  chip = "bl616",
  flash_size = 8 * 1024 * 1024,
  reset = {
    lines = { en = "rts", boot = "dtr" },
    active = "high",              -- asserted line = pin high
    -- enter the ROM's UART download mode: BOOT high while CHIP_EN rises
    enter = { { boot = 1, en = 0 }, { wait = 0.05 }, { en = 1 }, { wait = 0.10 }, { boot = 0 },
              { wait = 0.02 } },
    -- run the application: BOOT low while CHIP_EN rises
    run = { { boot = 0, en = 0 }, { wait = 0.05 }, { en = 1 } },
  },
  -- where `info` looks for the partition table, and where the firmware goes
  flash_layout = { partition_table = { 0x8000, 0x9000 }, firmware = 0x20000 },
  -- single fields of the chip's 84-byte flash configuration, for `image create`
  flash_cfg = { io_mode = 0x01, mfg_id = 0xEF },
}
