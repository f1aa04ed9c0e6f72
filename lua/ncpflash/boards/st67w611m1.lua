-- ST ST67W611M1 Wi-Fi/BLE NCP module (QCC743 = BL616 inside, 4 MiB flash). Data only.
return {
  name = "st67w611m1",
  description = "ST ST67W611M1 module (QCC743/BL616, 4 MiB flash)",
  chip = "bl616",
  chipname = "qcc743",          -- $(CHIPNAME) in QConn flash_prog_cfg.ini files
  flash_size = 4 * 1024 * 1024,
  -- Reset/boot wiring through the adapter's modem lines (protocol.md §1.2, the Bouffalo/QConn
  -- convention): RTS drives CHIP_EN, DTR drives BOOT; an asserted line pulls its pin low.
  reset = {
    lines = { en = "rts", boot = "dtr" },
    active = "low",
    -- enter the ROM's UART download mode: BOOT high while CHIP_EN rises
    enter = { { boot = 1, en = 0 }, { wait = 0.05 }, { en = 1 }, { wait = 0.10 }, { boot = 0 },
              { wait = 0.02 } },
    -- run the application from flash: BOOT low while CHIP_EN rises
    run = { { boot = 0, en = 0 }, { wait = 0.05 }, { en = 1 } },
  },
  -- ST release folder layout (X-CUBE-ST67W61 ST67W6X_Scripts/Binaries/NCP_Binaries)
  release = {
    subdirs = { "", "Binaries/NCP_Binaries", "NCP_Binaries", "ST67W6X_Scripts/Binaries/NCP_Binaries" },
    ini = {
      mission_t01 = "^mission_t01_flash_prog_cfg.*%.ini$",
      mission_t02 = "^mission_t02_flash_prog_cfg.*%.ini$",
      mfg = "^mfg_flash_prog_cfg.*%.ini$",
    },
    -- the profile images: PREFIX<version>.bin; 1.3.0 templates name PREFIX .. placeholder .. ".bin"
    -- and ncpflash picks the version (ncpflash.release_layout)
    firmware = {
      mission_t01 = "st67w611m_mission_t01_v",
      mission_t02 = "st67w611m_mission_t02_v",
      mfg = "st67w611m_mfg_v",
    },
    placeholder = "xxx",
    -- ST's scripts burn this file with the flash (QConn --efuse=NCP_Binaries/efusedata.bin)
    efuse_file = "efusedata.bin",
    -- the 0x91 challenge key shipped in the release, relative to its Binaries folder
    root_keys = { "QConn_Flash/utils/pem/room_root_publickey_ecc.pem",
      "NCP_info/utils/pem/room_root_publickey_ecc.pem" },
    -- the host boards (ST's NUCLEO kits): boards/st67w611m1_hosts.lua
    hosts = "st67w611m1_hosts",
  },
}
