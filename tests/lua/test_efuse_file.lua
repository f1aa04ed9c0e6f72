-- eFuse without a chip: crypto binding, file formats, decode, plan, MAC slots.
local crypto = require "ncpflash.core.crypto"
local codec = require "ncpflash.core.codec"
local efuse = require "ncpflash.efuse"

local map, board = efuse.load_map("bl616", "st67w611m1")
local E = require "efusedata"
local ZERO, ST_HASH, put, u32, st_like = E.ZERO, E.ST_HASH, E.put, E.u32, E.st_like

local function field(list, name)
  for _, d in ipairs(list) do if d.name == name then return d end end
  error("no field " .. name)
end

local function st_efusedata()
  if not helpers.have_fixtures() then return nil end
  local p = helpers.ncp_binaries .. "/efusedata.bin"
  local f = io.open(p, "rb")
  if not f then return nil end
  f:close()
  return p
end

---------------------------------------------------------------------------------------------------
test("crypto: AES-128-CBC NIST SP 800-38A F.2.1 through the Lua binding", function()
  local key = codec.unhex("2b7e151628aed2a6abf7158809cf4f3c")
  local iv = codec.unhex("000102030405060708090a0b0c0d0e0f")
  local pt = codec.unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    .. "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
  local ct = crypto.aes128_cbc_encrypt(key, iv, pt)
  eq(codec.hex(ct), "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    .. "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7")
  eq(crypto.aes128_cbc_decrypt(key, iv, ct), pt)
  raises(function() crypto.aes128_cbc_encrypt(key, iv, "short") end, "multiple of 16")
  raises(function() crypto.aes128_cbc_encrypt("k", iv, pt) end, "16 bytes")
end)

test("crypto: ECDH derive(A, B.pub) == derive(B, A.pub); closed pairs refuse", function()
  local a <close> = crypto.ecdh_keypair()
  local b <close> = crypto.ecdh_keypair()
  eq(#a:public_xy(), 64)
  local s1, s2 = a:derive(b:public_xy()), b:derive(a:public_xy())
  eq(#s1, 32)
  eq(s1, s2)
  ne(a:public_xy(), b:public_xy())
  local bad = b:public_xy():sub(1, 63) .. string.char(b:public_xy():byte(64) ~ 1)
  raises(function() a:derive(bad) end, "input")
  a:close()
  raises(function() a:public_xy() end, "closed")
end)

test("crypto: PEM public keys and ECDSA verify reject garbage", function()
  raises(function() crypto.pem_public_xy("not a key") end, "input")
  local pem = "-----BEGIN PUBLIC KEY-----\n"
    .. "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0fW2TyTEOuuMJOZMNP/rui8vA2X+\n"
    .. "+EJ/7l7NmDz6KppwwwJ5HaE7kK/slcyNJSQDDr7itig+e/zjE2jZsHZATA==\n"
    .. "-----END PUBLIC KEY-----\n"
  local xy = crypto.pem_public_xy(pem)
  eq(#xy, 64)
  eq(crypto.ecdsa_verify_p256(pem, "msg", string.rep("\1", 64)), false)
  eq(crypto.ecdsa_verify_p256(xy, "msg", string.rep("\1", 64)), false)
end)

test("crypto: ST's room-root PEM parses (fixture)", function()
  if not helpers.have_fixtures() then skip("ST fixtures absent (../shared/fixtures/st67w611m1)") end
  local p = helpers.fixtures .. "/Binaries/QConn_Flash/utils/pem/room_root_publickey_ecc.pem"
  local f = io.open(p, "rb")
  if not f then skip("room_root_publickey_ecc.pem absent from the fixtures") end
  local xy = crypto.pem_public_xy(f:read("a"))
  f:close()
  eq(codec.hex(codec.sha256(xy)), board.root_key_xy_sha256)
end)

---------------------------------------------------------------------------------------------------
test("files: a raw image is exactly 512 bytes; any other size than 512 and 4608 is an input error", function()
  local f = efuse.parse_file(string.rep("\1", 512), "x.bin", map)
  eq(f.format, "raw")
  eq(#f.data, 512)
  -- a cut file is never padded (issue 13: a 100-byte cut of ST's file burnt AES mode and UART disable)
  local e = raises(function() efuse.parse_file("\1\2\3", "x.bin", map) end, "input")
  match(e.message, "x.bin: file size")
  e = raises(function() efuse.parse_file(string.rep("\0", 513), "big.bin", map) end, "input")
  match(e.message, "big.bin: file size")
  match(e.message, "513 bytes")
  raises(function() efuse.parse_file("", "empty.bin", map) end, "input")
end)

test("files: saved format round-trips; a bad CRC names file, offset, expected and found", function()
  local plain = st_like(ST_HASH)
  local saved = efuse.encode_saved(plain, map)
  eq(#saved, 4608)
  local f = efuse.parse_file(saved, "s.bin", map)
  eq(f.format, "saved")
  eq(f.data, plain)
  local bad = string.pack("<I4", (string.unpack("<I4", saved) ~ 1)) .. saved:sub(5)
  local e = raises(function() efuse.parse_file(bad, "s.bin", map) end, "input")
  match(e.message, "^s%.bin: saved eFuse format: CRC32")
  match(e.message, "offset 0")
  match(e.message, ("expected 0x%08X"):format(codec.crc32(plain)))
  eq(e.offset, 0)
  local junk = saved:sub(1, 99) .. "\1" .. saved:sub(101)
  e = raises(function() efuse.parse_file(junk, "j.bin", map) end, "input")
  match(e.message, "offset 99")
end)

test("files: ST's efusedata.bin decrypts with a matching CRC to the §2.6 values (fixture)", function()
  local p = st_efusedata()
  if not p then skip("ST fixtures absent (../shared/fixtures/st67w611m1)") end
  local f = efuse.load_file(p, map)
  eq(f.format, "saved")
  eq(f.data, st_like(ST_HASH))
end)

test("mask: derived mask is 0xFF where the data is non-zero", function()
  eq(efuse.derive_mask("\0\1\0\xFF"), "\0\xFF\0\xFF")
end)

---------------------------------------------------------------------------------------------------
test("decode: the ST-like image shows JTAG disabled, key hash, sign_cfg, locks, unknown bit", function()
  local list = efuse.decode(st_like(ST_HASH), map)
  eq(field(list, "ef_dbg_jtag_0_dis").value, 3)
  eq(field(list, "ef_dbg_jtag_0_dis").meaning, "disabled")
  eq(field(list, "public_key_hash").value, codec.hex(ST_HASH))
  eq(field(list, "sign_cfg").value, 1)
  eq(field(list, "wr_lock_rsvd_1").value, 1)
  eq(field(list, "wr_lock_key_slot_0").value, 1)
  eq(field(list, "wr_lock_key_slot_1").value, 1)
  eq(field(list, "unknown_0xdc_bit26").value, 1)
  eq(field(list, "st_anti_rollback_en").value, 1)
  eq(field(list, "mac_slot_1").meaning, "empty")
  for _, d in ipairs(list) do ne(d.name, "unknown", "every set bit of ST's data is mapped") end
end)

test("decode: unmapped set bits are reported as unknown", function()
  local list = efuse.decode(u32(ZERO, 0x60 + 0x140, 0x10), map)
  local u = field(list, "unknown")
  eq(u.offset, 0x1A0)
  eq(u.meaning, "unknown")
end)

test("decode: MAC slots show reversed storage and check the zero-bit count", function()
  local stored = codec.unhex("dcd2037b8240")
  local ones = 0
  for i = 1, 6 do local b = stored:byte(i); while b > 0 do ones = ones + (b & 1); b = b >> 1 end end
  local d = put(ZERO, 0x14, stored .. string.char(48 - ones))
  local m = field(efuse.decode(d, map), "mac_slot_0")
  eq(m.value, "40:82:7B:03:D2:DC")
  eq(m.meaning, "programmed")
end)

---------------------------------------------------------------------------------------------------
test("plan: bits to set, bits already set, regions in burn order, field diff", function()
  local wanted = st_like(ST_HASH)
  local p = efuse.plan(ZERO, wanted, nil, map)
  eq(#p.conflicts, 0)
  eq(p.empty, false)
  eq(#p.regions, 2)
  eq(p.regions[1].start, 128)
  eq(p.regions[2].start, 0)
  eq(p.after, wanted)
  local text = table.concat(efuse.plan_text(p), "\n")
  match(text, "sign_cfg%s+off %-> SECURE BOOT")
  match(text, "writes, in this order: 128%.%.255, 0%.%.127")
  local again = efuse.plan(wanted, wanted, nil, map)
  eq(again.empty, true)
  eq(#again.regions, 0)
  eq(again.bits_already, p.bits_to_set)
end)

test("plan: a wanted 0 under the mask where the chip has 1 is a conflict", function()
  local current = u32(ZERO, 0, 0x0C000000)
  local wanted = u32(ZERO, 0, 0x04000000)
  local mask = u32(ZERO, 0, 0xFFFFFFFF)
  local p = efuse.plan(current, wanted, mask, map)
  eq(#p.conflicts, 1)
  eq(p.conflicts[1].offset, 3)
  eq(p.conflicts[1].field, "ef_dbg_jtag_0_dis")
  -- the derived mask works on bytes: a byte the file leaves 0 is not compared
  eq(#efuse.plan(current, wanted, nil, map).conflicts, 1)
  eq(#efuse.plan(current, u32(ZERO, 0, 0x00010000), nil, map).conflicts, 0)
end)

test("plan: bits to set inside a write-locked key slot are conflicts", function()
  local current = u32(ZERO, 0x7C, 1 << 17)              -- wr_lock_key_slot_0
  local p = efuse.plan(current, put(ZERO, 0x1C, "\1"), nil, map)
  eq(#p.conflicts, 1)
  match(p.conflicts[1].reason, "write%-locked %(wr_lock_key_slot_0%)")
end)

---------------------------------------------------------------------------------------------------
test("mac: parse, first free customer slot, already programmed, none free", function()
  local mac = efuse.parse_mac("02:11:22:33:44:55")
  eq(codec.hex(mac), "021122334455")
  raises(function() efuse.parse_mac("01:11:22:33:44:55") end, "multicast")
  raises(function() efuse.parse_mac("02:11:22:33:44") end, "usage")
  raises(function() efuse.parse_mac("zz:11:22:33:44:55") end, "usage")
  local wanted, mask, slot = efuse.mac_job(ZERO, mac, map)
  eq(slot, 0x64)
  eq(wanted:sub(0x65, 0x6A), mac:reverse())
  eq(mask:sub(0x65, 0x6B), string.rep("\xFF", 7))
  local cur = wanted
  local w2, _, slot2 = efuse.mac_job(cur, efuse.parse_mac("02:00:00:00:00:01"), map)
  eq(slot2, 0x70)
  eq(select(3, efuse.mac_job(cur, mac, map)), 0x64)
  eq((efuse.mac_job(cur, mac, map)), nil)
  local full = put(cur, 0x70, w2:sub(0x71, 0x77))
  raises(function() efuse.mac_job(full, efuse.parse_mac("02:00:00:00:00:02"), map) end, "no free customer MAC slot")
end)

test("cli: efuse decode of a bad file exits 7; of a good one shows fields", function()
  local dir = helpers.tmpdir()
  local big = helpers.writefile(dir .. "/big.bin", string.rep("\1", 600))
  local r = helpers.run{ "efuse", "decode", big }
  eq(r.code, 7)
  match(r.err, "big%.bin: file size")
  local bad = efuse.encode_saved(st_like(ST_HASH), map)
  bad = "\0\0\0\0" .. bad:sub(5)
  r = helpers.run{ "efuse", "decode", helpers.writefile(dir .. "/crc.bin", bad) }
  eq(r.code, 7)
  match(r.err, "CRC32")
  r = helpers.run{ "efuse", "decode", helpers.writefile(dir .. "/ok.bin", efuse.encode_saved(st_like(ST_HASH), map)) }
  eq(r.code, 0)
  match(r.out, "ef_dbg_jtag_0_dis%s+3 %(disabled%)")
  match(r.out, "sign_cfg%s+1 %(SECURE BOOT%)")
  r = helpers.run{ "efuse", "frobnicate" }
  eq(r.code, 2)
end)
