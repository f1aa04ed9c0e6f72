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

test("chip inheritance: a built-in chip lists only what differs from its base", function()
  local bl616, bl702l = chips.load("bl616"), chips.load("bl702l")
  eq(bl702l.base, "bl616")
  eq(bl702l.name, "bl702l", "the name is never inherited")
  eq(bl702l.flash_cfg, bl616.flash_cfg, "the 84-byte flash configuration comes from the base")
  eq(bl702l.sector_size, 4096)
  eq(bl702l.header.size, 240, "a field the chip gives replaces the base's whole")
  eq(bl702l.header.cpu_enable, nil, "no BL616 header offsets leak into the BL702L layout")
  eq(bl702l.boot_info.sw_cfg1, nil)
  eq(bl702l.rom_timeout, false)
  eq(bl702l.mac_len, 8)
  local raw = require("ncpflash.chips.bl702l")
  eq(raw.flash_cfg, nil, "the file itself does not repeat the base's fields")
  for _, n in ipairs({ "bl602", "bl702", "bl702l", "bl808" }) do
    local c = chips.load(n)
    for _, f in ipairs({ "sector_size", "tx_chunk", "read_chunk", "erase_floor_ms", "xz", "flash_cfg", "header" }) do
      ok(c[f] ~= nil, n .. "." .. f)
    end
    for _, f in ipairs({ "tx_chunk_max", "erase_pending", "header_size" }) do eq(c[f], nil, n .. "." .. f) end
  end
end)

test("chip inheritance: a user chip file with base = ...; unknown bases and loops are usage errors", function()
  local xdg = helpers.tmpdir()
  local dir = xdg .. "/ncpflash/chips"
  require("ncpflash.core.sys").mkdirs(dir)
  helpers.writefile(dir .. "/myl.lua", 'return { base = "bl702l", name = "myl", description = "BL702L rev X",\n'
    .. '  rom_versions = { [0x12345678] = "BL702L rev X" } }\n')
  helpers.writefile(dir .. "/loopa.lua", 'return { base = "loopb", name = "loopa" }\n')
  helpers.writefile(dir .. "/loopb.lua", 'return { base = "loopa", name = "loopb" }\n')
  helpers.writefile(dir .. "/orphan.lua", 'return { base = "nosuchchip", name = "orphan" }\n')
  local work = helpers.tmpdir()
  helpers.writefile(work .. "/app.bin", helpers.random_bytes(4000, 3))
  local env = { env = { XDG_CONFIG_HOME = xdg } }
  local r = helpers.run({ "--chip", "myl", "--json", "image", "create", work .. "/app.bin", work .. "/out.bin" }, env)
  eq(r.code, 0, r.err)
  eq(result(r.out).header_size, 240, "the BL702L layout through two levels of base")
  r = helpers.run({ "--chip", "loopa", "image", "create", work .. "/app.bin", work .. "/o2.bin" }, env)
  eq(r.code, 2, r.err)
  match(r.err, "leads back to itself")
  r = helpers.run({ "--chip", "orphan", "image", "create", work .. "/app.bin", work .. "/o3.bin" }, env)
  eq(r.code, 2, r.err)
  match(r.err, 'base "nosuchchip" is not a chip file')
end)

test("the chip's sector_size drives the blank-run skip (no hard-coded 4096)", function()
  local xdg = helpers.tmpdir()
  require("ncpflash.core.sys").mkdirs(xdg .. "/ncpflash/chips")
  helpers.writefile(xdg .. "/ncpflash/chips/bigsector.lua",
    'return { base = "bl616", name = "bigsector", description = "BL616, 64 KiB sectors", sector_size = 65536 }\n')
  local dir = helpers.tmpdir()
  -- 64 KiB of data (incompressible: plain writes), 32 KiB erased (8 whole 4 KiB sectors, no
  -- whole 64 KiB one), 8 KiB of data
  local data = helpers.random_bytes(65536, 1) .. string.rep("\xFF", 32768) .. helpers.random_bytes(8192, 2)
  helpers.writefile(dir .. "/d.bin", data)
  local sent = {}
  for _, chipname in ipairs({ "bl616", "bigsector" }) do
    local sim <close> = helpers.ncpsim({})
    local r = helpers.run({ "--port", sim.url, "--chip", chipname, "--json", "flash", "0x10000", dir .. "/d.bin" },
      { env = { XDG_CONFIG_HOME = xdg } })
    eq(r.code, 0, r.err)
    sent[chipname] = result(r.out).bytes_sent
    sim:stop()
    eq(sim:flash():sub(0x10001, 0x10000 + #data), data, chipname .. ": flash content")
  end
  eq(sent.bl616, #data - 32768, "4 KiB sectors: the erased run is not sent")
  eq(sent.bigsector, #data, "64 KiB sectors: no whole sector is blank, everything is sent")
end)
