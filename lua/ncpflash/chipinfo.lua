-- ncpflash.chipinfo: a vendor's "chip information" view of the 512-byte eFuse, decoded from data
-- (a board eFuse file's `chip_info` table; ST's is in boards/st67w611m1_efuse.lua). Pure.
--
-- The rules are those of ST's NCP_get_chip_info (X-CUBE-ST67W61 1.2.0 and later,
-- Projects/ST67W6X_Scripts/Binaries/NCP_info/read_chip_info.py and .c), field by field, so that
-- the values are the same strings, numbers and lists ST's tool prints:
--   field kinds   choice (a bit field mapped to words), filled (any byte non-zero), bitlength
--                 (the upper half of a redundant counter, most significant byte first, as an
--                 integer's bit length), mac (reversed, upper-case, ":"), text (bytes before a
--                 stop byte, else `invalid`), year_week, hex (bytes in order, upper-case)
--   trims         rows {name, kind = wifi|ble|xtal, en = {word, bit}, value = {word, first bit,
--                 length}, parity = {word, bit}}: shown when enabled and the parity bit equals
--                 the parity of the value; the output field is the name without its last digit,
--                 and a later valid row overwrites an earlier one
--
--   decode(bytes, spec) -> {values = {ST name = value}, order = {names as ST prints them},
--                           rows = {per trim row: name, field, enabled, parity_ok, raw, shown},
--                           notes = {ncpflash's remarks}}
--   lines(info)         -> ST's output lines ("%-30s: %s", Python's list form)
--   json(info)          -> the values table for --json (lists as JSON arrays)
local json = require("ncpflash.json")

local M = {}

local function word(bytes, off) return (string.unpack("<I4", bytes, off + 1)) end

local function bits(bytes, off, first, len) return (word(bytes, off) >> first) & ((1 << len) - 1) end

local function popcount(v)
  local n = 0
  while v ~= 0 do n = n + (v & 1); v = v >> 1 end
  return n
end

local function is_zero(s) return not s:find("[^\0]") end

-- Bit length of the integer whose bytes are `s`, most significant first (any length).
local function bit_length(s)
  for i = 1, #s do
    local b = s:byte(i)
    if b ~= 0 then
      local n = 0
      while b ~= 0 do n = n + 1; b = b >> 1 end
      return (#s - i) * 8 + n
    end
  end
  return 0
end

local function upper_hex(s) return (s:gsub(".", function(c) return ("%02X"):format(c:byte()) end)) end

-- 5-bit two's-complement pieces of v.
local function piece(v, i)
  local p = (v >> (5 * i)) & 0x1F
  if p >= 16 then p = p - 32 end
  return p
end

-- The 14 per-channel Wi-Fi offsets from pieces t0, t1, t2 (floor divisions, as Python's //).
local function wifi_channels(v)
  local t0, t1, t2 = piece(v, 0), piece(v, 1), piece(v, 2)
  local out = {}
  out[1], out[7], out[13] = t0, t1, t2
  local s = (t1 - t0) * 100 // 6
  for k = 1, 5 do out[k + 1] = (s * k + 50) // 100 + t0 end
  s = (t2 - t1) * 100 // 6
  for k = 7, 11 do out[k + 1] = (s * (k - 6) + 50) // 100 + t1 end
  out[14] = (s * 7 + 50) // 100 + t1
  return out
end

local FIELD = {}

function FIELD.choice(f, b)
  local v = bits(b, f.word, f.bits[1], f.bits[2] - f.bits[1] + 1)
  local s = f.values[v]
  if s == nil then s = f.default end
  return s
end

function FIELD.filled(f, b)
  return is_zero(b:sub(f.offset + 1, f.offset + f.len)) and (f.empty or "Empty") or (f.filled or "Filled")
end

function FIELD.bitlength(f, b)
  -- two redundant halves; the upper one, most significant byte first
  local half = b:sub(f.offset + f.len // 2 + 1, f.offset + f.len):reverse()
  return bit_length(half)
end

function FIELD.mac(f, b)
  return (upper_hex(b:sub(f.offset + 1, f.offset + f.len):reverse()):gsub("(%x%x)", "%1:"):gsub(":$", ""))
end

function FIELD.text(f, b, notes)
  local raw = b:sub(f.offset + 1, f.offset + f.len)
  local stop = raw:find(string.char(f.stop), 1, true)
  if not stop then return f.invalid end
  local s = raw:sub(1, stop - 1)
  if s:find("[\128-\255]") then
    notes[#notes + 1] = ("%s: bytes above 0x7F are shown as \\xNN (ST's tool stops with a decode error there)")
      :format(f[1])
    s = s:gsub("[\128-\255]", function(c) return ("\\x%02X"):format(c:byte()) end)
  end
  return s
end

function FIELD.year_week(f, b)
  return ("Year 20%02d | Week %02d"):format(b:byte(f.offset + 1), b:byte(f.offset + 2))
end

function FIELD.hex(f, b)
  return upper_hex(b:sub(f.offset + 1, f.offset + f.len))
end

local TRIM = {
  wifi = wifi_channels,
  ble = function(v)
    local out = {}
    for i = 0, 4 do out[i + 1] = piece(v, i) end
    return out
  end,
  xtal = function(v) return v end,
}

--- Decode a 512-byte eFuse image with a chip_info spec.
function M.decode(bytes, spec)
  local info = { values = {}, order = {}, rows = {}, notes = {} }
  for _, f in ipairs(spec.fields) do
    local fn = FIELD[f[2]]
    if not fn then error("chip_info: unknown field kind " .. tostring(f[2]) .. " for " .. tostring(f[1])) end
    info.values[f[1]] = fn(f, bytes, info.notes)
    info.order[#info.order + 1] = f[1]
  end
  for _, t in ipairs(spec.trims or {}) do
    local name = t[1]
    local field = name:gsub("%d$", "")
    local raw = bits(bytes, t.value[1], t.value[2], t.value[3])
    local row = { name = name, field = field, raw = raw,
      enabled = bits(bytes, t.en[1], t.en[2], 1) == 1,
      parity_ok = popcount(raw) & 1 == bits(bytes, t.parity[1], t.parity[2], 1) }
    row.shown = row.enabled and row.parity_ok
    if row.shown then
      if info.values[field] == nil then info.order[#info.order + 1] = field end
      info.values[field] = TRIM[t.kind](raw)
    end
    info.rows[#info.rows + 1] = row
  end
  return info
end

local function py(v)
  if type(v) == "table" then
    local t = {}
    for i, x in ipairs(v) do t[i] = tostring(x) end
    return "[" .. table.concat(t, ", ") .. "]"
  end
  return tostring(v)
end
M.python_text = py

--- ST's output lines, one per field in ST's order ("%-30s: %s").
function M.lines(info)
  local out = {}
  for _, name in ipairs(info.order) do out[#out + 1] = ("%-30s: %s"):format(name, py(info.values[name])) end
  return out
end

--- ncpflash's own remarks: trim rows ST's tool leaves out, and why.
function M.row_notes(info)
  local out = {}
  for _, r in ipairs(info.rows) do
    if r.enabled and not r.parity_ok then
      out[#out + 1] = ("%s: enabled, but its parity bit does not match the value 0x%X: not shown (as ST's tool)")
        :format(r.name, r.raw)
    end
  end
  for _, n in ipairs(info.notes) do out[#out + 1] = n end
  return out
end

--- The values for --json: ST's field names as keys, ST's values (lists as arrays).
function M.json(info)
  local t = {}
  for k, v in pairs(info.values) do
    if type(v) == "table" then
      local a = setmetatable({}, json.array)
      for i, x in ipairs(v) do a[i] = x end
      v = a
    end
    t[k] = v
  end
  return t
end

--- Everything a recipe adds to its result and its human lines for `bytes` (nil when the board
--- has no chip_info spec): res.chip_info, res.chip_info_rows, and the lines.
function M.report(bytes, board_efuse, res)
  local spec = board_efuse and board_efuse.chip_info
  if not spec then return {} end
  local info = M.decode(bytes, spec)
  res.chip_info = M.json(info)
  local rows = setmetatable({}, json.array)
  for i, r in ipairs(info.rows) do
    rows[i] = { name = r.name, field = r.field, enabled = r.enabled, parity_ok = r.parity_ok, raw = r.raw,
      shown = r.shown }
  end
  res.chip_info_rows = rows
  local lines = { ("chip information, as %s prints it:"):format(spec.tool or "the vendor's tool") }
  for _, l in ipairs(M.lines(info)) do lines[#lines + 1] = l end
  for _, n in ipairs(M.row_notes(info)) do lines[#lines + 1] = "  (" .. n .. ")" end
  return lines
end

return M
