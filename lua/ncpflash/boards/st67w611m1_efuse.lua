-- ST67W611M1 eFuse facts (data only; read by ncpflash.efuse next to chips/bl616_efuse.lua).
-- ncpflash ships no vendor files: keys are named here and given by path on the command line.
return {
  board = "st67w611m1",
  -- 0x91 challenge: signed by Bouffalo's "room root" key; ST ships its public half as
  -- QConn_Flash/utils/pem/room_root_publickey_ecc.pem (protocol.md §6.8). --root-key PATH.
  root_key_file = "room_root_publickey_ecc.pem",
  root_key_hint = "ST67W6X_Scripts/Binaries/QConn_Flash/utils/pem/room_root_publickey_ecc.pem",
  -- SHA-256 of that key's X||Y (a fingerprint, not the key): a different key is accepted only
  -- because the user named it, and ncpflash says so.
  root_key_xy_sha256 = "c9959bc3e2dfe60fffcc688fad6c31e1ef1c7d72d450ff91b8d8cd47343dd7ae",
  -- SHA-256 of the public key that signs every ST image (st67w611m1.md §2.5)
  st_signing_key_sha256 = "9e0cb12265b514e65071743555e9c9d1937d1287a7ff63aa5add5d76c08b35eb",
  -- where the images the secure-boot guard checks live (boot2, firmware)
  boot_images = { { name = "boot2", address = 0x0 }, { name = "FW", address = 0x10000 } },
  -- ST's efusedata.bin as decoded in st67w611m1.md §2.6 (documentation and tests)
  st_efusedata = {
    file = "efusedata.bin",
    words = { [0x00] = 0x0C000000, [0x5C] = 0x00000080, [0x7C] = 0x00061000, [0xDC] = 0x04000000 },
  },
  -- board-level readings of chip bits (shown next to the chip's own name)
  fields = {
    { name = "st_anti_rollback_en", offset = 0x7C, bits = { 12, 12 }, src = "ST",
      description = "ST driver (w61_at_sys.c): anti-rollback enable (EFUSE_ANTI_ROLL_BACK_EN_ADDR 0x7C bit 12)" },
  },
  -- ST's chip information (NCP_get_chip_info: X-CUBE-ST67W61 Binaries/NCP_info/read_chip_info.py,
  -- 1.2.0 and later), decoded by ncpflash.chipinfo for info, efuse read/decode and
  -- st67w611m1/chip_info; the fields, offsets and rules are ST's, in the order ST prints them
  chip_info = {
    tool = "ST's NCP_get_chip_info",
    fields = {
      { "JTAG", "choice", word = 0x00, bits = { 26, 27 }, values = { [3] = "Disabled" }, default = "Enabled" },
      { "Public Key", "filled", offset = 0x1C, len = 32 },
      { "Anti-rollback", "choice", word = 0x7C, bits = { 12, 12 }, values = { [1] = "Enabled" }, default = "Disabled" },
      { "Anti-rollback Bootloader", "bitlength", offset = 0x170, len = 16 },
      { "Anti-rollback Application", "bitlength", offset = 0x180, len = 32 },
      { "Default MAC Address", "mac", offset = 0x14, len = 6 },
      { "Customer MAC Address1", "mac", offset = 0x64, len = 6 },
      { "Customer MAC Address2", "mac", offset = 0x70, len = 6 },
      { "Part Number", "text", offset = 0x100, len = 24, stop = 0x03, invalid = "Invalid Part Number" },
      { "Manufacturing Year/Week", "year_week", offset = 0x11A },
      { "BOM Id", "hex", offset = 0x118, len = 2 },
    },
    -- RF trims: {row, kind, en = {word, bit}, value = {word, first bit, length}, parity = {word, bit}}
    trims = {
      { "wifi_hp_poffset0", kind = "wifi", en = { 0xCC, 26 }, value = { 0xC0, 0, 15 }, parity = { 0xC0, 15 } },
      { "wifi_hp_poffset1", kind = "wifi", en = { 0xCC, 27 }, value = { 0xC0, 16, 15 }, parity = { 0xC0, 31 } },
      { "wifi_hp_poffset2", kind = "wifi", en = { 0xCC, 28 }, value = { 0xC4, 0, 15 }, parity = { 0xC4, 15 } },
      { "wifi_lp_poffset0", kind = "wifi", en = { 0xCC, 29 }, value = { 0xC4, 16, 15 }, parity = { 0xC4, 31 } },
      { "wifi_lp_poffset1", kind = "wifi", en = { 0xCC, 30 }, value = { 0xC8, 0, 15 }, parity = { 0xC8, 15 } },
      { "wifi_lp_poffset2", kind = "wifi", en = { 0xCC, 31 }, value = { 0xC8, 16, 15 }, parity = { 0xC8, 31 } },
      { "ble_poffset0", kind = "ble", en = { 0xD0, 26 }, value = { 0xCC, 0, 25 }, parity = { 0xCC, 25 } },
      { "ble_poffset1", kind = "ble", en = { 0xD0, 27 }, value = { 0xD0, 0, 25 }, parity = { 0xD0, 25 } },
      { "ble_poffset2", kind = "ble", en = { 0xD0, 28 }, value = { 0xD4, 0, 25 }, parity = { 0xD4, 25 } },
      { "xtal0", kind = "xtal", en = { 0xEC, 7 }, value = { 0xEC, 0, 6 }, parity = { 0xEC, 6 } },
      { "xtal1", kind = "xtal", en = { 0xF0, 31 }, value = { 0xF4, 26, 6 }, parity = { 0xF0, 30 } },
      { "xtal2", kind = "xtal", en = { 0xEC, 23 }, value = { 0xF4, 20, 6 }, parity = { 0xF0, 28 } },
    },
  },
  lock_warning = "ST: a module burnt with this data only runs images signed with ST's key "
    .. "(\"binaries only usable with a locked NCP\"); ST's scripts warn that flashing "
    .. "\"will lock the ST67W61M if not yet locked\"",
}
