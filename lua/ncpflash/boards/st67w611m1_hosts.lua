-- ST's NUCLEO kits as the ST67W611M1's host (X-NUCLEO-67W61M1 on a NUCLEO board), data only.
-- Read by ncpflash.hostboard for `--host auto|BOARD` of the st67w611m1/* recipes.
--
-- On these kits DTR/RTS of the ST-LINK's virtual COM port do not reach the module: the host MCU
-- drives BOOT and CHIP_EN. ST's scripts (X-CUBE-ST67W61 Binaries/NCP_update_*.sh/.bat,
-- st67w611m1.md §3.3, §5) program <BOARD>_Binaries/Bootloader.bin, ST's NCP_Loader built with
-- NCP_FLASH_MODE: it raises BOOT, pulses CHIP_EN and then copies the UART pins between the
-- ST-LINK VCP and the module. After the module is flashed they program the host application
-- back. Files are relative to the release's <BOARD>_Binaries folder; `extload` names a file
-- in STM32CubeProgrammer's ExternalLoader folder (next to STM32_Programmer_CLI).
--
-- A step is {file =, address =, extload = (optional), go = (start it)} for one
-- STM32_Programmer_CLI -w call, or {prompt = "..."} for something a person does on the board.
-- A user copy of this file in ~/.config/ncpflash/boards/ replaces it (e.g. another by-id folder
-- or a board of your own).

local N6_LOADER = "MX25UM51245G_STM32N6570-NUCLEO.stldr"
local H7S3_LOADER = "MX25UW25645G_NUCLEO-H7S3L8.stldr"
-- the NUCLEO-N657X0-Q boots from its external flash only with the BOOT switches set so; it is
-- programmed in development mode (ST's scripts ask for both, in these positions)
local N6_DEV = "NUCLEO-N657X0-Q: set the BOOT1 switch to position 2-3 (development mode; BOOT0 does not matter)"
local N6_RUN = "NUCLEO-N657X0-Q: set BOOT0 and BOOT1 to position 1-2 (boot from external flash), then press the "
  .. "board's reset button"

-- a board whose images all go to internal flash at 0x08000000 and start at once
local function internal(cli, lwip)
  return {
    loader = { { file = "Bootloader.bin", address = 0x08000000, go = true } },
    apps = {
      mission_t01 = { { file = cli, address = 0x08000000, go = true } },
      mission_t02 = { { file = lwip, address = 0x08000000, go = true } },
      mfg = { { file = "UART_bypass.bin", address = 0x08000000, go = true } },
    },
  }
end

local h7s3 = internal()
h7s3.apps.mission_t01 = { { file = "ST67W6X_CLI_Boot.bin", address = 0x08000000 },
  { file = "ST67W6X_CLI_Appli.bin", address = 0x70000000, extload = H7S3_LOADER } }
h7s3.apps.mission_t02 = { { file = "ST67W6X_CLI_LWIP_Boot.bin", address = 0x08000000 },
  { file = "ST67W6X_CLI_LWIP_Appli.bin", address = 0x70000000, extload = H7S3_LOADER } }

local function n6(file)
  return { { prompt = N6_DEV }, { file = file, address = 0x70000000, extload = N6_LOADER }, { prompt = N6_RUN } }
end

return {
  programmer = {
    names = { "STM32_Programmer_CLI", "STM32_Programmer_CLI.exe" },
    -- STM32CubeProgrammer's default install folders (st67w611m1.md §3.3; the second is the
    -- installer's default for a user without root rights), tried after PATH
    dirs = {
      "/usr/local/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin",
      "$HOME/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin",
      "C:\\Program Files\\STMicroelectronics\\STM32Cube\\STM32CubeProgrammer\\bin",
      "$ProgramFiles\\STMicroelectronics\\STM32Cube\\STM32CubeProgrammer\\bin",
    },
    connect = { "-c", "port=swd", "mode=ur" },     -- as ST's scripts connect (also: the Board line)
    loaders = "ExternalLoader",
    timeout = 180,                                -- seconds per call (external flash is slow)
  },
  -- the ST-LINK V3 virtual COM port: ST's Linux script takes /dev/serial/by-id/*STLINK-V3*, the
  -- Windows one the port described as "STMicroelectronics STLink Virtual COM Port"
  vcp = {
    dirs = { "/dev/serial/by-id" },
    match = "STLINK%-V3",
    descriptions = { "STLink Virtual COM Port", "STLINK%-V3" },
    baud = 2000000,                               -- the module at 2 Mbaud, as ST's scripts set the VCP
  },
  -- NCP_Loader blinks, then pulses CHIP_EN with BOOT high; ST's script waits 1 s before QConn
  settle = 1.0,
  -- what the "Board :" line of `STM32_Programmer_CLI -c port=swd mode=ur` may say
  aliases = { ["NUCLEO-H7R3L8"] = "NUCLEO-H7S3L8" },   -- ST's scripts treat the H7R3L8 as the H7S3L8
  ask = { "STLINK-V3SET", "STLINK-V3MINI", "STLINK-V3MINIE" },   -- a bare probe: the user names the board
  order = { "NUCLEO-U575ZI-Q", "NUCLEO-H7S3L8", "NUCLEO-H563ZI", "NUCLEO-N657X0-Q" },   -- ST's menu order
  boards = {
    ["NUCLEO-U575ZI-Q"] = internal("ST67W6X_CLI.bin", "ST67W6X_CLI_LWIP.bin"),
    ["NUCLEO-H563ZI"] = internal("ST67W6X_CLI.bin", "ST67W6X_CLI_LWIP.bin"),
    ["NUCLEO-H7S3L8"] = h7s3,
    ["NUCLEO-N657X0-Q"] = {
      loader = n6("Bootloader.bin"),
      -- a later handshake attempt: the loader in external flash runs again after a reset
      again = { { prompt = "NUCLEO-N657X0-Q: press the board's reset button (the NCP loader starts again)" } },
      apps = {
        mission_t01 = n6("ST67W6X_CLI_FSBL.bin"),
        mission_t02 = n6("ST67W6X_CLI_LWIP_FSBL.bin"),   -- not in X-CUBE-ST67W61 1.2.0 (ST: "not available")
        mfg = n6("UART_bypass.bin"),
      },
    },
  },
}
