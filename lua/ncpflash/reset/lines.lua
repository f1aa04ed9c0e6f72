-- Reset kind "lines": BOOT and CHIP_EN on the port's modem lines (DTR/RTS), the Bouffalo
-- auto-download circuit (docs/api/connect.md).
--   { kind="lines", lines={en="rts", boot="dtr"}, active="low",
--     enter={ {boot=1, en=0}, {wait=0.05}, {en=1}, ... }, run={...} }
-- active: "low" (an asserted line pulls its pin low, the Bouffalo convention), "high", or per
-- signal { en="low", boot="high" }. Levels in steps are pin levels (1 = high). A board's reset
-- table without `kind` but with `lines` is this kind.
-- --reset: "boot=1,en=0,wait=100ms,en=1,..." (the board's wiring) or "en=dtr,boot=rts,active=high;STEPS".
local steps = require("ncpflash.reset._steps")

local K = {
  order = 1,
  fallback = true,          -- a --reset value no other kind claims is a list of steps
  flags = {
    modem_lines = true,     -- needs modem lines: a port without them warns (not a failed reset)
    line_steps = true,      -- enter/run are BOOT/CHIP_EN step lists (recover and probe --tune retime them)
    run_sequence = true,    -- has a "run" sequence that leaves the ROM (s:reset())
  },
}

function K.infer(st) return st.lines ~= nil end

function K.claims(v) return v:find("=", 1, true) ~= nil end

function K.parse(part, board, where)
  local base = board and board.reset
  if base and base.strategies then
    for _, b in ipairs(base.strategies) do if (b.kind or "lines") == "lines" then base = b; break end end
  end
  return steps.parse_wired("lines", part, part, where, { base = base,
    default_lines = { en = "rts", boot = "dtr" }, default_active = "low" })
end

function K.validate(st, where, n)
  return steps.validate_wired(st, where, n, { active = "low", distinct = true,
    check_line = function(_, line, w)
      if line ~= "dtr" and line ~= "rts" then steps.bad(w, "must be \"dtr\" or \"rts\"") end
    end })
end

function K.describe(st)
  return string.format("modem lines (CHIP_EN on %s, BOOT on %s, active %s)", st.lines.en:upper(),
    (st.lines.boot or "none"):upper(), st.active.en)
end

function K.save(st)
  return { kind = st.kind, lines = st.lines, active = st.active, enter = st.enter, run = st.run }
end

local function set_lines(d, step)
  local st = d.st
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
  local ok, why = d.port:set_lines(set)
  if not ok then return false, tostring(why or "not supported") end
  return true
end

local function sequence(d, which)
  local seq = d.st[which]
  if not seq then return false, "no " .. which .. " sequence" end
  return steps.run_steps(seq, function(step) return set_lines(d, step) end)
end

function K.enter(d) return sequence(d, "enter") end
function K.run(d) return sequence(d, "run") end

return K
