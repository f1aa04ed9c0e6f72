-- BL616 boot header ("BFNP", 256 bytes, protocol.md §6.2/§6.3): the BL616 layout of
-- ncpflash.header, parsed in full (the three CRCs, the image SHA-256, the boot-config bits, the
-- public key of a signed image), synthetic images for tests, and the BL616 description.
local codec = require("ncpflash.core.codec")
local header = require("ncpflash.header")
local util = require("ncpflash.util")

local M = {}

M.MAGIC = "BFNP"
M.SIZE = 256
M.FCFG = "FCFG"
M.PCFG = "PCFG"
M.DEADBEEF = header.DEADBEEF
M.bootcfg_fields = header.bootcfg_fields

local function bl616() return require("ncpflash.chips.bl616") end

local function bad(file, offset, field, expected, found)
  util.bad_field("boot header", file, offset, field, expected, found)
end

function M.is_header(data)
  return type(data) == "string" and data:sub(1, 4) == M.MAGIC
end

-- Parse `data` (the header, or a whole image file starting with one). opts.file names the source.
-- Never raises for CRC/hash mismatches: they are listed in h.problems (each {offset=, field=,
-- expected=, found=}); raises "input" only when the data is not a boot header at all.
-- With the whole image present, the SHA-256 of the image bytes is checked as well.
function M.parse(data, opts)
  local file = opts and opts.file or "image"
  if #data < M.SIZE then bad(file, 0, "length", ">= 256 bytes", #data .. " bytes") end
  if data:sub(1, 4) ~= M.MAGIC then
    bad(file, 0, "magic", "'BFNP'", string.format("%q", data:sub(1, 4)))
  end
  return header.parse(bl616(), data, { file = file, full = true })
end

-- Raise the first problem of a parsed header as an "input" error.
function M.check(h)
  local p = h.problems[1]
  if p then bad(h.file, p.offset, p.field, p.expected, p.found) end
  return h
end

-- Build a header + image (tests and synthetic sets). opts: image (bytes), offset (default 0x1000),
-- sign (0/1), flash_cfg (84 bytes), crc_ignore, hash_ignore, public_key (64 bytes, when signed).
function M.build(opts)
  local img = opts.image or ""
  local offset = opts.offset or 0x1000
  local h = header.assemble(bl616().header, { flash_cfg = opts.flash_cfg or string.rep("\0", 84),
    clock_cfg = opts.clock_cfg or string.rep("\1", 12),
    bootcfg = (opts.sign or 0) | header.NO_SEGMENT | (opts.crc_ignore or 0) << 16 | (opts.hash_ignore or 0) << 17,
    offset = offset, len = #img, hash = codec.sha256(img), entry = 0xA0000000 })
  local tail = ""
  if (opts.sign or 0) ~= 0 then
    local pk = opts.public_key or string.rep("\x11", 64)
    local sig = opts.signature or string.rep("\x22", 64)
    local sl = string.pack("<I4", #sig)
    tail = pk .. string.pack("<I4", codec.crc32(pk)) .. sl .. sig .. string.pack("<I4", codec.crc32(sl .. sig))
  end
  local pre = h .. tail
  assert(#pre <= offset, "boot header + key block larger than the image offset")
  return pre .. string.rep("\xFF", offset - #pre) .. img
end

-- Human-readable lines.
function M.describe(h)
  local b = h.bootcfg
  local function st(v) if v == nil then return "not checked" end return v and "ok" or "BAD" end
  local out = {
    string.format("boot header (BFNP rev %d): %s, %s", h.revision, h.signed and "signed (ECDSA)" or "unsigned",
      h.encrypted and ("encrypted " .. h.encryption) or "not encrypted"),
    string.format("  bootcfg 0x%08X: no_segment=%d boot2_enable=%d crc_ignore=%d hash_ignore=%d cpu=%d",
      h.bootcfg_word, b.no_segment, b.boot2_enable, b.crc_ignore, b.hash_ignore, b.cpu_master_id),
    string.format("  CRC32: flash config %s, clock config %s, header %s",
      h.flash_cfg_present and st(h.flash_cfg_crc_ok) or "absent",
      h.clock_cfg_present and st(h.clock_cfg_crc_ok) or "absent", st(h.header_crc_ok)),
  }
  if h.image_len then
    out[#out + 1] = header.image_line(h, st)
  else
    out[#out + 1] = string.format("  segments: %d", h.segment_count)
  end
  if h.public_key_hash then
    out[#out + 1] = "  public-key SHA-256 " .. codec.hex(h.public_key_hash)
  end
  return util.problem_lines(out, h.problems)
end

return M
