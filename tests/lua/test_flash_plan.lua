-- The flash plan: validation before anything is sent, skip_mode splitting, ADDR FILE pairs.
local flash = require "ncpflash.flash"
local codec = require "ncpflash.core.codec"

local function data(n, seed) return helpers.random_bytes(n, seed or 1) end

test("a valid plan keeps order, sizes and host SHA-256", function()
  local p = flash.plan({ { name = "b", address = 0x2000, data = data(100) },
                         { name = "a", address = 0x0, data = data(0x2000, 2) } }, { flash_size = 0x10000 })
  eq(#p.regions, 2)
  eq(p.regions[1].name, "b")
  eq(p.bytes, 0x2000 + 100)
  eq(p.regions[2].sha256, codec.sha256(data(0x2000, 2)))
end)

test("overlap names both regions", function()
  local e = raises(function()
    flash.plan({ { name = "a", address = 0, data = data(0x1001) }, { name = "b", address = 0x1000, data = "x" } })
  end, "input")
  match(e.message, "b @0x1000: overlaps a @0x0 %(0x0%.%.0x1000%)")
end)

test("beyond the flash size", function()
  local e = raises(function()
    flash.plan({ { name = "a", address = 0xFF00, data = data(0x101) } }, { flash_size = 0x10000 })
  end, "input")
  match(e.message, "a @0xFF00: 257 bytes end at 0x10001, beyond the 65536%-byte flash")
end)

test("bigger than its partition", function()
  local e = raises(function()
    flash.plan({ { name = "FW", address = 0x10000, data = data(11), max_size = 10 } })
  end, "input")
  match(e.message, "FW @0x10000: data is 11 bytes, larger than its partition %(10 bytes")
end)

test("missing and empty files", function()
  local dir = helpers.tmpdir()
  local e = raises(function() flash.plan({ { address = 0, file = dir .. "/none.bin" } }) end, "input")
  match(e.message, "none%.bin @0x0: cannot read")
  helpers.writefile(dir .. "/empty.bin", "")
  e = raises(function() flash.plan({ { address = 0, file = dir .. "/empty.bin" } }) end, "input")
  match(e.message, "empty%.bin @0x0: .*empty%.bin is empty")
end)

test("skip ranges split regions", function()
  local d = data(0x3000)
  local p = flash.plan({ { name = "fw", address = 0x10000, data = d } },
    { skip = { { address = 0x11000, length = 0x1000 } } })
  eq(#p.regions, 2)
  eq(p.regions[1].address, 0x10000)
  eq(p.regions[1].data, d:sub(1, 0x1000))
  eq(p.regions[2].address, 0x12000)
  eq(p.regions[2].data, d:sub(0x2001))
  eq(p.bytes, 0x2000)
end)

test("ADDR FILE pairs", function()
  local r = flash.parse_pairs({ "0x10000", "/x/fw.bin", "64k", "b.bin" })
  eq(r[1].address, 0x10000)
  eq(r[1].name, "fw.bin")
  eq(r[2].address, 65536)
  raises(function() flash.parse_pairs({ "0x10000" }) end, "usage")
  raises(function() flash.parse_pairs({ "zz", "a.bin" }) end, "usage")
end)

test("nothing to flash", function()
  raises(function() flash.plan({}) end, "usage")
end)
