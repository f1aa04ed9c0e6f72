-- ncpflash.reset: how BOOT and CHIP_EN are reached, as validated data (docs/api/connect.md).
--
-- A strategy is a table with a `kind`; each kind is one file lua/ncpflash/reset/KIND.lua (built
-- in: lines, gpio, command, manual, boot2, none, host; a user root may add reset/KIND.lua too). This
-- registry finds the kinds, validates and parses strategies, and drives them; it never tests a
-- kind's name: callers ask a strategy's capability flags with reset.has(st, FLAG).
--
-- A kind file returns a table:
--   order      position in lists and messages (default 50)
--   fallback   true: a --reset value that no other kind claims is parsed by this kind
--   flags      capabilities (reset.has): modem_lines (needs the port's DTR/RTS: a port without
--              them warns, it is not a failed reset), line_steps (enter/run are BOOT/CHIP_EN step
--              lists that can be retimed: recover, probe --tune), run_sequence (has a "run"
--              sequence that leaves the ROM), runs_program (starts an external program: recipes
--              need "exec"), retry_without_reset (later attempts only re-sync), until_timeout
--              (retried until st.timeout instead of a count), no_reset (touches nothing)
--   claims(v)                    does this --reset part name this kind?
--   parse(part, board, where)    -> strategy table (validated afterwards)
--   validate(st, where, n)       -> n with the kind's normalized fields (raise reset._steps.bad)
--   describe(st)                 -> one line for humans
--   enter(d), run(d)             -> true | false, reason  (d: the driver {st=, port=, ev=})
--   close(d), save(st), infer(st), methods = {name = function(d, ...)} (all optional)
-- Every strategy may carry `name` and `retries` (handshake attempts, default the chip's) and
-- `timeout` (seconds).
local sys = require("ncpflash.core.sys")
local util = require("ncpflash.util")
local steps = require("ncpflash.reset._steps")

local M = {}

local bad = steps.bad
M.parse_duration = steps.parse_duration

--- The kinds: {name = kind module}, and their names in order.
function M.kinds()
  local names = util.module_names("reset")
  local by, list = {}, {}
  for _, n in ipairs(names) do
    if n:sub(1, 1) ~= "_" then
      by[n] = require("ncpflash.reset." .. n)
      list[#list + 1] = n
    end
  end
  table.sort(list, function(a, b)
    local oa, ob = by[a].order or 50, by[b].order or 50
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  return by, list
end

local function kind_of(st)
  local by = M.kinds()
  local K = by[st.kind]
  if not K then error("reset: strategy of unknown kind " .. tostring(st.kind), 3) end
  return K
end

--- True when the strategy's kind has the capability `flag` (see the list above).
function M.has(st, flag)
  return kind_of(st).flags[flag] == true
end

--- Validate one strategy; returns a normalized copy (raises usage errors naming the field).
function M.validate(st, where)
  where = where or "reset"
  if type(st) ~= "table" then bad(where, "a strategy is a table") end
  local by, list = M.kinds()
  local kind = st.kind
  if kind == nil then
    for _, n in ipairs(list) do
      if by[n].infer and by[n].infer(st) then kind = n; break end
    end
  end
  local K = by[kind]
  if not K then
    bad(where, string.format("unknown kind %q (%s)", tostring(kind), table.concat(list, ", ")))
  end
  local n = { kind = kind, name = st.name, retries = st.retries, timeout = st.timeout }
  if st.retries ~= nil and (math.type(st.retries) ~= "integer" or st.retries < 1 or st.retries > 100) then
    bad(where .. ".retries", "must be 1..100")
  end
  K.validate(st, where, n)
  if n.timeout ~= nil and (type(n.timeout) ~= "number" or n.timeout <= 0 or n.timeout > 3600) then
    bad(where .. ".timeout", "must be a number of seconds (0..3600]")
  end
  return n
end

--- A validated copy of `st` with another enter sequence (and name): strap holds, tuning.
function M.retime(st, enter, name)
  local t = {}
  for k, v in pairs(st) do t[k] = v end
  t.enter, t.name = enter, name or st.name
  return M.validate(t, name or "reset")
end

--- The fields of a strategy worth writing into a board file.
function M.saved(st)
  local K = kind_of(st)
  if K.save then return K.save(st) end
  local t = {}
  for k, v in pairs(st) do if k ~= "name" then t[k] = v end end
  return t
end

--- The strategies a board declares: reset.strategies (a list), else the legacy single table
--- {lines=, active=, enter=, run=}.
function M.from_board(board)
  local r = board.reset
  if not r then return { M.validate({ kind = "none", name = "none (the board has no reset wiring)" }) } end
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

-- The kind that parses one --reset part: the first that claims it, else the fallback.
local function parser_for(part)
  local by, list = M.kinds()
  local fallback
  for _, n in ipairs(list) do
    local K = by[n]
    if K.fallback then fallback = fallback or K
    elseif K.claims and K.claims(part) then return K end
  end
  return fallback
end

--- Parse a --reset value into a list of validated strategies (tried in order, "|"-separated);
--- each part is parsed by the kind that claims it (docs/api/connect.md):
---   boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0      modem lines, the board's wiring
---   en=dtr,boot=rts,active=high;boot=1,en=0,...        modem lines, explicit wiring
---   gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,...  GPIO character-device lines
---   cmd:COMMAND    manual[:SECONDS]    boot2    none
function M.parse_spec(spec, board)
  local list = {}
  for i, part in ipairs(steps.split(spec, "|")) do
    local where = string.format("--reset %q", part)
    part = part:match("^%s*(.-)%s*$")
    local K = parser_for(part)
    if not K then bad(where, "unknown strategy") end
    local st = K.parse(part, board, where)
    st.name = st.name or ("--reset " .. part)
    list[#list + 1] = M.validate(st, where)
    if i > 8 then bad(where, "at most 8 strategies") end
  end
  return list
end

--- True when `v` looks like a --reset value (the CLI's check before it takes the next argument).
function M.is_spec(v)
  if type(v) ~= "string" then return false end
  if v:find("=", 1, true) or v:find("|", 1, true) then return true end
  local by, list = M.kinds()
  for _, n in ipairs(list) do
    if by[n].claims and by[n].claims(v) then return true end
  end
  return false
end

--- The ladder for a connect: --no-reset -> none; --reset SPEC -> those; else the board's.
function M.ladder(opts, board)
  if opts.no_reset or opts.reset == false then return { M.validate({ kind = "none", name = "none (--no-reset)" }) } end
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
  return kind_of(st).describe(st)
end

---------------------------------------------------------------------------------------------------
-- drivers: driver:sequence("enter"|"run") -> true | false, reason;  driver:close();
-- plus the kind's own methods (gpio: driver:gpio_log())

local Driver = {}

local function driver_index(d, key)
  local f = Driver[key]
  if f then return f end
  local methods = d.kind.methods
  return methods and methods[key]
end

--- Run the strategy's "enter" (default) or "run" sequence. Returns true, or false, reason.
function Driver:sequence(which)
  which = which or "enter"
  self.t_start = sys.now()
  local f = self.kind[which]
  if not f then return false, "no " .. which .. " sequence" end
  return f(self)
end

function Driver:close()
  if self.kind.close then self.kind.close(self) end
end

--- A driver for a validated strategy on a port. env: {port=, ev=}.
function M.driver(st, env)
  return setmetatable({ st = st, port = env.port, ev = env.ev, kind = kind_of(st) }, { __index = driver_index })
end

return M
