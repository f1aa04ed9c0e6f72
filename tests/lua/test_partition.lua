-- BFPT partition tables: parse, both CRCs, lookup, errors naming file/offset/field.
local partition = require "ncpflash.partition"
local codec = require "ncpflash.core.codec"

local ENTRIES = {
  { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
  { name = "FW", type = 0, address0 = 0x10000, address1 = 0x1C4000, size0 = 0x1B4000, size1 = 0x1B4000 },
  { name = "media", type = 2, address0 = 0x378000, size0 = 0x6D000 },
}

test("build + parse round trip", function()
  local data = partition.build(ENTRIES, { age = 3 })
  eq(#data, 16 + 36 * 3 + 4)
  local pt = partition.parse(data, { file = "pt.bin" })
  eq(pt.count, 3)
  eq(pt.age, 3)
  eq(pt.entries[2].name, "FW")
  eq(pt.entries[2].address0, 0x10000)
  eq(pt.entries[2].address1, 0x1C4000)
  eq(pt.entries[2].size0, 0x1B4000)
  eq(pt.entries[1].type_name, "boot2")
end)

test("find by name, exact then case-insensitive", function()
  local pt = partition.parse(partition.build(ENTRIES))
  eq(partition.find(pt, "media").address0, 0x378000)
  eq(partition.find(pt, "fw").name, "FW")
  eq(partition.find(pt, "nope"), nil)
end)

test("active_index selects slot 1", function()
  local pt = partition.parse(partition.build({ { name = "FW", address0 = 0x10000, address1 = 0x20000,
    size0 = 0x1000, size1 = 0x2000, active_index = 1 } }))
  eq(pt.entries[1].address, 0x20000)
  eq(pt.entries[1].size, 0x2000)
end)

test("bad magic names file, offset and field", function()
  local data = "XXXX" .. partition.build(ENTRIES):sub(5)
  local e = raises(function() partition.parse(data, { file = "pt.bin" }) end, "input")
  match(e.message, "pt%.bin")
  match(e.message, "magic")
  eq(e.offset, 0)
  eq(e.field, "magic")
end)

test("header CRC mismatch", function()
  local data = partition.build(ENTRIES)
  data = data:sub(1, 8) .. "\1" .. data:sub(10)         -- age changed, CRC not updated
  local e = raises(function() partition.parse(data, { file = "pt.bin" }) end, "input")
  eq(e.field, "header CRC32")
  eq(e.offset, 12)
  match(e.message, "expected 0x%x+, found 0x%x+")
end)

test("entries CRC mismatch", function()
  local data = partition.build(ENTRIES)
  local pos = 16 + 36 + 13                              -- FW address0, low byte
  data = data:sub(1, pos - 1) .. "\7" .. data:sub(pos + 1)
  local e = raises(function() partition.parse(data, { file = "pt.bin" }) end, "input")
  eq(e.field, "entries CRC32")
  eq(e.offset, 16 + 36 * 3)
end)

test("truncated table", function()
  local data = partition.build(ENTRIES)
  local e = raises(function() partition.parse(data:sub(1, 60), { file = "pt.bin" }) end, "input")
  eq(e.field, "length")
end)

test("too many entries", function()
  local head = string.pack("<c4I2I2I4", "BFPT", 0, 17, 0)
  head = head .. string.pack("<I4", codec.crc32(head))
  local e = raises(function() partition.parse(head .. string.rep("\0", 700)) end, "input")
  eq(e.field, "entry count")
end)

test("describe lists every entry", function()
  local lines = partition.describe(partition.parse(partition.build(ENTRIES)))
  eq(#lines, 4)
  match(lines[3], "FW%s+firmware%s+0x010000 / 0x1C4000")
end)

test("ST partition.bin (fixture)", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local pt = partition.load(helpers.ncp_binaries .. "/partition.bin")
  eq(pt.count, 8)
  local fw = partition.find(pt, "FW")
  eq(fw.address0, 0x10000)
  eq(fw.size0, 0x1B4000)
  eq(partition.find(pt, "media").address0, 0x378000)
  eq(partition.find(pt, "MFD").address0, 0x3FF000)
  -- rebuilding from the parsed entries gives the same bytes
  eq(partition.build(pt.entries, { age = pt.age }), helpers.readfile(helpers.ncp_binaries .. "/partition.bin"))
end)
