-- QCC74x OTA files (.bin.ota / .xz.ota, st67w611m1.md §2.5): a 512-byte header + payload.
-- Header: magic "QCC74X_OTAVer1.0" (16) | type "RAW " or "XZ  " (4) | payload length u32 LE |
-- 8 bytes 01..08 | module string (16) | version string (16) | SHA-256 of the payload (32) | 0xFF.
local codec = require("ncpflash.core.codec")
local util = require("ncpflash.util")

local M = {}

M.MAGIC = "QCC74X_OTAVer1.0"
M.HEADER_SIZE = 512

local function bad(...) util.bad_field("OTA header", ...) end

function M.is_ota(data)
  return type(data) == "string" and data:sub(1, #M.MAGIC) == M.MAGIC
end

local function cstr(s) return (s:match("^([^%z]*)")) end

-- Parse an OTA file (header alone or whole file). With the payload present, its length and
-- SHA-256 are checked (h.payload_sha_ok); mismatches raise "input" when opts.strict.
function M.parse(data, opts)
  local file = opts and opts.file or "OTA file"
  if #data < M.HEADER_SIZE then bad(file, 0, "length", ">= 512 bytes", #data .. " bytes") end
  if not M.is_ota(data) then bad(file, 0, "magic", "'" .. M.MAGIC .. "'", string.format("%q", data:sub(1, 16))) end
  local typ, len = string.unpack("<c4I4", data, 17)
  local h = {
    file = file, type = typ:gsub("%s+$", ""), payload_len = len,
    marker = data:sub(25, 32), module = cstr(data:sub(33, 48)), version = cstr(data:sub(49, 64)),
    sha256 = data:sub(65, 96), problems = {},
  }
  h.compressed = h.type == "XZ"
  if #data > M.HEADER_SIZE then
    local payload = data:sub(M.HEADER_SIZE + 1)
    if #payload ~= len then
      h.problems[#h.problems + 1] = { offset = 20, field = "payload length", expected = len, found = #payload }
    end
    local got = codec.sha256(payload)
    h.payload_sha_ok = got == h.sha256
    if not h.payload_sha_ok then
      h.problems[#h.problems + 1] = { offset = 64, field = "payload SHA-256",
        expected = codec.hex(h.sha256), found = codec.hex(got) }
    end
    h.payload = payload
  end
  if opts and opts.strict and h.problems[1] then
    local p = h.problems[1]
    bad(file, p.offset, p.field, p.expected, p.found)
  end
  return h
end

function M.describe(h)
  local out = {
    string.format("OTA file (%s): type %s, module %q, version %q", M.MAGIC, h.type, h.module, h.version),
    string.format("  payload %d bytes, SHA-256 %s (%s)", h.payload_len, codec.hex(h.sha256),
      h.payload_sha_ok == nil and "not checked" or (h.payload_sha_ok and "ok" or "BAD")),
  }
  return util.problem_lines(out, h.problems)
end

return M
