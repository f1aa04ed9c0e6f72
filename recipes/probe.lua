-- probe: run the connect ladder verbosely, classify every attempt, name the adapter and its
-- known limits, and say what to try next (docs/api/connect.md). --tune sweeps the reset timings.
local sys = require("ncpflash.core.sys")
local isp = require("ncpflash.core.isp")
local session = require("ncpflash.session")
local handshake = require("ncpflash.handshake")
local reset = require("ncpflash.reset")
local adapters = require("ncpflash.adapters")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local json = require("ncpflash.json")

local function hexs(s, max) return util.hex_prefix(s, max or 16) end

local function attempt_row(a)
  local extra = ""
  if a.app then extra = string.format("  text at %d baud: %q", a.app.baud, a.app.line)
  elseif #a.got > 0 then extra = "  " .. hexs(a.got) end
  if a.why then extra = extra .. "  (" .. a.why .. ")" end
  if a.echoed then extra = extra .. "  (our own 0x55 came back in front of the OK)" end
  return string.format("attempt %-2d %-8s %7d baud  %-12s %4d bytes %6.0f ms%s", a.attempt, a.kind_of_reset or "?",
    a.baud, a.kind, #a.got, a.seconds * 1000, extra)
end

local function attempt_json(a)
  return { strategy = a.strategy, reset = a.kind_of_reset, attempt = a.attempt, baud = a.baud, kind = a.kind,
    bytes = #a.got, hex = hexs(a.got, 64), seconds = a.seconds, echoed = a.echoed, app_baud = a.app and a.app.baud,
    app_line = a.app and a.app.line, why = a.why }
end

---------------------------------------------------------------------------------------------------
-- --tune

local function serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    local short = string.format("%.10g", v)
    return tonumber(short) == v and short or string.format("%.17g", v)
  elseif t == "boolean" then return tostring(v)
  elseif t ~= "table" then return "nil" end
  local keys, n = {}, #v
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i = 1, n do parts[#parts + 1] = serialize(v[i], indent .. "  ") end
  for _, k in ipairs(keys) do
    local key = (type(k) == "string" and k:match("^[%a_][%w_]*$")) and k or ("[" .. serialize(k) .. "]")
    parts[#parts + 1] = key .. " = " .. serialize(v[k], indent .. "  ")
  end
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #one < 90 then return one end
  return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. ",\n" .. indent .. "}"
end

local function tune_sequence(hold, delay)
  return { { boot = 1, en = 0 }, { wait = hold }, { en = 1 }, { wait = delay }, { boot = 0 } }
end

-- One candidate, `trials` times: returns reliable (bool), worst seconds from reset to OK.
local function try_candidate(port, base, chip, baud, hold, delay, sync_s, trials, ev)
  local st = reset.retime(base, tune_sequence(hold, delay), "tune")
  local d = reset.driver(st, { port = port, ev = ev })
  local worst = 0
  for _ = 1, trials do
    local t0 = sys.now()
    local ok, why = d:sequence("enter")
    if not ok then d:close(); errors.raise("handshake", "tune: the reset lines cannot be driven: " .. tostring(why)) end
    port:flush_input()
    isp.sync(port, math.max(4, math.floor(sync_s * baud / 10)))
    local got = port:expect("OK", chip.sync.read_timeout)
    local dt = sys.now() - t0
    if not got then d:close(); return false, dt end
    worst = math.max(worst, dt)
    sys.sleep(chip.sync.settle or 0.02)
  end
  d:close()
  return true, worst
end

local function tune(ctx, a)
  local ev = ctx.ev
  local board, chip = ctx:board(), ctx:chip()
  local base
  for _, st in ipairs(reset.ladder({ reset = ctx.opts.reset }, board)) do
    if reset.has(st, "line_steps") then base = st; break end
  end
  if not base then
    errors.raise("usage", "probe --tune needs a reset strategy with lines (modem lines or gpio) to sweep",
      { hint = "give one with --reset 'boot=1,en=0,wait=50ms,en=1,wait=100ms,boot=0'" })
  end
  local baud = ctx.opts.baud or chip.baud.handshake
  local port <close> = ctx:open_port({ baud = baud })
  local trials = a.trials or 3
  local holds = { 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5 }
  local delays = { 0.005, 0.01, 0.02, 0.05, 0.1, 0.2 }
  local syncs = { 0.002, 0.004, 0.006, 0.01 }
  local cur = { hold = 0.05, delay = 0.1, sync = chip.sync.seconds }
  local rows = {}
  local function sweep(name, values)
    for _, v in ipairs(values) do
      local c = { hold = cur.hold, delay = cur.delay, sync = cur.sync }
      c[name] = v
      local ok, t = try_candidate(port, base, chip, baud, c.hold, c.delay, c.sync, trials, ev)
      rows[#rows + 1] = { param = name, hold = c.hold, delay = c.delay, sync = c.sync, reliable = ok, seconds = t }
      ev:info(string.format("  %-5s hold %5.0f ms  delay %5.0f ms  sync %4.1f ms  -> %s%s", name, c.hold * 1000,
        c.delay * 1000, c.sync * 1000, ok and "reliable" or "failed",
        ok and string.format(" (%.0f ms to OK, worst of %d)", t * 1000, trials) or ""))
      if ok then cur[name] = v; return true end
    end
    return false
  end
  ev:stage("tune", { trials = trials })
  ev:info(string.format("sweeping reset hold, handshake delay and sync length (%d trials each) with %s",
    trials, reset.describe(base)))
  local found = sweep("hold", holds) and sweep("delay", delays) and sweep("sync", syncs)
  if not found then
    errors.raise("handshake", "probe --tune: no candidate handshake was reliable",
      { hint = "run 'ncpflash probe' first: it says why the ROM does not answer" })
  end
  local _, best = try_candidate(port, base, chip, baud, cur.hold, cur.delay, cur.sync, trials, ev)
  -- the fastest values that worked here are the edge, not a setting: the board file gets a
  -- margin (twice the hold and delay, 1.5 times the sync burst) for other cables, temperatures
  -- and units
  -- (up to the next 0.1 ms, so the file holds exactly the values reported)
  local function up(x) return math.ceil(x * 10000 - 1e-6) / 10000 end
  local saved = { hold = up(cur.hold * 2), delay = up(cur.delay * 2), sync = up(cur.sync * 1.5) }
  -- the user board: the effective board with the tuned sequence and sync length
  local name = a.save or board.name
  if not name:match("^[%w_%-]+$") then errors.raise("usage", "--save: a board name is letters, digits, _ and -") end
  local out = {}
  for k, v in pairs(board) do out[k] = v end
  out.name = name
  local r = {}
  for k, v in pairs(board.reset or {}) do r[k] = v end
  local tuned = reset.saved(reset.retime(base, tune_sequence(saved.hold, saved.delay)))
  if r.strategies then
    r.strategies = { tuned, table.unpack(board.reset.strategies, 2) }
  else
    for k, v in pairs(tuned) do r[k] = v end
  end
  out.reset = r
  out.sync = { seconds = saved.sync }
  -- $XDG_CONFIG_HOME/ncpflash/boards (~/.config/...); Windows: %APPDATA%\ncpflash\boards
  local dir = (require("ncpflash.path").config_dir() or "./.config/ncpflash") .. "/boards"
  sys.mkdirs(dir)
  local path = dir .. "/" .. name .. ".lua"
  local f = assert(io.open(path, "wb"))
  f:write(string.format("-- written by `ncpflash probe --tune` on %s for %s: the fastest values that\n"
    .. "-- answered %d of %d handshakes were reset hold %.0f ms, handshake delay %.0f ms, sync %.1f ms;\n"
    .. "-- saved with a margin: %.0f ms, %.0f ms, %.1f ms.\n"
    .. "-- Delete this file to go back to the built-in board.\nreturn %s\n", os.date("!%Y-%m-%d %H:%M UTC"),
    ctx.opts.port or "?", trials, trials, cur.hold * 1000, cur.delay * 1000, cur.sync * 1000, saved.hold * 1000,
    saved.delay * 1000, saved.sync * 1000, serialize(out)))
  f:close()
  ev:result({ tuned = { hold = cur.hold, delay = cur.delay, sync = cur.sync, seconds = best, trials = trials },
    saved = saved, board_file = path, board = name, sweep = setmetatable(rows, json.array),
    summary = { string.format("tuned     reset hold %.0f ms, handshake delay %.0f ms, sync burst %.1f ms: OK %.0f ms "
      .. "after the reset (worst of %d)", cur.hold * 1000, cur.delay * 1000, cur.sync * 1000, best * 1000, trials),
      string.format("saved     %s with a margin: hold %.0f ms, delay %.0f ms, sync %.1f ms (board %q%s)", path,
        saved.hold * 1000, saved.delay * 1000, saved.sync * 1000, name,
        name == board.name and ", used from now on instead of the built-in; connect and info say so"
          or ("; use --board " .. name)) } })
end

---------------------------------------------------------------------------------------------------
-- probe

local function next_step(kind, adapter, attempts, lines_ok)
  if kind == "ok" then
    local first = attempts[1]
    if #attempts > 1 then
      return string.format("the ROM answered on attempt %d (before: %s) - a first attempt that fails is common; "
        .. "--retries covers it and 'ncpflash probe --tune' finds timings that work the first time",
        #attempts, first and first.kind or "?")
    end
    if adapter and adapter.next then return adapter.next end
    return "ready: flash with 'ncpflash flash --config X.ini'"
  end
  local adv = handshake.ADVICE[kind] or handshake.ADVICE.nothing
  local s = adv[2]
  if kind == "nothing" and lines_ok == false then
    s = "this port cannot drive BOOT/CHIP_EN: use --reset manual (press the buttons when asked), --reset "
      .. "cmd:'...' (your loader) or --reset gpio:...; also check power and that TX/RX are crossed"
  end
  if adapter and adapter.next and (kind == "nothing" or kind == "garbage" or kind == "partial") then
    s = s .. "; adapter: " .. adapter.next
  end
  return s
end

return {
  help = "diagnose the connection: run the connect ladder verbosely and say what to try next",
  description = [[
Runs the connect ladder (probe, each reset strategy with its retries, then lower handshake bauds)
and prints every attempt with its classification: nothing, ok, partial (an O or K without its pair),
echo (our own 0x55 came back), application (text at 115200/921600/2000000: its first line is shown),
garbage. Names the adapter (USB VID:PID) with its known limits, and the next step to try.
With --tune, sweeps reset hold, handshake delay and sync length and saves the fastest reliable
values into a user board file ($XDG_CONFIG_HOME/ncpflash/boards/NAME.lua). See docs/api/connect.md.]],
  args = {
    { "--tune", flag = true, help = "sweep reset timings and save the fastest reliable ones in a user board file" },
    { "--trials", type = "int", help = "--tune: handshakes per candidate (default 3)" },
    { "--save", help = "--tune: board name to save as (default: the current board's)" },
    { "--no-ladder", flag = true, help = "do not try lower handshake bauds" },
  },
  run = function(ctx, a)
    if a.tune then return tune(ctx, a) end
    local ev = ctx.ev
    local info, adapter
    local lines = {}
    local board = ctx:board()
    local strategies = reset.ladder({ reset = ctx.opts.no_reset and false or ctx.opts.reset }, board)
    ev:info("reset ladder:")
    for i, st in ipairs(strategies) do ev:info(string.format("  %d. %s", i, reset.describe(st))) end
    local attempts = {}
    local function on_attempt(at)
      if attempts[#attempts] ~= at then
        attempts[#attempts + 1] = at
        ev:info(attempt_row(at), { attempt = attempt_json(at) })
      elseif at.app then   -- the same attempt, reclassified after listening at the console bauds
        ev:info(string.format("           then listened: %s, text at %d baud: %q", at.kind, at.app.baud, at.app.line),
          { attempt = attempt_json(at) })
      end
    end
    local function on_port(p)
      info = p:info()
      adapter = adapters.lookup(info)
      ev:info(string.format("port      %s (%s, modem lines: %s%s)", info.url, info.kind, info.lines and "yes" or "no",
        info.low_latency and (", low latency: " .. info.low_latency) or ""))
      if adapter then
        ev:info(string.format("adapter   %s %s - known limits: %s", adapter.vid_pid, adapter.name, adapter.limits))
      end
    end
    local t0 = sys.now()
    local ok, s = errors.catch(session.connect, ctx, { on_attempt = on_attempt, on_port = on_port,
      baud_ladder = not a.no_ladder })
    local kind, err, rom
    if ok then
      kind = "ok"
      if s.probed then
        ev:info("probe     the ROM was already listening (a live session: no reset needed)")
      end
      rom = { rom_version = s.info.rom_version, chip_id = s.info.chip_id, mac = s:mac(), jedec = s.jedec_hex,
        baud = s.baud, handshake_baud = s.handshake and s.handshake.baud }
      if info and adapter and adapter.max_baud and s.baud > adapter.max_baud then
        adapter.next = string.format("this adapter is rated to %d baud but the session runs at %d", adapter.max_baud,
          s.baud)
      end
      s:close()
    else
      err = s
      kind = err.kind or (err.code == "handshake" and "nothing") or err.code
    end
    local lines_ok = nil
    for _, at in ipairs(attempts) do if at.why and at.modem_lines then lines_ok = false end end
    if info and info.lines == false then lines_ok = false end
    local step = next_step(kind, adapter, attempts, lines_ok)
    local label = kind
    local best = err and err.app
    if kind == "application" and best then
      label = string.format("application (text at %d baud: %q)", best.baud, best.line)
    end
    lines[#lines + 1] = string.format("result    %s%s", label, ok and string.format(" - the ROM answered (%s, chip id "
      .. "%s) in %.2f s", rom.jedec and ("flash " .. rom.jedec) or "", rom.chip_id, sys.now() - t0) or
      (" - " .. ((handshake.ADVICE[kind] or {})[1] or err.message)))
    lines[#lines + 1] = "next      " .. step
    local js = {}
    for i, at in ipairs(attempts) do js[i] = attempt_json(at) end
    ev:result({ classification = kind, ok = ok, attempts = setmetatable(js, json.array), rom = rom,
      app = best and { baud = best.baud, line = best.line },
      adapter = adapter and { vid_pid = adapter.vid_pid, name = adapter.name, limits = adapter.limits } or nil,
      port = info and { url = info.url, kind = info.kind, lines = info.lines, low_latency = info.low_latency },
      next_step = step, summary = lines })
    if not ok then
      err.hint = nil   -- the next step is printed above
      error(err, 0)
    end
  end,
}
