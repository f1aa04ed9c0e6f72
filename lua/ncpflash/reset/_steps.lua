-- ncpflash.reset._steps: what the reset kinds share (not a kind: names starting with "_" are
-- skipped by the registry). Usage errors, durations, and the BOOT/CHIP_EN step language of the
-- kinds that drive lines (lines, gpio):
--   steps   { {boot=1, en=0}, {wait=0.05}, {en=1}, ... }   levels are pin levels (1 = high)
--   spec    "boot=1,en=0,wait=100ms,en=1"                  (--reset), optionally "WIRING;STEPS"
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")

local M = {}

M.SIGNALS = { en = true, boot = true }
local SIGNALS = M.SIGNALS

--- Raise the usage error of a malformed strategy, naming where it is.
function M.bad(where, msg)
  errors.raise("usage", string.format("%s: %s", where, msg),
    { hint = "see docs/api/connect.md for the reset strategy format" })
end
local bad = M.bad

--- "100ms", "0.1s", "0.1", "2s", "1500us" -> seconds (number) or nil, why.
function M.parse_duration(s)
  local num, unit = tostring(s):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local v = tonumber(num)
  if not v then return nil, "not a duration" end
  local mult = ({ [""] = 1, s = 1, ms = 1e-3, us = 1e-6 })[unit:lower()]
  if not mult then return nil, "unknown unit " .. unit end
  return v * mult
end

function M.split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do out[#out + 1] = part end
  return out
end

--- Validate a list of steps; sig_ok = the wired signals. Returns a normalized copy (or nil).
function M.check_steps(where, steps, sig_ok)
  if steps == nil then return nil end
  if type(steps) ~= "table" then bad(where, "must be a list of steps") end
  local out = {}
  for i, st in ipairs(steps) do
    local w = string.format("%s[%d]", where, i)
    if type(st) ~= "table" then bad(w, "a step is a table like {boot=1, en=0} or {wait=0.1}") end
    local n = {}
    for k, v in pairs(st) do
      if k == "wait" then
        if type(v) == "string" then v = M.parse_duration(v) end
        if type(v) ~= "number" or v < 0 or v > 60 then bad(w, "wait must be 0..60 seconds") end
        n.wait = v
      elseif SIGNALS[k] then
        if v == true then v = 1 elseif v == false then v = 0 end
        if v ~= 0 and v ~= 1 then bad(w, k .. " must be 0 or 1") end
        if sig_ok and not sig_ok[k] then bad(w, "signal " .. k .. " is not wired in this strategy") end
        n[k] = v
      else
        bad(w, string.format("unknown key %q (boot, en, wait)", tostring(k)))
      end
    end
    if n.wait and (n.boot or n.en) then bad(w, "a step either waits or sets lines, not both") end
    out[#out + 1] = n
  end
  for k in pairs(steps) do
    if math.type(k) ~= "integer" then bad(where, "unexpected key " .. tostring(k)) end
  end
  return out
end

local function check_active(where, a, default)
  a = a or default
  local function one(v, w)
    if v ~= "low" and v ~= "high" then bad(w, "active must be \"low\" or \"high\"") end
    return v
  end
  if type(a) == "table" then
    local t = {}
    for k, v in pairs(a) do
      if not SIGNALS[k] then bad(where, "active: unknown signal " .. tostring(k)) end
      t[k] = one(v, where .. ".active." .. k)
    end
    return t
  end
  local v = one(a, where .. ".active")
  return { en = v, boot = v }
end

--- The fields of a strategy that drives BOOT/CHIP_EN lines, into the normalized `n`.
--- o.check_line(sig, line, where) validates one line name; o.active = the default polarity;
--- o.distinct = en and boot must be different lines.
function M.validate_wired(st, where, n, o)
  if type(st.lines) ~= "table" then bad(where .. ".lines", "must map en/boot to lines") end
  n.lines = {}
  for sig, line in pairs(st.lines) do
    if not SIGNALS[sig] then bad(where .. ".lines", "unknown signal " .. tostring(sig) .. " (en, boot)") end
    o.check_line(sig, line, where .. ".lines." .. sig)
    n.lines[sig] = line
  end
  if not n.lines.en then bad(where .. ".lines", "CHIP_EN (en) must be wired") end
  if o.distinct and n.lines.en == n.lines.boot then bad(where .. ".lines", "en and boot on the same line") end
  n.active = check_active(where, st.active, o.active)
  n.enter = M.check_steps(where .. ".enter", st.enter, n.lines)
  n.run = M.check_steps(where .. ".run", st.run, n.lines)
  if not n.enter or #n.enter == 0 then bad(where .. ".enter", "missing") end
  local rises = false
  for _, s in ipairs(n.enter) do if s.en == 1 then rises = true end end
  if not rises then bad(where .. ".enter", "CHIP_EN never rises (en=1): the chip would not restart") end
  n.fake = st.fake
  return n
end

-- "boot=1,en=0,wait=100ms,en=1" -> steps; adjacent line settings form one step unless a
-- signal repeats.
function M.parse_steps(s, where)
  local steps, cur = {}, nil
  for _, item in ipairs(M.split(s, ",")) do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then
      local k, v = item:match("^(%w+)%s*=%s*(.+)$")
      if not k then bad(where, string.format("%q is not KEY=VALUE", item)) end
      if k == "wait" then
        local d, why = M.parse_duration(v)
        if not d then bad(where, string.format("wait=%s: %s (use e.g. 100ms)", v, why)) end
        steps[#steps + 1] = { wait = d }
        cur = nil
      elseif SIGNALS[k] then
        if v ~= "0" and v ~= "1" then bad(where, string.format("%s=%s: use 0 or 1", k, v)) end
        if not cur or cur[k] ~= nil then cur = {}; steps[#steps + 1] = cur end
        cur[k] = tonumber(v)
      else
        bad(where, string.format("unknown key %q (boot, en, wait)", k))
      end
    end
  end
  return steps
end

--- "[WIRING;]STEPS" of a --reset value for a line-driving kind. Without WIRING the lines (and
--- the run sequence) come from o.base (the board's strategy of this kind, if any), else
--- o.default_lines/o.default_active, else the usage error o.no_wiring. Returns the strategy table
--- (not validated yet).
function M.parse_wired(kind, body, part, where, o)
  local wiring, steps = body:match("^(.-);(.*)$")
  if not wiring then steps = body end
  local st = { kind = kind }
  local base = o.base
  if wiring then
    st.lines = {}
    for _, item in ipairs(M.split(wiring, ",")) do
      local k, v = item:match("^%s*(%w+)%s*=%s*(.-)%s*$")
      if k == "active" then st.active = v
      elseif k then st.lines[k] = v
      else bad(where, string.format("wiring item %q is not KEY=VALUE", item)) end
    end
  elseif base and base.lines then
    st.lines, st.active = base.lines, base.active
  elseif o.default_lines then
    st.lines, st.active = o.default_lines, o.default_active
  else
    bad(where, o.no_wiring)
  end
  st.enter = M.parse_steps(steps, where)
  if base and base.run and not wiring then st.run = base.run end
  st.name = "--reset " .. part
  return st
end

--- Run a step list: waits sleep, line steps go to set(step) -> true | false, reason.
function M.run_steps(seq, set)
  for _, step in ipairs(seq) do
    if step.wait then sys.sleep(step.wait)
    else
      local ok, why = set(step)
      if not ok then return false, why end
    end
  end
  return true
end

return M
