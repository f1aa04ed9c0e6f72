-- ncpflash.header: boot headers of any chip, driven by the chip file's `header` layout
-- (protocol.md §6.2: 176-byte BL602/BL702, 240-byte BL702L, 256-byte BL616, 352-byte BL808).
--
--   header.build_flash(chip, app, {offset=, board=})  -> a flashable image (header + app)
--   header.build_ram(chip, {{dest=, data=}, ...})    -> a RAM image (header + segments)
--   header.parse(chip, data)                          -> fields + problems (CRCs, SHA-256)
--   header.identify(data [, prefer])                  -> the chip whose layout's header CRC fits
--
-- Unsigned and unencrypted only; the flash configuration comes from the chip's named
-- `flash_cfg` fields (a board may override single fields with `flash_cfg = {name = value}`),
-- the clock configuration from `chip.header.clock_cfg` (board `clock_cfg` overrides).
local image = require("ncpflash.core.image")
local errors = require("ncpflash.errors")

local M = {}

M.NO_SEGMENT = 1 << 8
M.CRC_IGNORE = 1 << 16
M.HASH_IGNORE = 1 << 17

local function layout(chip)
  local H = chip.header
  if type(H) ~= "table" or not H.size then
    errors.raise("usage", string.format("chip %s has no boot-header layout (`header` in its chip file)",
      tostring(chip.name)))
  end
  return H
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
  return require("ncpflash.session").flash_cfg_bytes({ flash_cfg = fields })
end

local function new_header(H)
  local buf = {}
  for i = 1, H.size do buf[i] = "\0" end
  put(buf, 0, "BFNP")
  put(buf, 4, string.pack("<I4", 1))
  return buf
end

local function finish(H, buf)
  local s = table.concat(buf)
  local crc = image.crc32(s:sub(1, H.crc))
  return s:sub(1, H.crc) .. string.pack("<I4", crc) .. s:sub(H.crc + 5)
end

local function clock_block(H, buf, board)
  local c = (board and board.clock_cfg) and bytes(board.clock_cfg) or bytes(H.clock_cfg)
  if #c ~= H.clock.len then
    errors.raise("input", string.format("clock configuration: %d bytes, the %d-byte header wants %d", #c, H.size,
      H.clock.len))
  end
  put(buf, H.clock.magic, "PCFG")
  put(buf, H.clock.data, c)
  put(buf, H.clock.crc, string.pack("<I4", image.crc32(c)))
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
  local buf = new_header(H)
  local fc = M.flash_cfg(chip, opts.board)
  put(buf, H.flash_cfg, "FCFG")
  put(buf, H.flash_cfg + 4, fc)
  put(buf, H.flash_cfg + 88, string.pack("<I4", image.crc32(fc)))
  clock_block(H, buf, opts.board)
  put(buf, H.bootcfg, string.pack("<I4", M.NO_SEGMENT))
  put(buf, H.image_offset, string.pack("<I4", offset))
  put(buf, H.image_len, string.pack("<I4", #app))
  put(buf, H.hash, image.sha256(app))
  if H.cpu_enable then put(buf, H.cpu_enable, "\1") end
  if H.boot_entry then put(buf, H.boot_entry, string.pack("<I4", opts.entry or H.boot_entry_value or 0)) end
  local h = finish(H, buf)
  return h .. string.rep("\xFF", offset - #h) .. app
end

-- A RAM image (what the ROM's 0x11/0x17/0x18 commands load): header without flash/clock
-- configuration, segment count, then each segment's 16-byte header and data.
function M.build_ram(chip, segments, opts)
  opts = opts or {}
  local H = layout(chip)
  local buf = new_header(H)
  put(buf, H.bootcfg, string.pack("<I4", M.HASH_IGNORE))
  put(buf, H.image_len, string.pack("<I4", #segments))
  put(buf, H.hash, string.rep(string.pack("<I4", 0xDEADBEEF), 8))
  if H.cpu_enable then put(buf, H.cpu_enable, "\1") end
  if H.boot_entry then put(buf, H.boot_entry, string.pack("<I4", opts.entry or segments[1].dest)) end
  local out = { finish(H, buf) }
  for _, sg in ipairs(segments) do
    local d = sg.data
    if #d % 16 ~= 0 then d = d .. string.rep("\0", 16 - #d % 16) end
    local sh = string.pack("<I4I4I4", sg.dest, #d, image.crc32(d))
    out[#out + 1] = sh .. string.pack("<I4", image.crc32(sh)) .. d
  end
  return table.concat(out)
end

local function hex32(v) return string.format("0x%08X", v) end

-- Parse with the chip's layout. Never raises for bad CRCs/hashes: they go to h.problems.
function M.parse(chip, data, opts)
  local H = layout(chip)
  local file = opts and opts.file or "image"
  if #data < H.size or data:sub(1, 4) ~= "BFNP" then
    errors.raise("input", string.format("%s: not a %d-byte %s boot header", file, H.size, chip.name),
      { file = file })
  end
  local h = { file = file, chip = chip.name, size = H.size, problems = {} }
  local function problem(offset, field, expected, found)
    h.problems[#h.problems + 1] = { offset = offset, field = field, expected = expected, found = found }
  end
  local function u32(off) return string.unpack("<I4", data, off + 1) end
  h.bootcfg_word = u32(H.bootcfg)
  h.signed = h.bootcfg_word & 3 ~= 0
  h.encrypted = (h.bootcfg_word >> 2) & 3 ~= 0
  h.no_segment = h.bootcfg_word & M.NO_SEGMENT ~= 0
  if data:sub(H.flash_cfg + 1, H.flash_cfg + 4) == "FCFG" then
    local fc = data:sub(H.flash_cfg + 5, H.flash_cfg + 88)
    h.flash_cfg_crc_ok = u32(H.flash_cfg + 88) == image.crc32(fc)
    if not h.flash_cfg_crc_ok then problem(H.flash_cfg + 88, "flash-config CRC32", hex32(image.crc32(fc)),
      hex32(u32(H.flash_cfg + 88))) end
  end
  if data:sub(H.clock.magic + 1, H.clock.magic + 4) == "PCFG" then
    local c = data:sub(H.clock.data + 1, H.clock.data + H.clock.len)
    h.clock_cfg_crc_ok = u32(H.clock.crc) == image.crc32(c)
    if not h.clock_cfg_crc_ok then problem(H.clock.crc, "clock-config CRC32", hex32(image.crc32(c)),
      hex32(u32(H.clock.crc))) end
  end
  local want = image.crc32(data:sub(1, H.crc))
  h.header_crc_ok = u32(H.crc) == want
  if not h.header_crc_ok and not (h.bootcfg_word & M.CRC_IGNORE ~= 0 and u32(H.crc) == 0xDEADBEEF) then
    problem(H.crc, "header CRC32", hex32(want), hex32(u32(H.crc)))
  end
  h.sha256 = data:sub(H.hash + 1, H.hash + 32)
  if h.no_segment then
    h.image_offset, h.image_len = u32(H.image_offset), u32(H.image_len)
    if #data > H.size then
      local last = h.image_offset + h.image_len
      if #data < last then
        problem(H.image_len, "image length", "file of at least " .. last .. " bytes", #data .. " bytes")
      else
        local got = image.sha256(data:sub(h.image_offset + 1, last))
        h.image_sha_ok = got == h.sha256
        if not h.image_sha_ok then problem(H.hash, "image SHA-256", image.hex(h.sha256), image.hex(got)) end
      end
    end
  else
    h.segment_count = u32(H.image_len)
  end
  if H.boot_entry then h.boot_entry = u32(H.boot_entry) end
  return h
end

function M.describe(h)
  local function st(v) if v == nil then return "absent" end return v and "ok" or "BAD" end
  local out = {
    string.format("boot header (%s layout, %d bytes): %s, %s, bootcfg 0x%08X", h.chip, h.size,
      h.signed and "signed" or "unsigned", h.encrypted and "encrypted" or "not encrypted", h.bootcfg_word),
    string.format("  CRC32: flash config %s, clock config %s, header %s", st(h.flash_cfg_crc_ok),
      st(h.clock_cfg_crc_ok), st(h.header_crc_ok)),
  }
  if h.image_len then
    out[#out + 1] = string.format("  image: offset 0x%X length %d (0x%X) SHA-256 %s (%s)", h.image_offset,
      h.image_len, h.image_len, image.hex(h.sha256), h.image_sha_ok == nil and "not checked" or st(h.image_sha_ok))
  else
    out[#out + 1] = string.format("  RAM image: %d segment(s)", h.segment_count)
  end
  if h.boot_entry then out[#out + 1] = string.format("  boot entry 0x%08X", h.boot_entry) end
  for _, p in ipairs(h.problems) do
    out[#out + 1] = string.format("  PROBLEM: %s at 0x%X: expected %s, found %s", p.field, p.offset,
      tostring(p.expected), tostring(p.found))
  end
  return out
end

-- The chip whose header layout has a matching header CRC (prefer = a chip table tried first).
function M.identify(data, prefer)
  if data:sub(1, 4) ~= "BFNP" then return nil end
  local list = {}
  if prefer and prefer.header then list[1] = prefer end
  for _, c in ipairs(require("ncpflash.detect").chips()) do list[#list + 1] = c end
  for _, c in ipairs(list) do
    local H = c.header
    if type(H) == "table" and H.size and H.crc and #data >= H.size
      and string.unpack("<I4", data, H.crc + 1) == image.crc32(data:sub(1, H.crc)) then
      return c
    end
  end
  return nil
end

-- A BFNP image of another chip's layout than the BL616's 256 bytes, or nil (for checks that
-- otherwise use ncpflash.bootheader).
function M.other_layout(data)
  local c = M.identify(data)
  if c and c.header.size ~= 256 then return c end
  return nil
end

-- Raise the first CRC problem (the ROM would not boot it) as an `input` error.
function M.check(chip, data, file)
  for _, p in ipairs(M.parse(chip, data, { file = file }).problems) do
    if p.field:match("CRC32$") then
      errors.raise("input", string.format("%s: %s boot header: %s at offset 0x%X: expected %s, found %s",
        file or "image", chip.name, p.field, p.offset, tostring(p.expected), tostring(p.found)))
    end
  end
end

return M
