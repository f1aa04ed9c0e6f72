-- Bouffalo partition tables ("BFPT", protocol.md §6.5): parse, validate (both CRCs), look up,
-- build (tests, tools) and describe.
local codec = require("ncpflash.core.codec")
local util = require("ncpflash.util")

local M = {}

M.MAGIC = "BFPT"
M.HEADER_SIZE = 16
M.ENTRY_SIZE = 36
M.MAX_ENTRIES = 16

M.type_names = {
  [0] = "firmware", [2] = "media", [3] = "psm", [4] = "key", [5] = "data", [6] = "factory",
  [8] = "reserved", [9] = "mfd", [10] = "mfg", [16] = "boot2",
}

local function hex(v) return string.format("0x%X", v) end

-- Raise an "input" error naming file, offset, field, expected and found values.
local function bad(...) util.bad_field("partition table", ...) end

-- True when `data` starts with the partition-table magic.
function M.is_table(data)
  return type(data) == "string" and data:sub(1, 4) == M.MAGIC
end

-- Parse and validate a table. opts.file names the source in errors (default "partition table").
-- Returns {version=, count=, age=, size=, entries={...}} where each entry has
-- index, type, type_name, device, active_index, name, address0, address1, size0, size1, len,
-- age, and address/size of the active slot.
function M.parse(data, opts)
  local file = opts and opts.file or "partition table"
  if #data < M.HEADER_SIZE then bad(file, 0, "length", ">= 16 bytes", #data .. " bytes") end
  local magic = data:sub(1, 4)
  if magic ~= M.MAGIC then bad(file, 0, "magic", "'BFPT'", string.format("%q", magic)) end
  local version, count, age, hcrc = string.unpack("<I2I2I4I4", data, 5)
  local want = codec.crc32(data:sub(1, 12))
  if hcrc ~= want then bad(file, 12, "header CRC32", hex(want), hex(hcrc)) end
  if count > M.MAX_ENTRIES then bad(file, 6, "entry count", "<= " .. M.MAX_ENTRIES, count) end
  local body_end = M.HEADER_SIZE + M.ENTRY_SIZE * count
  if #data < body_end + 4 then
    bad(file, #data, "length", (body_end + 4) .. " bytes for " .. count .. " entries", #data .. " bytes")
  end
  local ecrc = string.unpack("<I4", data, body_end + 1)
  local ewant = codec.crc32(data:sub(M.HEADER_SIZE + 1, body_end))
  if ecrc ~= ewant then bad(file, body_end, "entries CRC32", hex(ewant), hex(ecrc)) end
  local pt = { file = file, version = version, count = count, age = age, size = body_end + 4,
               entries = {} }
  for i = 0, count - 1 do
    local off = M.HEADER_SIZE + M.ENTRY_SIZE * i
    local typ, dev, active, rawname, a0, a1, s0, s1, len, eage =
      string.unpack("<BBBc9I4I4I4I4I4I4", data, off + 1)
    local name = rawname:match("^([^%z]*)")
    local e = { index = i, offset = off, type = typ, type_name = M.type_names[typ] or ("type" .. typ),
                device = dev, active_index = active, name = name, address0 = a0, address1 = a1,
                size0 = s0, size1 = s1, len = len, age = eage }
    e.address = active ~= 0 and a1 or a0
    e.size = active ~= 0 and s1 or s0
    pt.entries[#pt.entries + 1] = e
  end
  return pt
end

-- The entry called `name` (exact match first, then case-insensitive), or nil.
function M.find(pt, name)
  for _, e in ipairs(pt.entries) do if e.name == name then return e end end
  local lname = name:lower()
  for _, e in ipairs(pt.entries) do if e.name:lower() == lname then return e end end
  return nil
end

-- Read and parse a file.
function M.load(path)
  local data = util.readfile(path, "partition table", 1024 * 1024)
  return M.parse(data, { file = path }), data
end

-- Build a table from a list of entries {name=, type=, address0=, address1=, size0=, size1=,
-- device=, active_index=, len=, age=} (missing numbers are 0). opts.age, opts.version.
function M.build(entries, opts)
  opts = opts or {}
  local body = {}
  for _, e in ipairs(entries) do
    assert(#e.name <= 8, "partition name longer than 8 characters")
    body[#body + 1] = string.pack("<BBBc9I4I4I4I4I4I4", e.type or 0, e.device or 0,
      e.active_index or 0, e.name .. string.rep("\0", 9 - #e.name), e.address0 or 0,
      e.address1 or 0, e.size0 or 0, e.size1 or 0, e.len or 0, e.age or 0)
  end
  local head = string.pack("<c4I2I2I4", M.MAGIC, opts.version or 0, #entries, opts.age or 0)
  local b = table.concat(body)
  return head .. string.pack("<I4", codec.crc32(head)) .. b .. string.pack("<I4", codec.crc32(b))
end

-- Human-readable lines describing a parsed table.
function M.describe(pt)
  local out = { string.format("partition table: %d entries, age %d, version %d, both CRCs valid",
    pt.count, pt.age, pt.version) }
  for _, e in ipairs(pt.entries) do
    local slot1 = e.address1 ~= 0 and string.format(" / 0x%06X", e.address1) or ""
    out[#out + 1] = string.format("  %-8s %-9s 0x%06X%s size 0x%06X (%d)%s", e.name, e.type_name,
      e.address0, slot1, e.size0, e.size0, e.active_index ~= 0 and " active=1" or "")
  end
  return out
end

return M
