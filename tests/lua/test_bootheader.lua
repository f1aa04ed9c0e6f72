-- BL616 boot headers (BFNP, 256 B): CRCs, bootcfg bits, image SHA-256, signing; OTA headers.
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"
local ota = require "ncpflash.ota"
local codec = require "ncpflash.core.codec"
local romcodec = require "ncpflash.romcodec"

local function payload(n) return helpers.random_bytes(n, 99) end

test("synthetic unsigned image: all checks pass", function()
  local data = header.build(bl616, { image = payload(5000), offset = 0x1000 })
  eq(#data, 0x1000 + 5000)
  local h = header.parse(bl616, data, { file = "img.bin" })
  eq(#h.problems, 0)
  eq(h.signed, false)
  eq(h.encrypted, false)
  eq(h.flash_cfg_crc_ok, true)
  eq(h.clock_cfg_crc_ok, true)
  eq(h.header_crc_ok, true)
  eq(h.image_sha_ok, true)
  eq(h.image_offset, 0x1000)
  eq(h.image_len, 5000)
  eq(h.bootcfg.no_segment, 1)
  eq(h.boot_entry, 0xA0000000)
end)

test("signed image exposes the public-key hash", function()
  local pk = string.rep("\x5A", 64)
  local data = header.build(bl616, { image = payload(100), sign = 1, public_key = pk })
  local h = header.parse(bl616, data)
  eq(h.signed, true)
  eq(h.public_key_hash, codec.sha256(pk))
  eq(h.public_key_crc_ok, true)
  eq(h.signature_len, 64)
end)

test("each CRC and the image hash are checked", function()
  local data = header.build(bl616, { image = payload(300) })
  local function poke(d, off) return d:sub(1, off) .. string.char(d:byte(off + 1) ~ 1) .. d:sub(off + 2) end
  local h = header.parse(bl616, poke(data, 20))
  eq(h.flash_cfg_crc_ok, false)
  eq(h.problems[1].field, "flash-config CRC32")
  h = header.parse(bl616, poke(data, 106))
  eq(h.clock_cfg_crc_ok, false)
  h = header.parse(bl616, poke(data, 250))
  eq(h.header_crc_ok, false)
  h = header.parse(bl616, poke(data, #data - 1))
  eq(h.image_sha_ok, false)
  eq(h.problems[1].field, "image SHA-256")
  header.check(bl616, poke(data, #data - 1), "img.bin")   -- the ROM boots past an image hash: not refused
  local e = raises(function() header.check(bl616, poke(data, 250), "img.bin") end, "input")
  match(e.message, "img%.bin: bl616 boot header: header CRC32")
end)

test("crc_ignore with 0xDEADBEEF skips the header CRC", function()
  local data = header.build(bl616, { image = payload(64), crc_ignore = 1 })
  data = data:sub(1, 252) .. string.pack("<I4", 0xDEADBEEF) .. data:sub(257)
  local h = header.parse(bl616, data)
  eq(h.header_crc_ok, nil)
  eq(#h.problems, 0)
end)

test("not a header: input error naming the field", function()
  local e = raises(function() header.parse(bl616, string.rep("\0", 300), { file = "x.bin" }) end, "input")
  eq(e.field, "magic")
  match(e.message, "x%.bin")
  e = raises(function() header.parse(bl616, "BFNP", { file = "x.bin" }) end, "input")
  eq(e.field, "length")
end)

test("chip flash_cfg builds 84 bytes", function()
  local cfg = romcodec.flash_cfg_bytes(bl616)
  eq(#cfg, 84)
  eq(cfg:byte(1), 0x04)
  eq(string.unpack("<I2", cfg, 15), 256)   -- page size
end)

test("OTA header round trip", function()
  local body = payload(1000)
  local head = "QCC74X_OTAVer1.0" .. "RAW " .. string.pack("<I4", #body) .. "\1\2\3\4\5\6\7\8"
    .. ("QCC_Module_v1.1" .. "\0") .. ("2.0.1" .. string.rep("\0", 11)) .. codec.sha256(body)
  head = head .. string.rep("\xFF", 512 - #head)
  local h = ota.parse(head .. body, { file = "a.ota" })
  eq(h.type, "RAW")
  eq(h.version, "2.0.1")
  eq(h.payload_sha_ok, true)
  h = ota.parse(head .. body .. "x", { file = "a.ota" })
  eq(h.problems[1].field, "payload length")
  raises(function() ota.parse(head .. body:sub(2) .. "y", { file = "a.ota", strict = true }) end, "input")
end)

test("ST boot2, mission and mfg images (fixtures)", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  for _, n in ipairs({ "st67w611m_boot2_v8.1.9.bin", "st67w611m_mission_t01_v2.0.89.bin",
                       "st67w611m_mission_t02_v2.0.89.bin", "st67w611m_mfg_v2.0.89.bin" }) do
    local data = helpers.readfile(helpers.ncp_binaries .. "/" .. n)
    local h = header.parse(bl616, data, { file = n })
    eq(#h.problems, 0, n)
    eq(h.signed, true, n)
    eq(h.bootcfg_word, 0x72CD0101, n)
    eq(h.image_sha_ok, true, n)
    eq(h.image_offset + h.image_len, #data, n)
    eq(codec.hex(h.public_key_hash), "9e0cb12265b514e65071743555e9c9d1937d1287a7ff63aa5add5d76c08b35eb", n)
    eq(h.flash_cfg_crc_ok and h.clock_cfg_crc_ok and h.header_crc_ok, true, n)
  end
end)

test("ST .bin.ota and .xz.ota (fixtures)", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local raw = ota.parse(helpers.readfile(helpers.ncp_binaries .. "/st67w611m_mission_t02_v2.0.89.bin.ota"))
  eq(raw.type, "RAW")
  eq(raw.payload_sha_ok, true)
  eq(raw.payload, helpers.readfile(helpers.ncp_binaries .. "/st67w611m_mission_t02_v2.0.89.bin"))
  local xz = ota.parse(helpers.readfile(helpers.ncp_binaries .. "/st67w611m_mission_t02_v2.0.89.xz.ota"))
  eq(xz.type, "XZ")
  eq(xz.version, "2.0.89")
  eq(xz.payload_sha_ok, true)
end)

test("ST flash_para.bin equals the chip's named flash_cfg fields (fixture)", function()
  local f = helpers.fixtures
    and (helpers.fixtures .. "/Binaries/QConn_Flash/chips/qcc743/efuse_bootheader/flash_para.bin")
  if not f or not io.open(f) then skip("fixtures absent") end
  eq(romcodec.flash_cfg_bytes(bl616), helpers.readfile(f))
end)
