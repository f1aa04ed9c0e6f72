-- BL616 boot header ("BFNP", 256 bytes, protocol.md §6.2/§6.3): parse, check the three CRCs and
-- the image SHA-256, decode the boot-config bits, find the public key of a signed image.
local image = require("ncpflash.core.image")
local errors = require("ncpflash.errors")

local M = {}

M.MAGIC = "BFNP"
M.SIZE = 256
M.FCFG = "FCFG"
M.PCFG = "PCFG"
M.DEADBEEF = 0xDEADBEEF

-- boot cfg word (offset 120): {name, first bit, width}
M.bootcfg_fields = {
  {"sign", 0, 2}, {"encrypt_type", 2, 2}, {"key_sel", 4, 2}, {"xts_mode", 6, 1},
  {"aes_region_lock", 7, 1}, {"no_segment", 8, 1}, {"boot2_enable", 9, 1},
  {"boot2_rollback", 10, 1}, {"cpu_master_id", 11, 4}, {"notload_in_bootrom", 15, 1},
  {"crc_ignore", 16, 1}, {"hash_ignore", 17, 1}, {"power_on_mm", 18, 1}, {"em_sel", 19, 3},
  {"cmds_en", 22, 1}, {"cmds_wrap_mode", 23, 2}, {"cmds_wrap_len", 25, 4},
  {"icache_invalid", 29, 1}, {"dcache_invalid", 30, 1}, {"fpga_halt_release", 31, 1},
}

local encrypt_names = { [0] = "none", [1] = "AES-128", [2] = "AES-256", [3] = "AES-192" }

local function hex(v) return string.format("0x%08X", v) end

local function bad(file, offset, field, expected, found)
  errors.raise("input", string.format("%s: boot header: %s at offset 0x%X: expected %s, found %s",
    file, field, offset, tostring(expected), tostring(found)),
    { file = file, offset = offset, field = field, expected = expected, found = found })
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
  local h = { file = file, problems = {} }
  local function problem(offset, field, expected, found)
    h.problems[#h.problems + 1] = { offset = offset, field = field, expected = expected, found = found }
  end
  h.revision = string.unpack("<I4", data, 5)
  h.flash_cfg_present = data:sub(9, 12) == M.FCFG
  h.flash_cfg = data:sub(13, 96)
  local fcrc = string.unpack("<I4", data, 97)
  if h.flash_cfg_present then
    local want = image.crc32(h.flash_cfg)
    h.flash_cfg_crc_ok = fcrc == want
    if not h.flash_cfg_crc_ok then problem(96, "flash-config CRC32", hex(want), hex(fcrc)) end
  end
  h.clock_cfg_present = data:sub(101, 104) == M.PCFG
  local ccrc = string.unpack("<I4", data, 117)
  if h.clock_cfg_present then
    local want = image.crc32(data:sub(105, 116))
    h.clock_cfg_crc_ok = ccrc == want
    if not h.clock_cfg_crc_ok then problem(116, "clock-config CRC32", hex(want), hex(ccrc)) end
  end
  local bootcfg, offset, aes_len, img_len = string.unpack("<I4I4I4I4", data, 121)
  h.bootcfg_word = bootcfg
  h.bootcfg = {}
  for _, f in ipairs(M.bootcfg_fields) do
    h.bootcfg[f[1]] = (bootcfg >> f[2]) & ((1 << f[3]) - 1)
  end
  local b = h.bootcfg
  h.signed = b.sign ~= 0
  h.encrypted = b.encrypt_type ~= 0
  h.encryption = encrypt_names[b.encrypt_type]
  h.image_offset = offset
  h.aes_region_len = aes_len
  if b.no_segment == 1 then h.image_len = img_len else h.segment_count = img_len end
  h.sha256 = data:sub(137, 168)
  h.boot_entry = string.unpack("<I4", data, 177)
  local hcrc = string.unpack("<I4", data, 253)
  local want = image.crc32(data:sub(1, 252))
  h.header_crc = hcrc
  if b.crc_ignore == 1 and hcrc == M.DEADBEEF then
    h.header_crc_ok = nil                               -- explicitly not checked
  else
    h.header_crc_ok = hcrc == want
    if not h.header_crc_ok then problem(252, "header CRC32", hex(want), hex(hcrc)) end
  end
  -- signed images: public key X||Y (64) + CRC32 at 0x100, then sig_len + signature + CRC32
  if h.signed and #data >= M.SIZE + 68 then
    local pk = data:sub(M.SIZE + 1, M.SIZE + 64)
    h.public_key = pk
    h.public_key_hash = image.sha256(pk)
    local pkcrc = string.unpack("<I4", data, M.SIZE + 65)
    h.public_key_crc_ok = pkcrc == image.crc32(pk)
    if not h.public_key_crc_ok then problem(M.SIZE + 64, "public-key CRC32", hex(image.crc32(pk)), hex(pkcrc)) end
    if #data >= M.SIZE + 72 then
      local slen = string.unpack("<I4", data, M.SIZE + 69)
      if slen > 0 and slen <= 256 and #data >= M.SIZE + 72 + slen + 4 then
        h.signature_len = slen
        h.signature = data:sub(M.SIZE + 73, M.SIZE + 72 + slen)
      end
    end
  end
  -- image hash (no-segment flash images, whole file present)
  local placeholder = h.sha256:sub(1, 4) == "\xEF\xBE\xAD\xDE" or h.sha256:sub(1, 4) == "\xDE\xAD\xBE\xEF"
  if h.image_len and #data > M.SIZE then
    local last = offset + h.image_len
    if #data < last then
      problem(132, "image length", "file of at least " .. last .. " bytes", #data .. " bytes")
    elseif b.hash_ignore == 1 and placeholder then
      h.image_sha_ok = nil
    else
      local got = image.sha256(data:sub(offset + 1, last))
      h.image_sha_ok = got == h.sha256
      if not h.image_sha_ok then
        problem(136, "image SHA-256", image.hex(h.sha256), image.hex(got))
      end
    end
    h.file_size = #data
  end
  return h
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
  local flash_cfg = opts.flash_cfg or string.rep("\0", 84)
  local clock = opts.clock_cfg or string.rep("\1", 12)
  local bootcfg = (opts.sign or 0) | 1 << 8 | (opts.crc_ignore or 0) << 16 | (opts.hash_ignore or 0) << 17
  local h = M.MAGIC .. string.pack("<I4", 1) .. M.FCFG .. flash_cfg .. string.pack("<I4", image.crc32(flash_cfg))
    .. M.PCFG .. clock .. string.pack("<I4", image.crc32(clock))
    .. string.pack("<I4I4I4I4", bootcfg, offset, 0, #img) .. image.sha256(img)
  h = h .. string.pack("<BBBBI4I4I4", 1, 0, 0, 0, 0, 0xA0000000, 0)
  h = h .. string.rep("\0", 252 - #h)
  h = h .. string.pack("<I4", image.crc32(h))
  local tail = ""
  if (opts.sign or 0) ~= 0 then
    local pk = opts.public_key or string.rep("\x11", 64)
    local sig = opts.signature or string.rep("\x22", 64)
    local sl = string.pack("<I4", #sig)
    tail = pk .. string.pack("<I4", image.crc32(pk)) .. sl .. sig .. string.pack("<I4", image.crc32(sl .. sig))
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
    out[#out + 1] = string.format("  image: offset 0x%X length %d (0x%X) SHA-256 %s (%s)", h.image_offset,
      h.image_len, h.image_len, image.hex(h.sha256), st(h.image_sha_ok))
  else
    out[#out + 1] = string.format("  segments: %d", h.segment_count)
  end
  if h.public_key_hash then
    out[#out + 1] = "  public-key SHA-256 " .. image.hex(h.public_key_hash)
  end
  for _, p in ipairs(h.problems) do
    out[#out + 1] = string.format("  PROBLEM: %s at 0x%X: expected %s, found %s", p.field, p.offset,
      tostring(p.expected), tostring(p.found))
  end
  return out
end

return M
