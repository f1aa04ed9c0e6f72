-- A generic Bouffalo board: the chip is whatever the boot ROM reports (ncpflash.detect), the
-- flash size comes from the JEDEC id, and the adapter is wired the Bouffalo/QConn way (RTS ->
-- CHIP_EN, DTR -> BOOT, asserted = pin low), as on most dev boards with an auto-download
-- circuit. Used automatically when the detected chip is not the default board's.
return {
  name = "generic",
  description = "generic Bouffalo board (chip detected from the boot ROM)",
  chip = "bl616",               -- until the ROM has answered
  detect = true,
  reset = {
    lines = { en = "rts", boot = "dtr" },
    active = "low",
    enter = { { boot = 1, en = 0 }, { wait = 0.05 }, { en = 1 }, { wait = 0.10 }, { boot = 0 },
              { wait = 0.02 } },
    run = { { boot = 0, en = 0 }, { wait = 0.05 }, { en = 1 } },
  },
}
