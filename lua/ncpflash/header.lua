-- ncpflash.header: boot headers ("BFNP") of any chip, driven by the chip file's `header` layout
-- (protocol.md §6.2/§6.3: 176-byte BL602/BL702, 240-byte BL702L, 256-byte BL616, 352-byte BL808).
-- Every function takes the chip whose layout applies; nothing here knows a chip by name.
--
--   header.build_flash(chip, app, {offset=, board=})  -> a flashable image (header + app)
--   header.build_ram(chip, {{dest=, data=}, ...})    -> a RAM image (header + segments)
--   header.build(chip, {image=, sign=, ...})         -> a synthetic image (tests, fuzz seeds)
--   header.parse(chip, data, {file=})                -> fields + problems (CRCs, SHA-256, key)
--   header.describe(h)                               -> lines for humans
--   header.check(chip, data, file)                   -> raises the first CRC the ROM would refuse
--   header.identify(data [, prefer])                 -> the chip whose layout's header CRC fits
--
-- Unsigned and unencrypted only when building; the flash configuration comes from the chip's
-- named `flash_cfg` fields (a board may override single fields with `flash_cfg = {name = value}`),
-- the clock configuration from `chip.header.clock_cfg` (board `clock_cfg` overrides).
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local romcodec = require("ncpflash.romcodec")
local chips = require("ncpflash.chip")

local M = {}

M.MAGIC = "BFNP"
M.NO_SEGMENT = 1 << 8
M.CRC_IGNORE = 1 << 16
M.HASH_IGNORE = 1 << 17
M.DEADBEEF = 0xDEADBEEF

-- boot cfg word: {name, first bit, width}
M.bootcfg_fields = {
  {"sign", 0, 2}, {"encrypt_type", 2, 2}, {"key_sel", 4, 2}, {"xts_mode", 6, 1},
  {"aes_region_lock", 7, 1}, {"no_segment", 8, 1}, {"boot2_enable", 9, 1},
  {"boot2_rollback", 10, 1}, {"cpu_master_id", 11, 4}, {"notload_in_bootrom", 15, 1},
  {"crc_ignore", 16, 1}, {"hash_ignore", 17, 1}, {"power_on_mm", 18, 1}, {"em_sel", 19, 3},
  {"cmds_en", 22, 1}, {"cmds_wrap_mode", 23, 2}, {"cmds_wrap_len", 25, 4},
  {"icache_invalid", 29, 1}, {"dcache_invalid", 30, 1}, {"fpga_halt_release", 31, 1},
}

local encrypt_names = { [0] = "none", [1] = "AES-128", [2] = "AES-256", [3] = "AES-192" }

local function layout(chip)
  local H = chip.header
  if type(H) ~= "table" or not H.size then
    errors.raise("usage", string.format("chip %s has no boot-header layout (`header` in its chip file)",
      tostring(chip.name)))
  end
  return H
end

local function label(chip) return tostring(chip.name) .. " boot header" end

function M.is_header(data)
  return type(data) == "string" and data:sub(1, 4) == M.MAGIC
end

local function put(buf, off, s)
  for i = 1, #s do buf[off + i] = s:sub(i, i) end
end

local function bytes(list)
  local t = {}
  for i, b in ipairs(list or {}) do t[i] = string.char(b) end
  return table.concat(t)
end

-- The 84-byte flash configuration: the chip's fields, single fields overridden by the board.
function M.flash_cfg(chip, board)
  local over = board and board.flash_cfg or {}
  local fields = {}
  for i, f in ipairs(chip.flash_cfg) do
    local v = over[f[1]]
    fields[i] = v ~= nil and { f[1], f[2], v } or f
  end
  return romcodec.flash_cfg_bytes({ flash_cfg = fields })
end

local function new_header(H)
  local buf = {}
  for i = 1, H.size do buf[i] = "\0" end
  put(buf, 0, "BFNP")
  put(buf, 4, string.pack("<I4", 1))
  return buf
end

-- The header bytes of layout H (header CRC last). v: flash_cfg (84 bytes) and clock_cfg
-- (H.clock.len bytes), each with its magic and CRC32 when given; bootcfg (word), offset (image
-- offset, when given), len (image length or segment count), hash (32 bytes), entry (boot entry).
function M.assemble(H, v)
  local buf = new_header(H)
  if v.flash_cfg then
    put(buf, H.flash_cfg, "FCFG")
    put(buf, H.flash_cfg + 4, v.flash_cfg)
    put(buf, H.flash_cfg + 88, string.pack("<I4", codec.crc32(v.flash_cfg)))
  end
  if v.clock_cfg then
    local c = v.clock_cfg
    if #c ~= H.clock.len then
      errors.raise("input", string.format("clock configuration: %d bytes, the %d-byte header wants %d", #c, H.size,
        H.clock.len))
    end
    put(buf, H.clock.magic, "PCFG")
    put(buf, H.clock.data, c)
    put(buf, H.clock.crc, string.pack("<I4", codec.crc32(c)))
  end
  put(buf, H.bootcfg, string.pack("<I4", v.bootcfg))
  if v.offset then put(buf, H.image_offset, string.pack("<I4", v.offset)) end
  put(buf, H.image_len, string.pack("<I4", v.len))
  put(buf, H.hash, v.hash)
  if H.cpu_enable then put(buf, H.cpu_enable, "\1") end
  if H.boot_entry then put(buf, H.boot_entry, string.pack("<I4", v.entry)) end
  local s = table.concat(buf)
  return s:sub(1, H.crc) .. string.pack("<I4", codec.crc32(s:sub(1, H.crc))) .. s:sub(H.crc + 5)
end

-- A flashable image: header at 0, the application at `opts.offset` (default 0x1000), the gap
-- 0xFF. The application is padded to 16 bytes with zeros (the length and SHA-256 cover the
-- padded bytes, as the Bouffalo image tool does).
function M.build_flash(chip, app, opts)
  opts = opts or {}
  local H = layout(chip)
  local offset = opts.offset or 0x1000
  if offset < H.size then
    errors.raise("usage", string.format("image offset 0x%X is inside the %d-byte header", offset, H.size))
  end
  if #app % 16 ~= 0 then app = app .. string.rep("\0", 16 - #app % 16) end
  local board = opts.board
  local h = M.assemble(H, { flash_cfg = M.flash_cfg(chip, board),
    clock_cfg = (board and board.clock_cfg) and bytes(board.clock_cfg) or bytes(H.clock_cfg),
    bootcfg = M.NO_SEGMENT, offset = offset, len = #app, hash = codec.sha256(app),
    entry = opts.entry or H.boot_entry_value or 0 })
  return h .. string.rep("\xFF", offset - #h) .. app
end

-- A RAM image (what the ROM's 0x11/0x17/0x18 commands load): header without flash/clock
-- configuration, segment count, then each segment's 16-byte header and data.
function M.build_ram(chip, segments, opts)
  opts = opts or {}
  local H = layout(chip)
  local out = { M.assemble(H, { bootcfg = M.HASH_IGNORE, len = #segments,
    hash = string.rep(string.pack("<I4", M.DEADBEEF), 8), entry = opts.entry or segments[1].dest }) }
  for _, sg in ipairs(segments) do
    local d = sg.data
    if #d % 16 ~= 0 then d = d .. string.rep("\0", 16 - #d % 16) end
    local sh = string.pack("<I4I4I4", sg.dest, #d, codec.crc32(d))
    out[#out + 1] = sh .. string.pack("<I4", codec.crc32(sh)) .. d
  end
  return table.concat(out)
end

local function hex32(v) return string.format("0x%08X", v) end

-- Parse with the chip's layout (`data`: the header, or a whole image file starting with one).
-- Raises "input" only when `data` is not a boot header of that size at all; bad CRCs and hashes
-- go to h.problems ({offset=, field=, expected=, found=}). A header CRC of 0xDEADBEEF with
-- crc_ignore and a placeholder SHA-256 with hash_ignore are "not checked" (nil) rather than
-- compared; a signed image's public-key block (after the header) is read. With the whole image
-- present, the SHA-256 of the image bytes is checked as well. opts.file names the source.
function M.parse(chip, data, opts)
  local H = layout(chip)
  local file = opts and opts.file or "image"
  if #data < H.size then
    util.bad_field(label(chip), file, 0, "length", ">= " .. H.size .. " bytes", #data .. " bytes")
  end
  if not M.is_header(data) then
    util.bad_field(label(chip), file, 0, "magic", "'BFNP'", string.format("%q", data:sub(1, 4)))
  end
  local h = { file = file, chip = chip.name, size = H.size, problems = {} }
  local function problem(offset, field, expected, found)
    h.problems[#h.problems + 1] = { offset = offset, field = field, expected = expected, found = found }
  end
  local function u32(off) return string.unpack("<I4", data, off + 1) end
  local function crc_check(off, field, bytes_)
    local got, want = u32(off), codec.crc32(bytes_)
    if got ~= want then problem(off, field, hex32(want), hex32(got)) end
    return got == want
  end
  h.revision = u32(4)
  h.bootcfg_word = u32(H.bootcfg)
  h.bootcfg = {}
  for _, f in ipairs(M.bootcfg_fields) do
    h.bootcfg[f[1]] = (h.bootcfg_word >> f[2]) & ((1 << f[3]) - 1)
  end
  local b = h.bootcfg
  h.signed = b.sign ~= 0
  h.encrypted = b.encrypt_type ~= 0
  h.encryption = encrypt_names[b.encrypt_type]
  h.no_segment = b.no_segment == 1
  h.flash_cfg_present = data:sub(H.flash_cfg + 1, H.flash_cfg + 4) == "FCFG"
  h.flash_cfg = data:sub(H.flash_cfg + 5, H.flash_cfg + 88)
  if h.flash_cfg_present then
    h.flash_cfg_crc_ok = crc_check(H.flash_cfg + 88, "flash-config CRC32", h.flash_cfg)
  end
  h.clock_cfg_present = data:sub(H.clock.magic + 1, H.clock.magic + 4) == "PCFG"
  if h.clock_cfg_present then
    h.clock_cfg_crc_ok = crc_check(H.clock.crc, "clock-config CRC32",
      data:sub(H.clock.data + 1, H.clock.data + H.clock.len))
  end
  h.header_crc = u32(H.crc)
  local want = codec.crc32(data:sub(1, H.crc))
  if not (b.crc_ignore == 1 and h.header_crc == M.DEADBEEF) then   -- else nil: explicitly not checked
    h.header_crc_ok = h.header_crc == want
    if not h.header_crc_ok then problem(H.crc, "header CRC32", hex32(want), hex32(h.header_crc)) end
  end
  -- signed images: public key X||Y (64) + CRC32 after the header, then sig_len + signature + CRC32
  if h.signed and #data >= H.size + 68 then
    local pk = data:sub(H.size + 1, H.size + 64)
    h.public_key = pk
    h.public_key_hash = codec.sha256(pk)
    h.public_key_crc_ok = crc_check(H.size + 64, "public-key CRC32", pk)
    if #data >= H.size + 72 then
      local slen = u32(H.size + 68)
      if slen > 0 and slen <= 256 and #data >= H.size + 72 + slen + 4 then
        h.signature_len = slen
        h.signature = data:sub(H.size + 73, H.size + 72 + slen)
      end
    end
  end
  h.sha256 = data:sub(H.hash + 1, H.hash + 32)
  h.image_offset, h.aes_region_len = u32(H.image_offset), u32(H.image_offset + 4)
  if h.no_segment then h.image_len = u32(H.image_len) else h.segment_count = u32(H.image_len) end
  -- image hash (no-segment flash images, whole file present)
  local placeholder = h.sha256:sub(1, 4) == "\xEF\xBE\xAD\xDE" or h.sha256:sub(1, 4) == "\xDE\xAD\xBE\xEF"
  if h.image_len and #data > H.size then
    local last = h.image_offset + h.image_len
    if #data < last then
      problem(H.image_len, "image length", "file of at least " .. last .. " bytes", #data .. " bytes")
    elseif b.hash_ignore == 1 and placeholder then
      h.image_sha_ok = nil
    else
      local got = codec.sha256(data:sub(h.image_offset + 1, last))
      h.image_sha_ok = got == h.sha256
      if not h.image_sha_ok then problem(H.hash, "image SHA-256", codec.hex(h.sha256), codec.hex(got)) end
    end
    h.file_size = #data
  end
  if H.boot_entry then h.boot_entry = u32(H.boot_entry) end
  return h
end

-- Human-readable lines of a parsed header.
function M.describe(h)
  local b = h.bootcfg
  local function st(v) if v == nil then return "not checked" end return v and "ok" or "BAD" end
  local out = {
    string.format("boot header (BFNP rev %d, %s layout, %d bytes): %s, %s", h.revision, h.chip, h.size,
      h.signed and "signed (ECDSA)" or "unsigned", h.encrypted and ("encrypted " .. h.encryption) or "not encrypted"),
    string.format("  bootcfg 0x%08X: no_segment=%d boot2_enable=%d crc_ignore=%d hash_ignore=%d cpu=%d",
      h.bootcfg_word, b.no_segment, b.boot2_enable, b.crc_ignore, b.hash_ignore, b.cpu_master_id),
    string.format("  CRC32: flash config %s, clock config %s, header %s",
      h.flash_cfg_present and st(h.flash_cfg_crc_ok) or "absent",
      h.clock_cfg_present and st(h.clock_cfg_crc_ok) or "absent", st(h.header_crc_ok)),
  }
  if h.image_len then
    out[#out + 1] = string.format("  image: offset 0x%X length %d (0x%X) SHA-256 %s (%s)", h.image_offset,
      h.image_len, h.image_len, codec.hex(h.sha256), st(h.image_sha_ok))
  else
    out[#out + 1] = string.format("  RAM image: %d segment(s)", h.segment_count)
  end
  if h.boot_entry then out[#out + 1] = string.format("  boot entry 0x%08X", h.boot_entry) end
  if h.public_key_hash then
    out[#out + 1] = "  public-key SHA-256 " .. codec.hex(h.public_key_hash)
  end
  return util.problem_lines(out, h.problems)
end

-- A problem the ROM would not boot past: a flash/clock-config or header CRC32.
function M.is_boot_crc(p)
  return p.field:match("config CRC32$") ~= nil or p.field == "header CRC32"
end

-- The chip whose header layout has a matching header CRC (prefer = a chip table tried first), or
-- nil (not a boot header, or a header CRC that fits no layout).
function M.identify(data, prefer)
  if not M.is_header(data) then return nil end
  local list = {}
  if prefer and prefer.header then list[1] = prefer end
  for _, c in ipairs(chips.all()) do list[#list + 1] = c end
  for _, c in ipairs(list) do
    local H = c.header
    if type(H) == "table" and H.size and H.crc and #data >= H.size
      and string.unpack("<I4", data, H.crc + 1) == codec.crc32(data:sub(1, H.crc)) then
      return c
    end
  end
  return nil
end

-- Raise the first CRC problem (the ROM would not boot it) as an `input` error; a header that is
-- not one of the chip's layout (too short, no magic) is one too.
function M.check(chip, data, file)
  for _, p in ipairs(M.parse(chip, data, { file = file }).problems) do
    if M.is_boot_crc(p) then
      util.bad_field(label(chip), file or "image", p.offset, p.field, p.expected, p.found)
    end
  end
end

-- A synthetic image of the chip's layout (tests, fuzz seeds): opts.image (bytes), offset (default
-- 0x1000), sign (0/1), flash_cfg (84 bytes, default zeros), clock_cfg (default 0x01 bytes),
-- crc_ignore, hash_ignore, public_key (64 bytes) and signature (64 bytes) when signed.
function M.build(chip, opts)
  local H = layout(chip)
  local img = opts.image or ""
  local offset = opts.offset or 0x1000
  local h = M.assemble(H, { flash_cfg = opts.flash_cfg or string.rep("\0", 84),
    clock_cfg = opts.clock_cfg or string.rep("\1", H.clock.len),
    bootcfg = (opts.sign or 0) | M.NO_SEGMENT | (opts.crc_ignore or 0) << 16 | (opts.hash_ignore or 0) << 17,
    offset = offset, len = #img, hash = codec.sha256(img), entry = H.boot_entry_value or 0 })
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

return M
