-- ncpflash.efuse: the eFuse as data (protocol.md §6.7, §6.8): maps, files, decoding and the burn
-- plan. Pure: nothing here talks to a chip; ncpflash.efuse_burn reads and burns with a plan made
-- here.
--
-- eFuse bits are one-time: a write can only set bits. Everything is built so that nothing
-- reaches the chip before the whole job has been validated and shown:
--
--   files   load_file(path) -> {data = 512 bytes, format = "raw"|"saved", sha256 =}
--           ("saved" = Bouffalo's 4608-byte security_save format that ST ships, CRC-checked)
--           derive_mask(data) / load_mask(path)
--   decode  decode(bytes, map) -> list of {name, offset, bits, value, meaning, description}
--   plan    plan(current, wanted, mask, map) -> to_set / already / conflicts / regions / diff
--   jobs    prepare_file(ctx, path, a), precheck(job), parse_mac(text), mac_job(current, mac, map),
--           load_root_key(path)
--
-- Maps are data: chips/<chip>_efuse.lua (+ boards/<board>_efuse.lua when present).
local codec = require("ncpflash.core.codec")
local crypto = require("ncpflash.core.crypto")
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")

local M = {}

M.DEFAULT_AUDIT = "ncpflash-efuse-audit.jsonl"

---------------------------------------------------------------------------------------------------
-- maps

local function try_require(name)
  if not util.module_exists(name) then return nil end
  return require(name)
end

--- The eFuse map for a chip name (and optional board name): the chip's data with the board's
--- extra fields appended. Returns map, board_efuse (or nil).
function M.load_map(chip_name, board_name)
  local chip = try_require("ncpflash.chips." .. chip_name .. "_efuse")
  if not chip then
    errors.raise("usage", ("no eFuse map for chip %q (expected module ncpflash.chips.%s_efuse)")
      :format(chip_name, chip_name))
  end
  local board = board_name and try_require("ncpflash.boards." .. board_name .. "_efuse") or nil
  local map = setmetatable({ fields = {}, chip_name = chip_name, board_name = board and board_name or nil },
    { __index = chip })
  for _, f in ipairs(chip.fields) do map.fields[#map.fields + 1] = f end
  for _, f in ipairs(board and board.fields or {}) do map.fields[#map.fields + 1] = f end
  if board and board.secure_write ~= nil then map.secure_write = board.secure_write end
  return map, board
end

--- The map for a recipe context (its chip and board).
function M.map_for(ctx)
  local chip = ctx:chip()
  local board = ctx:board()
  return M.load_map(chip.name or "bl616", board.name)
end

---------------------------------------------------------------------------------------------------
-- byte helpers (512-byte strings)

local function zeros(n) return string.rep("\0", n) end

local function bytewise(a, b, fn)
  local out = {}
  for i = 1, #a do out[i] = string.char(fn(a:byte(i), b:byte(i), i - 1) & 0xFF) end
  return table.concat(out)
end

local function is_zero(s) return not s:find("[^\0]") end

local function popcount(s)
  local n = 0
  for i = 1, #s do
    local b = s:byte(i)
    while b ~= 0 do n = n + (b & 1); b = b >> 1 end
  end
  return n
end

local function zero_bits(s) return #s * 8 - popcount(s) end

local function pad(data, size) return data .. zeros(size - #data) end

function M.hex(s) return codec.hex(s) end

---------------------------------------------------------------------------------------------------
-- files

local function input_error(file, offset, what, expected, found, hint)
  errors.raise("input", ("%s: %s at offset %d (0x%X): expected %s, found %s"):format(file, what, offset, offset,
    expected, found), { file = file, offset = offset, expected = expected, found = found, hint = hint })
end

--- Parse eFuse file content: a raw image of exactly the eFuse size (512 bytes on the BL616), or
--- the 4608-byte saved format, decrypted (AES-128-CBC, Bouffalo's fixed file key) and its CRC32
--- checked. Any other size is an input error. Returns {data =, format =, size =}.
function M.parse_file(data, file, map)
  file = file or "eFuse file"
  local size = map.size
  local sv = map.saved
  if sv and #data == sv.size then
    local tail = data:sub(5, sv.data_offset)
    local nz = tail:find("[^\0]")
    if nz then
      input_error(file, 4 + nz - 1, "saved eFuse format: reserved byte", "0x00",
        ("0x%02X"):format(tail:byte(nz)), "bytes 4..4095 of a 4608-byte eFuse file are zero")
    end
    local plain = crypto.aes128_cbc_decrypt(sv.key, sv.iv, data:sub(sv.data_offset + 1, sv.data_offset + size))
    local stored = string.unpack("<I4", data, 1)
    local crc = codec.crc32(plain)
    if stored ~= crc then
      input_error(file, 0, "saved eFuse format: CRC32 of the decrypted data", ("0x%08X"):format(crc),
        ("0x%08X"):format(stored), "the file is damaged, or was saved with another key (an encrypted cfg.bin "
          .. "key is not supported)")
    end
    return { data = plain, format = "saved", size = #data }
  end
  -- a raw image is the whole eFuse: anything shorter or longer is a cut or another file, and
  -- padding it would burn whatever its first bytes happen to be
  if #data ~= size then
    input_error(file, #data, "file size", ("%d bytes (raw eFuse image) or %d bytes (saved format)"):format(size,
      sv and sv.size or 0), #data .. " bytes", "an eFuse file is the whole eFuse: a cut file is never padded")
  end
  return { data = data, format = "raw", size = #data }
end

--- Read and parse an eFuse file; adds sha256 (hex of the file bytes) and path.
function M.load_file(path, map)
  local size = util.regular_file(path, "eFuse file")
  local saved = map.saved and map.saved.size
  if size ~= map.size and size ~= saved then   -- the size is refused before reading
    input_error(path, size, "file size", ("%d bytes (raw eFuse image) or %d bytes (saved format)"):format(map.size,
      saved or 0), size .. " bytes", "an eFuse file is the whole eFuse: a cut file is never padded")
  end
  local data = util.readfile(path, "eFuse file", math.max(map.size, saved or 0))
  local f = M.parse_file(data, path, map)
  f.path = path
  f.sha256 = codec.hex(codec.sha256(data))
  return f
end

--- Mask derived from data: 0xFF where a byte is non-zero (QConn's efuse_create_mask_data).
function M.derive_mask(data)
  return (data:gsub("[^\0]", "\xFF"))
end

--- A mask file: same formats as the data file.
function M.load_mask(path, map)
  local f = M.load_file(path, map)
  return f
end

--- Build the 512-byte saved-format file for `data` (tests, and `efuse read --save`).
function M.encode_saved(data, map)
  local sv = map.saved
  local plain = pad(data, map.size)
  local enc = crypto.aes128_cbc_encrypt(sv.key, sv.iv, plain)
  return string.pack("<I4", codec.crc32(plain)) .. zeros(sv.data_offset - 4) .. enc
end

---------------------------------------------------------------------------------------------------
-- decode

local function field_mask32(f)
  local lo, hi = f.bits[1], f.bits[2]
  return (((1 << (hi - lo + 1)) - 1) << lo) & 0xFFFFFFFF
end

local function word(bytes, off) return (string.unpack("<I4", bytes, off + 1)) end

local function mac_text(stored, reversed)
  local b = reversed and stored:reverse() or stored
  return (codec.hex(b):upper():gsub("(%x%x)", "%1:"):gsub(":$", ""))
end
M.mac_text = mac_text

-- Does `f` cover any set bit of `bytes`?
local function touches(f, bytes)
  if f.bits then return word(bytes, f.offset) & field_mask32(f) ~= 0 end
  return not is_zero(bytes:sub(f.offset + 1, f.offset + f.len))
end

local function bits_text(f)
  if f.bits then
    if f.bits[1] == f.bits[2] then return tostring(f.bits[1]) end
    return ("%d:%d"):format(f.bits[2], f.bits[1])
  end
  return ("%d bytes"):format(f.len)
end

--- Decode one field of `bytes`: value, meaning.
function M.field_value(f, bytes, map)
  if f.bits then
    local v = (word(bytes, f.offset) & field_mask32(f)) >> f.bits[1]
    local meaning = f.values and f.values[v]
    if not meaning then meaning = v < 10 and tostring(v) or ("%d (0x%X)"):format(v, v) end
    return v, meaning
  end
  local raw = bytes:sub(f.offset + 1, f.offset + f.len)
  if f.kind == "mac" then
    if is_zero(raw) then return "", "empty" end
    local zc = bytes:byte(f.offset + f.len + 1)
    local ok = zc == zero_bits(raw)
    local reversed = map and map.mac and map.mac.reversed
    return mac_text(raw, reversed), ok and "programmed" or
      ("zero-bit count 0x%02X does not match (expected 0x%02X)"):format(zc, zero_bits(raw))
  elseif f.kind == "ascii" then
    local s = raw:match("^[^\3\0]*")
    if s == "" then return "", "empty" end
    return s, (s:find("[^\32-\126]") and "not printable" or "text")
  elseif f.kind == "counter" then
    local n = popcount(raw)
    return n, tostring(n)
  end
  if is_zero(raw) then return codec.hex(raw), "empty" end
  return codec.hex(raw), "set"
end

-- Per-byte masks of the bits some field describes.
local function coverage(map)
  local cov = {}
  for i = 0, map.size - 1 do cov[i] = 0 end
  for _, f in ipairs(map.fields) do
    if f.bits then
      local m = field_mask32(f)
      for k = 0, 3 do cov[f.offset + k] = cov[f.offset + k] | ((m >> (8 * k)) & 0xFF) end
    else
      local last = f.offset + f.len - 1
      if f.kind == "mac" then last = last + 1 end      -- the zero-bit count byte
      for i = f.offset, last do cov[i] = 0xFF end
    end
  end
  return cov
end

--- Decode `bytes` with `map`: a list of {name, offset, bits, value, meaning, description, src}
--- for every mapped field, then one entry per 32-bit word holding set bits no field describes
--- (name "unknown", meaning "unknown").
function M.decode(bytes, map)
  assert(#bytes == map.size, "decode: expected " .. map.size .. " bytes")
  local out = {}
  for _, f in ipairs(map.fields) do
    local v, meaning = M.field_value(f, bytes, map)
    out[#out + 1] = { name = f.name, offset = f.offset, bits = bits_text(f), value = v, meaning = meaning,
      description = f.description, src = f.src, set = touches(f, bytes) }
  end
  local cov = coverage(map)
  for w = 0, map.size - 4, 4 do
    local m = 0
    for k = 0, 3 do m = m | ((bytes:byte(w + k + 1) & ~cov[w + k] & 0xFF) << (8 * k)) end
    if m ~= 0 then
      out[#out + 1] = { name = "unknown", offset = w, bits = ("mask 0x%08X"):format(m), value = m,
        meaning = "unknown", description = "set bits no documented field describes", set = true }
    end
  end
  for i, d in ipairs(out) do d._i = i end
  table.sort(out, function(x, y)
    if x.offset ~= y.offset then return x.offset < y.offset end
    return x._i < y._i
  end)
  for _, d in ipairs(out) do d._i = nil end
  return out
end

--- Human lines for a decode list. opts.all: also fields that are zero.
function M.format_decode(list, opts)
  local lines = {}
  for _, d in ipairs(list) do
    if d.set or (opts and opts.all) then
      local v = d.value
      if math.type(v) == "integer" then v = ("%d"):format(v) end
      local shown
      if v == "" or v == d.meaning or d.meaning:sub(1, #tostring(v) + 1) == tostring(v) .. " " then
        shown = d.meaning
      elseif d.meaning == "set" then
        shown = tostring(v)
      else
        shown = tostring(v) .. " (" .. d.meaning .. ")"
      end
      lines[#lines + 1] = ("  0x%03X %-9s %-22s %s"):format(d.offset, "[" .. d.bits .. "]", d.name, shown)
    end
  end
  if #lines == 0 then lines[1] = "  (all bits zero)" end
  return lines
end

---------------------------------------------------------------------------------------------------
-- plan

-- Lock fields set in `bytes`: list of {field, first, last}.
local function active_locks(bytes, map, kind)
  local out = {}
  for _, f in ipairs(map.fields) do
    if f.lock == kind and f.bits and touches(f, bytes) then
      out[#out + 1] = { field = f, first = f.protects[1], last = f.protects[1] + f.protects[2] - 1 }
    end
  end
  return out
end

local function lock_at(locks, i)
  for _, l in ipairs(locks) do if i >= l.first and i <= l.last then return l.field.name end end
  return nil
end

local function field_at(map, i, bits)
  bits = bits or 0xFF
  for _, f in ipairs(map.fields) do
    if f.bits and i >= f.offset and i < f.offset + 4 then
      local m = (field_mask32(f) >> (8 * (i - f.offset))) & 0xFF
      if m & bits ~= 0 then return f.name end
    elseif not f.bits and i >= f.offset and i < f.offset + f.len + (f.kind == "mac" and 1 or 0) then
      return f.name
    end
  end
  return "unknown"
end

--- Compare the chip's `current` bytes with `wanted` under `mask` (nil = derived from wanted).
--- Returns a plan: want (wanted & mask), to_set, already, after (current | to_set), conflicts
--- (list of {offset, bits, field, reason}), regions (burn order, only those with bits to set:
--- {start, len, data}), diff (field-level lines), empty (nothing to write).
function M.plan(current, wanted, mask, map)
  local size = map.size
  assert(#current == size and #wanted == size, "plan: expected " .. size .. "-byte images")
  mask = mask or M.derive_mask(wanted)
  assert(#mask == size, "plan: mask size")
  local p = { conflicts = {}, regions = {}, diff = {} }
  p.want = bytewise(wanted, mask, function(w, m) return w & m end)
  p.to_set = bytewise(p.want, current, function(w, c) return w & ~c end)
  p.already = bytewise(p.want, current, function(w, c) return w & c end)
  p.after = bytewise(current, p.to_set, function(c, s) return c | s end)
  local wr_locks = active_locks(current, map, "wr")
  local rd_locks = active_locks(current, map, "rd")
  for i = 0, size - 1 do
    local c, w, m, s = current:byte(i + 1), wanted:byte(i + 1), mask:byte(i + 1), p.to_set:byte(i + 1)
    local bad = m & ~w & c & 0xFF
    if bad ~= 0 then
      p.conflicts[#p.conflicts + 1] = { offset = i, bits = bad, field = field_at(map, i, bad),
        reason = ("the file wants bits 0x%02X clear, the chip has them set (0x%02X)"):format(bad, c) }
    end
    local rl = lock_at(rd_locks, i)
    if rl and p.want:byte(i + 1) ~= 0 then
      local wb = p.want:byte(i + 1)
      p.conflicts[#p.conflicts + 1] = { offset = i, bits = wb, field = field_at(map, i, wb),
        reason = "read-locked (" .. rl .. "): the chip's value cannot be compared" }
    else
      local wl = lock_at(wr_locks, i)
      if wl and s ~= 0 then
        p.conflicts[#p.conflicts + 1] = { offset = i, bits = s, field = field_at(map, i, s),
          reason = ("write-locked (%s): bits 0x%02X can no longer be set"):format(wl, s) }
      end
    end
  end
  for _, r in ipairs(map.regions) do
    local seg = p.to_set:sub(r.start + 1, r.start + r.len)
    if not is_zero(seg) then
      p.regions[#p.regions + 1] = { start = r.start, len = r.len, data = p.want:sub(r.start + 1, r.start + r.len),
        bits = popcount(seg) }
    end
  end
  p.bits_to_set = popcount(p.to_set)
  p.bits_already = popcount(p.already)
  p.empty = p.bits_to_set == 0
  -- field-level diff
  p.lockouts = {}
  for _, f in ipairs(map.fields) do
    if touches(f, p.to_set) then
      local _, before = M.field_value(f, current, map)
      local av, after = M.field_value(f, p.after, map)
      if math.type(av) ~= "integer" and av ~= "" and after == "set" then after = av end
      p.diff[#p.diff + 1] = { name = f.name, offset = f.offset, bits = bits_text(f), before = before, after = after,
        description = f.description }
      local kind = M.lockout_kind(f)
      if kind then
        p.lockouts[#p.lockouts + 1] = { name = f.name, kind = kind, description = f.description,
          needs_flag = f.lockout_flag == true }
      end
    end
  end
  local cov = coverage(map)
  for w = 0, size - 4, 4 do
    local m = 0
    for k = 0, 3 do m = m | ((p.to_set:byte(w + k + 1) & ~cov[w + k] & 0xFF) << (8 * k)) end
    if m ~= 0 then
      p.diff[#p.diff + 1] = { name = "unknown", offset = w, bits = ("mask 0x%08X"):format(m), before = "",
        after = ("sets 0x%08X"):format(m), description = "no documented field: meaning unknown" }
    end
  end
  return p
end

--- What a field can lock out for good, or nil: the map's `lockout` word (secure boot, UART
--- download, flash encryption, JTAG, ...), and every write/read-lock field.
function M.lockout_kind(f)
  if f.lockout then return f.lockout end
  if f.lock == "wr" or f.name:match("^wr_lock_") then return "write lock" end
  if f.lock == "rd" or f.name:match("^rd_lock_") then return "read lock" end
  return nil
end

--- The lock-out fields of a plan that need `--allow-lockout NAME` (UART download disable,
--- flash encryption) and are not in `allowed` (a set of names): sorted names.
function M.lockouts_needing_flag(p, allowed)
  local out = {}
  for _, l in ipairs(p.lockouts or {}) do
    if l.needs_flag and not (allowed and allowed[l.name]) then out[#out + 1] = l.name end
  end
  table.sort(out)
  return out
end

--- Human lines describing a plan.
function M.plan_text(p)
  local lines = {}
  if p.empty then
    lines[#lines + 1] = ("nothing to burn: every wanted bit is already set (%d bits)"):format(p.bits_already)
  else
    lines[#lines + 1] = ("plan: %d bit%s to set, %d already set"):format(p.bits_to_set,
      p.bits_to_set == 1 and "" or "s", p.bits_already)
    for _, d in ipairs(p.diff) do
      lines[#lines + 1] = ("  0x%03X %-9s %-22s %s -> %s"):format(d.offset, "[" .. d.bits .. "]", d.name,
        d.before == "" and "empty" or d.before, d.after)
    end
    local regs = {}
    for _, r in ipairs(p.regions) do regs[#regs + 1] = ("%d..%d"):format(r.start, r.start + r.len - 1) end
    lines[#lines + 1] = "  writes, in this order: " .. table.concat(regs, ", ")
    for _, l in ipairs(p.lockouts or {}) do
      lines[#lines + 1] = ("  LOCK-OUT %s: %s, for good (%s)%s"):format(l.name, l.kind, l.description,
        l.needs_flag and "; needs --allow-lockout " .. l.name or "")
    end
  end
  for _, c in ipairs(p.conflicts) do
    lines[#lines + 1] = ("  CONFLICT at 0x%03X (%s): %s"):format(c.offset, c.field, c.reason)
  end
  return lines
end

local function region_names(list)
  local out = {}
  for _, r in ipairs(list) do out[#out + 1] = ("%d..%d"):format(r.start, r.start + r.len - 1) end
  return #out > 0 and table.concat(out, ", ") or "none"
end
M.region_names = region_names
-- for ncpflash.efuse_burn (the read-back check and the secure-boot guard)
M.touches, M.active_locks, M.lock_at, M.is_zero = touches, active_locks, lock_at, is_zero

---------------------------------------------------------------------------------------------------
-- keys

--- Load and check a root public key (PEM file). Returns {pem =, xy =, sha256 = hex, path =}.
function M.load_root_key(path)
  local pem = util.readfile(path, "root key", 1024 * 1024)
  local ok, xy = pcall(crypto.pem_public_xy, pem)
  if not ok then
    errors.raise("input", ("%s: not a PEM P-256 public key"):format(path), { file = path })
  end
  return { pem = pem, xy = xy, sha256 = codec.hex(codec.sha256(xy)), path = path }
end

---------------------------------------------------------------------------------------------------
-- entry points used by recipes

--- Parse a file (+ mask) for a context before connecting; returns a job table.
function M.prepare_file(ctx, path, a)
  local map, board_efuse = M.map_for(ctx)
  local f = M.load_file(path, map)
  local mask, mask_src
  local mask_path = a.mask
  if not mask_path then
    local guess = path:gsub("%.bin$", "") .. "_mask.bin"
    if guess ~= path and sys.stat(guess) then mask_path = guess end
  end
  if mask_path then
    local m = M.load_mask(mask_path, map)
    mask, mask_src = m.data, mask_path
    ctx.ev:info("mask: " .. mask_path)
  else
    mask = M.derive_mask(f.data)
    mask_src = "derived (0xFF where the data is non-zero)"
  end
  ctx.ev:info(("eFuse file %s: %s format, %d bytes, SHA-256 %s; mask %s"):format(path, f.format, f.size, f.sha256,
    mask_src))
  return { map = map, board_efuse = board_efuse, wanted = f.data, mask = mask,
    source = { path = path, sha256 = f.sha256, format = f.format }, insecure = a.insecure_write,
    root_key = a.root_key, confirm = a.confirm_efuse_burn, audit = a.audit or M.DEFAULT_AUDIT,
    command = "efuse burn", allow_lockout = M.allowed_lockouts(a.allow_lockout, map) }
end

--- The set of field names given with --allow-lockout (repeatable, comma lists); an unknown
--- name is a usage error (a typo must not look like permission).
function M.allowed_lockouts(list, map)
  local set, known = {}, {}
  for _, f in ipairs(map.fields) do known[f.name] = true end
  for _, item in ipairs(list or {}) do
    for n in tostring(item):gmatch("[^,%s]+") do
      if not known[n] then
        errors.raise("usage", ("--allow-lockout: %q is not an eFuse field of this chip"):format(n))
      end
      set[n] = true
    end
  end
  return set
end

--- What a refusal of `job` says was left alone: "nothing was written", or, for the eFuse step of
--- a flash that has not started yet (job.before_flash), "nothing was flashed or burnt".
function M.untouched(job)
  return job and job.before_flash and "nothing was flashed or burnt" or "nothing was written"
end

--- The lock-out fields that need --allow-lockout NAME (UART download disable, flash
--- encryption) which the FILE asks for (wanted & mask) and `job.allow_lockout` does not name:
--- sorted names. Decided without the chip: the flag is needed whenever the file sets the field.
function M.file_lockouts_needing_flag(job)
  local want = bytewise(job.wanted, job.mask or M.derive_mask(job.wanted), function(w, m) return w & m end)
  local out = {}
  for _, f in ipairs(job.map.fields) do
    if f.lockout_flag and touches(f, want) and not (job.allow_lockout and job.allow_lockout[f.name]) then
      out[#out + 1] = f
    end
  end
  table.sort(out, function(x, y) return x.name < y.name end)
  return out
end

--- The refusal of a confirmed burn that sets lock-out fields not named with --allow-lockout.
--- `fields`: list of map fields; `subject`: "this plan" (default) or "the eFuse file".
function M.refuse_lockouts(fields, job, subject)
  local what, names = {}, {}
  for _, f in ipairs(fields) do
    what[#what + 1] = ("%s (%s)"):format(f.name, f.description)
    names[#names + 1] = f.name
  end
  errors.raise("safety", ("refusing to burn: %s sets %s, which lock%s the module out for good; add "
    .. "--allow-lockout %s to burn %s (%s)"):format(subject or "this plan", table.concat(what, ", "),
    #names == 1 and "s" or "",
    table.concat(names, ","), #names == 1 and "it" or "them", M.untouched(job)),
    { fields = table.concat(names, ","), hint = "an eFuse bit cannot be cleared again" })
end

--- Checks that need no chip, so that a job that would be refused fails before anything else
--- happens (before connecting; in `flash --efuse`, before flashing): a bad root key (input), a
--- confirmed secure-path burn without one (safety), and for a confirmed burn: lock-out fields
--- the file sets without --allow-lockout (safety). ncpflash.efuse_burn.precheck adds the checks
--- of the audit file and the pending-record folder.
function M.precheck(job)
  local secure = job.map.secure_write and not job.insecure
  if job.root_key then M.load_root_key(job.root_key) end
  if job.confirm and secure and not job.root_key then
    local be = job.board_efuse
    errors.raise("safety", "the secure eFuse path needs the root public key to check the chip's challenge: "
      .. "give --root-key PEM (" .. M.untouched(job) .. ")",
      { hint = (be and be.root_key_file and ("the key is " .. be.root_key_file .. " ("
        .. (be.root_key_hint or "shipped with the vendor's flasher") .. "); ") or "")
        .. "or use the plain path with --insecure-write" })
  end
  if job.confirm then
    local need = M.file_lockouts_needing_flag(job)
    if #need > 0 then M.refuse_lockouts(need, job, "the eFuse file") end
  end
  return job
end

--- Parse "XX:XX:XX:XX:XX:XX" into 6 bytes (display order).
function M.parse_mac(text)
  text = tostring(text)
  local hex = text:gsub("[:%-]", "")
  local shape = "^%x%x[:%-]?%x%x[:%-]?%x%x[:%-]?%x%x[:%-]?%x%x[:%-]?%x%x$"
  if #hex ~= 12 or not hex:match("^%x+$") or not text:match(shape) then
    errors.raise("usage", ("bad MAC address %q (expected XX:XX:XX:XX:XX:XX)"):format(tostring(text)))
  end
  local b = codec.unhex(hex)
  if is_zero(b) or b == string.rep("\xFF", 6) then errors.raise("usage", "MAC " .. text .. " is not a unit address") end
  if b:byte(1) & 1 == 1 then
    errors.raise("usage", "MAC " .. text .. " is a multicast address (bit 0 of the first byte)")
  end
  return b
end

--- The wanted image and mask that program `mac` (6 display-order bytes) into the first free
--- customer slot of `current`. Returns wanted, mask, slot offset; raises "safety" when no slot is
--- free, and returns nil when the MAC is already in a slot.
function M.mac_job(current, mac, map)
  local m = map.mac
  local stored = m.reversed and mac:reverse() or mac
  for _, off in ipairs(m.slots) do
    if current:sub(off + 1, off + m.len) == stored then return nil, nil, off end
  end
  local used = {}
  for _, off in ipairs(m.customer) do
    local slot = current:sub(off + 1, off + m.len + 1)
    if is_zero(slot) then
      local wanted = zeros(off) .. stored .. string.char(zero_bits(stored)) .. zeros(map.size - off - m.len - 1)
      local mask = zeros(off) .. string.rep("\xFF", m.len + 1) .. zeros(map.size - off - m.len - 1)
      return wanted, mask, off
    end
    used[#used + 1] = ("0x%02X = %s"):format(off, mac_text(current:sub(off + 1, off + m.len), m.reversed))
  end
  errors.raise("safety", "no free customer MAC slot (" .. table.concat(used, ", ") .. "); nothing was written")
end

return M
