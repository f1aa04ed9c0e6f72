-- ncpflash.reset: how BOOT and CHIP_EN are reached, as validated data (docs/api/connect.md).
--
-- A strategy is a table with a `kind`:
--   lines    modem lines of the port:  { kind="lines", lines={en="rts", boot="dtr"}, active="low",
--            enter={ {boot=1, en=0}, {wait=0.05}, {en=1}, ... }, run={...} }
--            active: "low" (an asserted line pulls its pin low, the Bouffalo convention), "high",
--            or per signal { en="low", boot="high" }. Levels in steps are pin levels (1 = high).
--   gpio     Linux GPIO character-device lines: lines={en="gpiochip0:17", boot="gpiochip0:27"},
--            active="high" (default; "low" for an inverting driver), enter/run as above.
--   command  an external program: enter = argv table or a shell string, run = idem, timeout = s.
--   manual   a person: prints `prompt`, then the handshake is retried until the ROM answers or
--            `timeout` (s, default 30) passes.
--   boot2    boot2 ISP entry for boards without BOOT wiring (protocol.md §5.5): asks a running
--            application's shell to reboot, streams 0x55 at `baud` (2000000) until boot2 says
--            "Boot2 ISP Ready" (timeout 5 s), then the ROM handshake follows.
--   none     do nothing (the chip is already in download mode).
-- Every strategy may carry `name` and `retries` (handshake attempts, default the chip's).
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")

local M = {}

M.KINDS = { lines = true, gpio = true, command = true, manual = true, boot2 = true, none = true }
local SIGNALS = { en = true, boot = true }

local function bad(where, msg)
  errors.raise("usage", string.format("%s: %s", where, msg),
    { hint = "see docs/api/connect.md for the reset strategy format" })
end

--- "100ms", "0.1s", "0.1", "2s", "1500us" -> seconds (number) or nil, why.
function M.parse_duration(s)
  local num, unit = tostring(s):match("^%s*([%d%.]+)%s*(%a*)%s*$")
  local v = tonumber(num)
  if not v then return nil, "not a duration" end
  local mult = ({ [""] = 1, s = 1, ms = 1e-3, us = 1e-6 })[unit:lower()]
  if not mult then return nil, "unknown unit " .. unit end
  return v * mult
end

local function check_steps(where, steps, sig_ok)
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

--- "gpiochip0:17" | "/dev/gpiochip0:17" -> chip, offset
function M.parse_gpio_line(s)
  local chip, off = tostring(s):match("^([%w/_%-%.]+):(%d+)$")
  if not chip then return nil end
  if not (chip:match("^gpiochip%d+$") or chip:match("^/dev/gpiochip%d+$")) then return nil end
  return chip, tonumber(off)
end

local function check_argv(where, v)
  if v == nil then return nil end
  if type(v) == "string" then
    if v == "" then bad(where, "empty command") end
    return { "/bin/sh", "-c", v }
  end
  if type(v) ~= "table" or #v == 0 then bad(where, "a command is a string or an argv list") end
  for i, a in ipairs(v) do
    if type(a) ~= "string" then bad(string.format("%s[%d]", where, i), "argv items are strings") end
  end
  return v
end

--- Validate one strategy; returns a normalized copy (raises usage errors naming the field).
function M.validate(st, where)
  where = where or "reset"
  if type(st) ~= "table" then bad(where, "a strategy is a table") end
  local kind = st.kind or (st.lines and "lines") or nil
  if not M.KINDS[kind] then
    bad(where, string.format("unknown kind %q (lines, gpio, command, manual, boot2, none)", tostring(kind)))
  end
  local n = { kind = kind, name = st.name, retries = st.retries, timeout = st.timeout }
  if st.retries ~= nil and (math.type(st.retries) ~= "integer" or st.retries < 1 or st.retries > 100) then
    bad(where .. ".retries", "must be 1..100")
  end
  if kind == "lines" or kind == "gpio" then
    if type(st.lines) ~= "table" then bad(where .. ".lines", "must map en/boot to lines") end
    n.lines = {}
    for sig, line in pairs(st.lines) do
      if not SIGNALS[sig] then bad(where .. ".lines", "unknown signal " .. tostring(sig) .. " (en, boot)") end
      if kind == "lines" then
        if line ~= "dtr" and line ~= "rts" then bad(where .. ".lines." .. sig, "must be \"dtr\" or \"rts\"") end
      elseif not M.parse_gpio_line(line) then
        bad(where .. ".lines." .. sig, string.format("%q is not a GPIO line like gpiochip0:17", tostring(line)))
      end
      n.lines[sig] = line
    end
    if not n.lines.en then bad(where .. ".lines", "CHIP_EN (en) must be wired") end
    if kind == "lines" and n.lines.en == n.lines.boot then bad(where .. ".lines", "en and boot on the same line") end
    n.active = check_active(where, st.active, kind == "lines" and "low" or "high")
    n.enter = check_steps(where .. ".enter", st.enter, n.lines)
    n.run = check_steps(where .. ".run", st.run, n.lines)
    if not n.enter or #n.enter == 0 then bad(where .. ".enter", "missing") end
    local rises = false
    for _, s in ipairs(n.enter) do if s.en == 1 then rises = true end end
    if not rises then bad(where .. ".enter", "CHIP_EN never rises (en=1): the chip would not restart") end
    n.fake = st.fake
  elseif kind == "command" then
    n.enter = check_argv(where .. ".enter", st.enter)
    n.run = check_argv(where .. ".run", st.run)
    if not n.enter then bad(where .. ".enter", "missing") end
    n.timeout = st.timeout or 10
  elseif kind == "manual" then
    n.prompt = st.prompt or "put the module in download mode now: hold BOOT high, pulse CHIP_EN (reset) low, "
      .. "then release BOOT"
    n.timeout = st.timeout or 30
  elseif kind == "boot2" then
    n.baud = st.baud or 2000000
    n.timeout = st.timeout or 5
    n.settle = st.settle or 0.3
  end
  if n.timeout ~= nil and (type(n.timeout) ~= "number" or n.timeout <= 0 or n.timeout > 3600) then
    bad(where .. ".timeout", "must be a number of seconds (0..3600]")
  end
  return n
end

--- The strategies a board declares: reset.strategies (a list), else the legacy single
--- modem-line table {lines=, active=, enter=, run=}.
function M.from_board(board)
  local r = board.reset
  if not r then return { { kind = "none", name = "none (the board has no reset wiring)" } } end
  local list = {}
  if r.strategies then
    for i, st in ipairs(r.strategies) do
      list[#list + 1] = M.validate(st, string.format("board %s: reset.strategies[%d]", board.name or "?", i))
    end
  else
    list[1] = M.validate(r, string.format("board %s: reset", board.name or "?"))
  end
  return list
end

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do out[#out + 1] = part end
  return out
end

-- "boot=1,en=0,wait=100ms,en=1" -> steps; adjacent line settings form one step unless a
-- signal repeats.
local function parse_steps(s, where)
  local steps, cur = {}, nil
  for _, item in ipairs(split(s, ",")) do
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

--- Parse a --reset value into a list of validated strategies (tried in order, "|"-separated):
---   boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0      modem lines, the board's wiring
---   en=dtr,boot=rts,active=high;boot=1,en=0,...        modem lines, explicit wiring
---   gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,...  GPIO character-device lines
---   cmd:COMMAND    manual[:SECONDS]    boot2    none
function M.parse_spec(spec, board)
  local list = {}
  for i, part in ipairs(split(spec, "|")) do
    local where = string.format("--reset %q", part)
    part = part:match("^%s*(.-)%s*$")
    local st
    if part == "none" then st = { kind = "none" }
    elseif part == "boot2" then st = { kind = "boot2" }
    elseif part:match("^manual") then
      local t = part:match("^manual:(.+)$")
      local d = t and M.parse_duration(t)
      if t and not d then bad(where, "manual:SECONDS expects a duration") end
      if part ~= "manual" and not t then bad(where, "unknown strategy") end
      st = { kind = "manual", timeout = d }
    elseif part:match("^cmd:") then st = { kind = "command", enter = part:sub(5) }
    else
      local kind = "lines"
      local body = part
      if body:match("^gpio:") then kind = "gpio"; body = body:sub(6) end
      local wiring, steps = body:match("^(.-);(.*)$")
      if not wiring then steps = body end
      st = { kind = kind }
      local base = board and board.reset
      if base and base.strategies then
        for _, b in ipairs(base.strategies) do if (b.kind or "lines") == kind then base = b; break end end
      end
      if wiring then
        st.lines = {}
        for _, item in ipairs(split(wiring, ",")) do
          local k, v = item:match("^%s*(%w+)%s*=%s*(.-)%s*$")
          if k == "active" then st.active = v
          elseif k then st.lines[k] = v
          else bad(where, string.format("wiring item %q is not KEY=VALUE", item)) end
        end
      elseif kind == "lines" and base and base.lines then
        st.lines, st.active = base.lines, base.active
      elseif kind == "lines" then
        st.lines, st.active = { en = "rts", boot = "dtr" }, "low"
      else
        bad(where, "gpio: name the lines first, e.g. gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,en=0,...")
      end
      st.enter = parse_steps(steps, where)
      if base and base.run and kind == "lines" and not wiring then st.run = base.run end
      st.name = "--reset " .. part
    end
    st.name = st.name or ("--reset " .. part)
    list[#list + 1] = M.validate(st, where)
    if i > 8 then bad(where, "at most 8 strategies") end
  end
  return list
end

--- The ladder for a connect: --no-reset -> none; --reset SPEC -> those; else the board's.
function M.ladder(opts, board)
  if opts.no_reset or opts.reset == false then return { { kind = "none", name = "none (--no-reset)" } } end
  if type(opts.reset) == "string" then return M.parse_spec(opts.reset, board) end
  if type(opts.reset) == "table" then
    local out = {}
    for i, st in ipairs(opts.reset) do out[#out + 1] = M.validate(st, "reset[" .. i .. "]") end
    return out
  end
  return M.from_board(board)
end

--- A short human description of a strategy.
function M.describe(st)
  if st.kind == "lines" then
    return string.format("modem lines (CHIP_EN on %s, BOOT on %s, active %s)", st.lines.en:upper(),
      (st.lines.boot or "none"):upper(), st.active.en)
  elseif st.kind == "gpio" then
    return string.format("GPIO lines (CHIP_EN %s, BOOT %s)", st.lines.en, st.lines.boot or "not wired")
  elseif st.kind == "command" then
    return "external command: " .. table.concat(st.enter, " "):gsub("^/bin/sh %-c ", "")
  elseif st.kind == "manual" then
    return string.format("manual (press the buttons; waiting up to %g s)", st.timeout)
  elseif st.kind == "boot2" then
    return string.format("boot2 ISP entry at %d baud", st.baud)
  end
  return "none (no reset)"
end

---------------------------------------------------------------------------------------------------
-- drivers: driver:sequence("enter"|"run") -> true | false, reason;  driver:close()

local Driver = {}
Driver.__index = Driver

local function level_to_pin(st, sig, level)
  -- level 1 = signal active (BOOT high / CHIP_EN high = running) at the module's pin;
  -- an inverting driver ("active low" for gpio) flips it
  if st.kind == "gpio" then
    if st.active[sig] == "low" then return level == 0 end
    return level == 1
  end
  return level == 1
end

function Driver:_modem(step)
  local st = self.st
  local set = {}
  for sig, level in pairs(step) do
    if sig ~= "wait" then
      -- asserted line = pin low when active == "low"
      local asserted = (level == 0)
      if st.active[sig] == "high" then asserted = (level == 1) end
      set[st.lines[sig]] = asserted
    end
  end
  if next(set) == nil then return true end
  local ok, why = self.port:set_lines(set)
  if not ok then return false, tostring(why or "not supported") end
  return true
end

function Driver:_gpio_open(first)
  if self.gpio then return end
  local gpio = require("ncpflash.core.gpio")
  local st = self.st
  local fake_path = sys.getenv("NCPFLASH_GPIO_FAKE")
  local fake = st.fake or (fake_path ~= nil and fake_path ~= "")
  self.gpio, self.gpio_map = {}, {}
  local bychip = {}
  for _, sig in ipairs({ "en", "boot" }) do
    local line = st.lines[sig]
    if line then
      local chip, off = M.parse_gpio_line(line)
      local b = bychip[chip]
      if not b then b = { offsets = {}, values = {}, sigs = {} }; bychip[chip] = b end
      local idle = (sig == "en") and 1 or 0
      local lv = first and first[sig] or idle
      b.offsets[#b.offsets + 1] = off
      b.values[#b.values + 1] = level_to_pin(st, sig, lv)
      b.sigs[#b.sigs + 1] = sig
    end
  end
  for chip, b in pairs(bychip) do
    local h = gpio.request(chip, b.offsets, b.values, { fake = fake, consumer = "ncpflash" })
    self.gpio[#self.gpio + 1] = { h = h, chip = chip, sigs = b.sigs, offsets = b.offsets }
    for i, sig in ipairs(b.sigs) do self.gpio_map[sig] = { h = h, i = i } end
  end
  self.fake_path = fake and fake_path or nil
end

function Driver:_gpio(step, first)
  self:_gpio_open(first)
  local per = {}
  for sig, level in pairs(step) do
    if sig ~= "wait" then
      local m = self.gpio_map[sig]
      per[m.h] = per[m.h] or {}
      per[m.h][m.i] = level_to_pin(self.st, sig, level)
    end
  end
  for h, vals in pairs(per) do h:set(vals) end
  return true
end

--- All recorded GPIO changes (fake backend): {{t=, line="gpiochip0:17", signal="en", value=bool}}.
function Driver:gpio_log()
  local out = {}
  for _, g in ipairs(self.gpio or {}) do
    for _, e in ipairs(g.h:log()) do
      local sig
      for i, o in ipairs(g.offsets) do if o == e.offset then sig = g.sigs[i] end end
      out[#out + 1] = { t = e.t, line = g.chip .. ":" .. e.offset, signal = sig, value = e.value }
    end
  end
  table.sort(out, function(a, b) return a.t < b.t end)
  return out
end

function Driver:_command(argv)
  local pid = sys.spawn(argv, { stdout = "null", stdin = "null" })
  local status = sys.wait(pid, self.st.timeout)
  if not status then
    sys.kill(pid, "KILL")
    sys.wait(pid, 1)
    return false, string.format("reset command did not finish within %g s", self.st.timeout)
  end
  if status ~= 0 then return false, string.format("reset command exited with status %d", status) end
  return true
end

function Driver:_boot2()
  local st, p = self.st, self.port
  local old = p:baud()
  p:set_baud(st.baud)
  p:flush_input()
  p:write("\r\nispboot if\r\nreboot\r\n")
  local deadline = sys.now() + st.timeout
  local seen = ""
  local ok = false
  while sys.now() < deadline do
    p:write(string.rep("\x55", 32))
    seen = (seen .. p:read(256, 0.05)):sub(-512)
    if seen:find("Boot2 ISP Ready", 1, true) then ok = true; break end
  end
  p:set_baud(old)
  if not ok then return false, string.format("boot2 did not answer \"Boot2 ISP Ready\" within %g s", st.timeout) end
  sys.sleep(st.settle)        -- boot2 reboots into the ROM's interface boot
  p:flush_input()
  return true
end

--- Run the strategy's "enter" (default) or "run" sequence. Returns true, or false, reason.
function Driver:sequence(which)
  local st = self.st
  which = which or "enter"
  local seq = st[which]
  self.t_start = sys.now()
  if st.kind == "none" then return true end
  if st.kind == "manual" then
    if which == "enter" and not self.prompted then
      self.prompted = true
      self.ev:info(st.prompt .. string.format(" (waiting up to %g s for the ROM to answer)", st.timeout),
        { reset = "manual" })
    end
    return true
  end
  if st.kind == "boot2" then
    if which ~= "enter" then return false, "boot2 has no run sequence" end
    return self:_boot2()
  end
  if not seq then return false, "no " .. which .. " sequence" end
  if st.kind == "command" then return self:_command(seq) end
  local first = seq[1]
  for _, step in ipairs(seq) do
    if step.wait then sys.sleep(step.wait)
    else
      local ok, why
      if st.kind == "lines" then ok, why = self:_modem(step) else ok, why = self:_gpio(step, first) end
      if not ok then return false, why end
    end
  end
  return true
end

function Driver:close()
  if self.gpio then
    if self.fake_path then
      local f = io.open(self.fake_path, "a")
      if f then
        for _, e in ipairs(self:gpio_log()) do
          f:write(string.format("%.6f %s %s %d\n", e.t, e.line, e.signal or "?", e.value and 1 or 0))
        end
        f:close()
      end
    end
    for _, g in ipairs(self.gpio) do pcall(g.h.close, g.h) end
    self.gpio_closed = true
  end
end

--- A driver for a validated strategy on a port. env: {port=, ev=}.
function M.driver(st, env)
  return setmetatable({ st = st, port = env.port, ev = env.ev }, Driver)
end

return M
