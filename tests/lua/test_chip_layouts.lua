-- Boot headers are read with the chip's own layout everywhere (issue 20, item 1): `info` on a
-- connected BL702L and `image info` on a BL702L file; chip files inherit from a base (item 4).
local header = require "ncpflash.header"
local partition = require "ncpflash.partition"
local chips = require "ncpflash.chip"
local codec = require "ncpflash.core.codec"

local function result(out)
  for _, e in ipairs(helpers.json_lines(out)) do
    if e.event == "result" then return e end
  end
end

test("image info: a BL702L image (240-byte header) is read with its layout, with or without --chip", function()
  local dir = helpers.tmpdir()
  local bl702l = chips.load("bl702l")
  local app = helpers.random_bytes(20000, 5)
  local img = header.build_flash(bl702l, app)
  helpers.writefile(dir .. "/fw.bin", img)
  for _, pre in ipairs({ {}, { "--chip", "bl702l" } }) do
    local argv = { table.unpack(pre) }
    table.move({ "--json", "image", "info", dir .. "/fw.bin" }, 1, 4, #argv + 1, argv)
    local r = helpers.run(argv)
    eq(r.code, 0, r.err .. r.out)
    local res = result(r.out)
    eq(res.chip, "bl702l")
    eq(res.header_size, 240)
    eq(res.image_offset, 0x1000)
    eq(res.image_len, 20000)
    eq(res.sha_ok, true)
    eq(res.problems, 0)
    match(table.concat(res.summary, "\n"), "bl702l layout, 240 bytes")
  end
  -- a damaged header CRC: no layout fits, so it is reported against the --chip's layout (exit 7)
  local bad = img:sub(1, 237) .. string.char(img:byte(238) ~ 0xFF) .. img:sub(239)
  helpers.writefile(dir .. "/bad.bin", bad)
  local r = helpers.run({ "--chip", "bl702l", "image", "info", dir .. "/bad.bin" })
  eq(r.code, 7, r.err .. r.out)
  match(r.out, "bl702l layout")
  match(r.out, "PROBLEM: header CRC32 at 0xEC")
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

test("info on a BL702L: the image on flash is read with the BL702L header layout", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl702l" })
  local dir = helpers.tmpdir()
  local bl702l = chips.load("bl702l")
  local app = helpers.random_bytes(30000, 6)
  local img = header.build_flash(bl702l, app)
  helpers.writefile(dir .. "/fw.bin", img)
  helpers.writefile(dir .. "/pt.bin", partition.build({
    { type = 0, name = "FW", address0 = 0x10000, size0 = 0x20000 } }))
  local r = helpers.run({ "--port", sim.url, "flash", "0xE000", dir .. "/pt.bin", "0x10000", dir .. "/fw.bin" })
  eq(r.code, 0, r.err)
  r = helpers.run({ "--port", sim.url, "--json", "info" })
  eq(r.code, 0, r.err)
  local res = result(r.out)
  eq(#res.images, 1)
  local im = res.images[1]
  eq(im.kind, "image")
  eq(im.image_offset, 0x1000)
  eq(im.image_len, #img - 0x1000, "the application length from the 240-byte header")
  eq(im.size, #img)
  eq(im.sha_ok, true, "the on-chip SHA-256 matches the header's")
  eq(im.header_sha256, codec.hex(codec.sha256(img:sub(0x1001))))
  r = helpers.run({ "--port", sim.url, "info" })
  match(r.out, "FW +slot 0 @0x010000: unsigned image, " .. #img .. " bytes %(code %d+ at %+0x1000%), SHA%-256 %x+ ok")
end)
