-- Issue 13 (integrity): never flash a boot image that cannot boot, never enable secure boot over
-- one. Items 2 and 17 (image/chip mismatch, unsigned image on a secure-boot chip); item 13 (info
-- with the connected chip's layout) is tests/lua/test_chip_layouts.lua.
local header = require "ncpflash.header"
local chips = require "ncpflash.chip"
local codec = require "ncpflash.core.codec"
local synth = require "synth"
local signing = require "signing"

local bl616 = chips.load("bl616")

local function flash_cmds(sim)
  local n = 0
  for _, l in ipairs(sim:log_lines()) do
    if l:match("^0x3[01CF] ") then n = n + 1 end
  end
  return n
end

local function images(dir)
  local b2 = header.build(bl616, { image = synth.compressible(45 * 1024, 3), offset = 0x2000 })
  local fw = header.build(bl616, { image = synth.compressible(300 * 1024, 4), offset = 0x1000 })
  return b2, fw, dir
end

test("2: boot images whose body does not match the header are refused before anything is sent", function()
  local dir = helpers.tmpdir()
  local b2, fw = images(dir)
  local good_b2 = helpers.writefile(dir .. "/b2.bin", b2)
  local good_fw = helpers.writefile(dir .. "/fw.bin", fw)
  local cases = {
    { "FW cut to 100,000 bytes", good_b2, helpers.writefile(dir .. "/fw_cut.bin", fw:sub(1, 100000)),
      "fw_cut%.bin @0x10000: .*image length" },
    { "boot2 cut to 4,000 bytes", helpers.writefile(dir .. "/b2_cut.bin", b2:sub(1, 4000)), good_fw,
      "b2_cut%.bin @0x0: .*image length" },
    { "one flipped byte in the FW body", good_b2,
      helpers.writefile(dir .. "/fw_flip.bin", fw:sub(1, 0x5000) .. string.char(fw:byte(0x5001) ~ 1) .. fw:sub(0x5002)),
      "fw_flip%.bin @0x10000: .*image SHA%-256" },
  }
  local sim <close> = helpers.ncpsim{}
  for _, c in ipairs(cases) do
    local r = helpers.run{ "--port", sim.url, "flash", "0x0", c[2], "0x10000", c[3] }
    eq(r.code, 7, c[1] .. ": " .. r.err)
    match(r.err, c[4], c[1])
    match(r.err, "%-%-allow%-bad%-image", c[1] .. ": the override is named")
  end
  eq(#sim:log_lines(), 0, "nothing reached the device")
  -- the same through an ini
  local set = synth.release(dir .. "", { fw_name = "synth_fw.bin" })
  local f = set.files[3]
  helpers.writefile(f.path, f.data:sub(1, 100000))
  local r = helpers.run{ "--port", sim.url, "flash", "--config", set.ini }
  eq(r.code, 7, r.err)
  match(r.err, "image length")
  eq(#sim:log_lines(), 0, "nothing reached the device")
end)

test("2: --allow-bad-image flashes a deliberately broken image, and says so", function()
  local dir = helpers.tmpdir()
  local _, fw = images(dir)
  local cut = fw:sub(1, 100000)
  local f = helpers.writefile(dir .. "/fw_cut.bin", cut)
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "--allow-bad-image", "0x10000", f }
  eq(r.code, 0, r.err)
  match(r.err, "fw_cut%.bin @0x10000: .*image length.*flashed anyway %(%-%-allow%-bad%-image%)")
  sim:stop()
  eq(sim:flash():sub(0x10001, 0x10000 + #cut), cut)
end)

test("17: a BL808-layout image to a BL616 is refused (exit 6) before anything is written", function()
  local dir = helpers.tmpdir()
  local bl808 = chips.load("bl808")
  local img = header.build_flash(bl808, helpers.random_bytes(20000, 1))
  local f = helpers.writefile(dir .. "/bl808_app.bin", img)
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  eq(r.code, 6, r.err)
  match(r.err, "bl808_app%.bin @0x10000: a bl808 boot image %(352%-byte header%), but the chip is bl616 %(256%-byte")
  eq(flash_cmds(sim), 0, "nothing erased or written")
end)

test("17: an unsigned image to a chip with secure boot on gets a warning; secure boot off none", function()
  local dir = helpers.tmpdir()
  local _, fw = images(dir)
  local f = helpers.writefile(dir .. "/fw.bin", fw)
  -- ncpsim's default boot info has sign = 1 (secure boot on)
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  eq(r.code, 0, r.err)
  match(r.err, "fw%.bin @0x10000 is an unsigned boot image, but the chip has secure boot on")
  -- the same boot info with sign = 0 (byte 4)
  local off = "0200160600000100a7128201dcd2037b82401c008f758090e8805be3"
  local sim2 <close> = helpers.ncpsim{ "--boot-info", off }
  r = helpers.run{ "--port", sim2.url, "flash", "0x10000", f }
  eq(r.code, 0, r.err)
  nomatch(r.err, "unsigned boot image")
end)

-- the secure-boot guard: hash and signature of every boot image against the key being burnt
skip_if(not signing.available(), "the openssl tool is not installed (Debian package openssl)")

local efuse = require "ncpflash.efuse"
local E = require "efusedata"
local map = efuse.load_map("bl616", "st67w611m1")

test("2: the secure-boot guard checks each image's hash and signature, not only the key hash", function()
  local dir = helpers.tmpdir()
  local key = signing.keypair()
  local other = signing.keypair()
  local body2, bodyfw = string.rep("\x5A", 4096), synth.compressible(8192, 9)
  local b2 = signing.image(bl616, key, { image = body2, offset = 0x2000 })
  local fw = signing.image(bl616, key, { image = bodyfw, offset = 0x1000 })
  local efile = helpers.writefile(dir .. "/ef.bin", efuse.encode_saved(E.st_like(codec.sha256(key.xy)), map))
  local function guard(sim)
    return helpers.run{ "--port", sim.url, "efuse", "burn", efile, "--audit", dir .. "/audit" }
  end
  -- good images: the dry run passes the guard
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "0x0", helpers.writefile(dir .. "/b2.bin", b2), "0x10000",
    helpers.writefile(dir .. "/fw.bin", fw) }
  eq(r.code, 0, r.err)
  r = guard(sim)
  eq(r.code, 0, r.err)
  match(r.out, "secure%-boot check: .*hash and signature verified")
  -- a body that does not match the header hash (flashed on purpose)
  local bad = fw:sub(1, 0x1010) .. string.char(fw:byte(0x1011) ~ 0x80) .. fw:sub(0x1012)
  r = helpers.run{ "--port", sim.url, "flash", "--allow-bad-image", "0x10000",
    helpers.writefile(dir .. "/bad.bin", bad) }
  eq(r.code, 0, r.err)
  r = guard(sim)
  eq(r.code, 6, r.err)
  match(r.err, "refusing to enable secure boot: the image at FW @0x10000 does not match its header's SHA%-256")
  -- the burnt key's public key in the block, but signed by another key
  local forged = header.build(bl616, { image = bodyfw, offset = 0x1000, sign = 1, public_key = key.xy,
    signature = signing.sign(other, bodyfw) })
  r = helpers.run{ "--port", sim.url, "flash", "0x10000", helpers.writefile(dir .. "/forged.bin", forged) }
  eq(r.code, 0, r.err)
  r = guard(sim)
  eq(r.code, 6, r.err)
  match(r.err, "refusing to enable secure boot: the signature of the image at FW @0x10000 does not verify")
  local writes = 0
  for _, l in ipairs(sim:log_lines()) do if l:match("^0x[48]0 ") then writes = writes + 1 end end
  eq(writes, 0, "no eFuse write")
end)
