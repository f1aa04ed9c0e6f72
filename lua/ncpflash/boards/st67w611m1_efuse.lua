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
  lock_warning = "ST: a module burnt with this data only runs images signed with ST's key "
    .. "(\"binaries only usable with a locked NCP\"); ST's scripts warn that flashing "
    .. "\"will lock the ST67W61M if not yet locked\"",
}
