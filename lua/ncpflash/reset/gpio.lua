-- Reset kind "gpio": BOOT and CHIP_EN on Linux GPIO character-device lines (ncpflash.core.gpio).
--   { kind="gpio", lines={en="gpiochip0:17", boot="gpiochip0:27"}, active="high", enter=, run= }
-- active "high" (default) or "low" for an inverting driver; steps as for "lines".
-- --reset: "gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,en=0,wait=100ms,en=1,...".
-- NCPFLASH_GPIO_FAKE=FILE (or fake = true) uses the fake line backend and appends the recorded
-- changes to FILE when the driver closes (tests).
local sys = require("ncpflash.core.sys")
local steps = require("ncpflash.reset._steps")

local K = {
  order = 2,
  flags = {
    line_steps = true,      -- enter/run are BOOT/CHIP_EN step lists (recover and probe --tune retime them)
    run_sequence = true,    -- has a "run" sequence that leaves the ROM (s:reset())
  },
  methods = {},
}

--- "gpiochip0:17" | "/dev/gpiochip0:17" -> chip, offset
function K.parse_line(s)
  local chip, off = tostring(s):match("^([%w/_%-%.]+):(%d+)$")
  if not chip then return nil end
  if not (chip:match("^gpiochip%d+$") or chip:match("^/dev/gpiochip%d+$")) then return nil end
  return chip, tonumber(off)
end

function K.claims(v) return v:match("^gpio:") ~= nil end

function K.parse(part, _, where)
  return steps.parse_wired("gpio", part:sub(6), part, where, {
    no_wiring = "gpio: name the lines first, e.g. gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,en=0,..." })
end

function K.validate(st, where, n)
  return steps.validate_wired(st, where, n, { active = "high",
    check_line = function(_, line, w)
      if not K.parse_line(line) then
        steps.bad(w, string.format("%q is not a GPIO line like gpiochip0:17", tostring(line)))
      end
    end })
end

function K.describe(st)
  return string.format("GPIO lines (CHIP_EN %s, BOOT %s)", st.lines.en, st.lines.boot or "not wired")
end

function K.save(st)
  return { kind = st.kind, lines = st.lines, active = st.active, enter = st.enter, run = st.run }
end

-- level 1 = signal active (BOOT high / CHIP_EN high = running) at the module's pin; an
-- inverting driver ("active low") flips it
local function level_to_pin(st, sig, level)
  if st.active[sig] == "low" then return level == 0 end
  return level == 1
end

local function open(d, first)
  if d.gpio then return end
  local gpio = require("ncpflash.core.gpio")
  local st = d.st
  local fake_path = sys.getenv("NCPFLASH_GPIO_FAKE")
  local fake = st.fake or (fake_path ~= nil and fake_path ~= "")
  d.gpio, d.gpio_map = {}, {}
  local bychip = {}
  for _, sig in ipairs({ "en", "boot" }) do
    local line = st.lines[sig]
    if line then
      local chip, off = K.parse_line(line)
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
    d.gpio[#d.gpio + 1] = { h = h, chip = chip, sigs = b.sigs, offsets = b.offsets }
    for i, sig in ipairs(b.sigs) do d.gpio_map[sig] = { h = h, i = i } end
  end
  d.fake_path = fake and fake_path or nil
end

local function set_lines(d, step, first)
  open(d, first)
  local per = {}
  for sig, level in pairs(step) do
    if sig ~= "wait" then
      local m = d.gpio_map[sig]
      per[m.h] = per[m.h] or {}
      per[m.h][m.i] = level_to_pin(d.st, sig, level)
    end
  end
  for h, vals in pairs(per) do h:set(vals) end
  return true
end

local function sequence(d, which)
  local seq = d.st[which]
  if not seq then return false, "no " .. which .. " sequence" end
  local first = seq[1]
  return steps.run_steps(seq, function(step) return set_lines(d, step, first) end)
end

function K.enter(d) return sequence(d, "enter") end
function K.run(d) return sequence(d, "run") end

--- All recorded GPIO changes (fake backend): {{t=, line="gpiochip0:17", signal="en", value=bool}}.
function K.methods.gpio_log(d)
  local out = {}
  for _, g in ipairs(d.gpio or {}) do
    for _, e in ipairs(g.h:log()) do
      local sig
      for i, o in ipairs(g.offsets) do if o == e.offset then sig = g.sigs[i] end end
      out[#out + 1] = { t = e.t, line = g.chip .. ":" .. e.offset, signal = sig, value = e.value }
    end
  end
  table.sort(out, function(a, b) return a.t < b.t end)
  return out
end

function K.close(d)
  if d.gpio then
    if d.fake_path then
      local f = io.open(d.fake_path, "a")
      if f then
        for _, e in ipairs(K.methods.gpio_log(d)) do
          f:write(string.format("%.6f %s %s %d\n", e.t, e.line, e.signal or "?", e.value and 1 or 0))
        end
        f:close()
      end
    end
    for _, g in ipairs(d.gpio) do pcall(g.h.close, g.h) end
    d.gpio_closed = true
  end
end

return K
