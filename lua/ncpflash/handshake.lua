-- ncpflash.handshake: getting a boot ROM to answer (protocol.md §2, §5.1; docs/api/connect.md).
--
-- The reset strategies of a link (ncpflash.reset) are run, the sync burst is sent and what came
-- back is classified; the ladder retries each strategy (and lower bauds when asked) and, when the
-- ROM never answers, raises one "handshake" error with the most telling attempt and advice.
--
-- The functions work on the link fields of a session table `s` (ncpflash.session):
--   s.port, s.chip, s.ev, s.url          the open port, the chip data, events, the port's name
--   s.strategies                         validated reset strategies (reset.ladder)
--   s.attempts, s.app, s.lines_ok        written here: attempt records, a sniffed application,
--   s.drivers, s.warned_lines, s.last_io   whether the modem lines could be driven, ...
-- It never sends an ISP command (that is the session's command path).
local sys = require("ncpflash.core.sys")
local isp = require("ncpflash.core.isp")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local reset = require("ncpflash.reset")

local M = {}

local function hexs(s, max) return util.hex_prefix(s, max or 24) end

function M.sync_count(chip, baud)
  return math.floor(chip.sync.seconds * baud / 10)
end

-- Classify what came back after a sync burst (protocol.md §2.3). Success needs the adjacent
-- "OK" pair, never a lone O or K:
--   ok        the pair 4F 4B is there (leading noise allowed)
--   nothing   not one byte
--   partial   a few bytes holding an O or a K but no pair (bytes lost on the way)
--   echo      mostly our own 0x55 sync bytes (TX looped to RX, or a bridge echoing)
--   garbage   anything else: the line is alive but it is not the ROM (M.sniff may then find
--             an application's text at another baud: "application")
function M.classify(bytes)
  if bytes:find("OK", 1, true) then return "ok" end
  if #bytes == 0 then return "nothing" end
  local n55 = select(2, bytes:gsub("\x55", ""))
  if n55 * 2 >= #bytes then return "echo" end
  if #bytes <= 4 and bytes:find("[OK]") and not bytes:find("O.K") then return "partial" end
  return "garbage"
end

-- The kinds, worst news first is not the point: this is the order in which a failed ladder
-- reports what it saw (the most telling attempt wins).
M.KIND_RANK = { application = 6, partial = 5, garbage = 4, echo = 3, ["reset-failed"] = 2, nothing = 1, ok = 0 }

-- What each kind means and what to try next (docs/api/connect.md, troubleshooting table).
M.ADVICE = {
  nothing = { "no answer from the chip",
    "check power and that BOOT is high while CHIP_EN rises (download mode); TX/RX crossed; the right port. "
      .. "No BOOT/CHIP_EN wiring on the adapter: --reset manual (press the buttons) or --reset cmd:'...'; "
      .. "a slow bridge: --baud 115200" },
  echo = { "only our own 0x55 sync bytes came back",
    "TX is looped back to RX: remove an adapter loopback jumper; a module that is unpowered or held in reset can "
      .. "also reflect TX - check power and CHIP_EN" },
  garbage = { "the line is alive but it is not the boot ROM",
    "something else is talking, or at another baud: enter download mode (BOOT high while CHIP_EN rises), try a "
      .. "lower handshake baud (--baud 115200), or run 'ncpflash recover'" },
  application = { "the line is alive but it is not the boot ROM: an application is running",
    "the chip did not enter download mode: check the BOOT wiring and strap timing (BOOT high before CHIP_EN "
      .. "rises); 'ncpflash recover' retries with longer strap holds and erases the chip as soon as the ROM answers" },
  partial = { "a partial answer (an O or a K without its pair)",
    "the ROM is probably there but bytes are lost: lower the handshake baud (--baud 230400 or 115200), check "
      .. "ground and cable length" },
  ["reset-failed"] = { "the reset strategy could not be carried out",
    "see the reason above; try another strategy with --reset (manual, cmd:..., gpio:...)" },
}

-- Listen for an application at the common console rates; returns {baud=, line=} or nil.
-- Leaves the port at its original baud.
M.APP_BAUDS = { 115200, 921600, 2000000 }
function M.sniff(port, bauds, listen)
  local old = port:baud()
  local found
  for _, b in ipairs(bauds or M.APP_BAUDS) do
    port:set_baud(b)
    port:flush_input()
    local got = port:read(4096, listen or 0.45)
    if #got >= 8 then
      local printable = select(2, got:gsub("[\32-\126\r\n\t]", ""))
      if printable / #got >= 0.9 then
        local line
        for l in got:gmatch("[^\r\n]+") do
          if #l >= 4 then line = l; break end
        end
        found = { baud = b, line = line or got:sub(1, 60) }
        break
      end
    end
  end
  port:set_baud(old)
  port:flush_input()
  return found
end

---------------------------------------------------------------------------------------------------
-- reset strategies (ncpflash.reset: validated data, one driver per strategy)

function M.driver(s, st)
  s.drivers = s.drivers or {}
  local d = s.drivers[st]
  if not d then
    d = reset.driver(st, { port = s.port, ev = s.ev })
    s.drivers[st] = d
  end
  return d
end

-- Run a strategy's sequence; modem lines that the transport cannot drive warn once.
function M.run_strategy(s, st, which)
  local d = M.driver(s, st)
  local ok, why = d:sequence(which)
  if reset.has(st, "modem_lines") then
    if not ok then
      s.lines_ok = false
      if not s.warned_lines then
        s.warned_lines = true
        s.ev:warn(string.format("cannot drive the reset lines on this port (%s); put the chip in download "
          .. "mode by hand: BOOT high while CHIP_EN rises", tostring(why or "not supported")))
      end
    else
      s.lines_ok = true
    end
  end
  return ok, why
end

-- The board's (or --reset's) "run" / "enter" sequence on the first strategy that has one.
function M.run_sequence(s, name)
  for _, st in ipairs(s.strategies or {}) do
    if reset.has(st, "run_sequence") and st[name] then
      local ok = M.run_strategy(s, st, name)
      return ok and true or false
    end
  end
  return false
end

---------------------------------------------------------------------------------------------------
-- sync, attempts, the ladder

-- One sync attempt at `baud`: burst, then wait for "OK". Returns true or false, bytes_seen.
function M.sync_once(s, baud)
  local c = s.chip
  s.port:flush_input()
  local t0 = sys.now()
  isp.sync(s.port, M.sync_count(c, baud))
  local ok, seen = s.port:expect("OK", c.sync.read_timeout)
  s.last_io = sys.now()
  if ok then
    if s.stats then s.stats.sync_ok = s.last_io - t0 end   -- burst written -> OK read (selftest)
    sys.sleep(c.sync.settle or 0.02)
    s.port:flush_input()                       -- trailing 0x55 echo, duplicate acks
    return true, seen or ""                    -- what arrived up to and including the OK
  end
  return false, seen or ""
end

-- Raise the "handshake" error of a failed ladder: the most telling attempt `best`, its advice.
function M.fail(s, attempts, best, baud)
  local url = s.url or "the port"
  local kind = best and best.kind or "nothing"
  local k = M.ADVICE[kind] or M.ADVICE.nothing
  local seen = best and best.got or ""
  local what = k[1]
  if kind == "application" and best.app then
    what = string.format("%s (text at %d baud: %q)", what, best.app.baud, best.app.line)
  elseif kind == "reset-failed" and best.why then
    what = what .. ": " .. best.why
  end
  errors.raise("handshake", string.format("handshake failed on %s at %d baud after %d attempt%s: %s%s", url, baud,
    #attempts, #attempts == 1 and "" or "s", what, #seen > 0 and (" (received " .. #seen .. " bytes: "
    .. hexs(seen, 16) .. ")") or ""),
    { kind = kind, got = seen, attempts = #attempts, baud = baud, port = url, hint = k[2],
      app = best and best.app, ladder = attempts })
end

-- One handshake attempt record: {strategy=, attempt=, baud=, kind=, got=, seconds=, app=, why=}.
function M.attempt(s, st, n, baud, opts)
  local t0 = sys.now()
  local rok, why = true, nil
  if not (reset.has(st, "retry_without_reset") and n > 1) then rok, why = M.run_strategy(s, st, "enter") end
  -- a reset that could not be carried out is said, even when the ROM answers anyway (it was in
  -- download mode already); missing modem lines are warned about by run_strategy
  if not rok and not reset.has(st, "modem_lines") then
    s.warned_reset = s.warned_reset or {}
    if not s.warned_reset[st] then
      s.warned_reset[st] = true
      s.ev:warn(string.format("%s (%s)", reset.has(st, "runs_program") and "the reset command failed"
        or ("the reset (" .. reset.describe(st) .. ") failed"), tostring(why or "no reason given")))
    end
  end
  local ok, seen = M.sync_once(s, baud)
  local a = { strategy = st.name or reset.describe(st), kind_of_reset = st.kind, attempt = n, baud = baud,
    got = seen or "", seconds = sys.now() - t0, modem_lines = reset.has(st, "modem_lines") or nil }
  if ok then
    a.kind = "ok"
    -- our own burst came back in front of the OK: the ROM is there, but so is a TX->RX loop
    if select(2, a.got:gsub("\x55", "")) >= 16 then a.echoed = true end
  else
    a.kind = M.classify(a.got)
    if not rok and not reset.has(st, "modem_lines") and a.kind == "nothing" then a.kind, a.why = "reset-failed", why end
    if a.kind == "garbage" then
      if s.app == nil then s.app = M.sniff(s.port) or false end
      if s.app then a.kind, a.app = "application", s.app end
    end
  end
  if not rok then a.why = why end
  s.attempts[#s.attempts + 1] = a
  s.ev:debug(string.format("handshake attempt %d (%s, %d baud): %s (%d bytes%s)", n, a.strategy, baud, a.kind,
    #a.got, a.why and ("; " .. a.why) or ""))
  if opts.on_attempt then opts.on_attempt(a) end
  return ok, a
end

-- The connect ladder: each strategy with its retries, then (opts.baud_ladder) the same at lower
-- handshake bauds. Returns on the adjacent OK pair; raises a classified handshake error.
-- opts: retries, baud_ladder (true = the chip's sync.baud_ladder, or a list of lower bauds),
-- on_attempt (function(attempt) called after each attempt).
function M.ladder(s, hs_baud, opts)
  local chip = s.chip
  local bauds = { hs_baud }
  if opts.baud_ladder then
    local list = opts.baud_ladder == true and (chip.sync.baud_ladder or { 230400, 115200 }) or opts.baud_ladder
    for _, b in ipairs(list) do if b < hs_baud then bauds[#bauds + 1] = b end end
  end
  s.attempts = {}
  for _, baud in ipairs(bauds) do
    if s.port:baud() ~= baud then s.port:set_baud(baud) end
    for _, st in ipairs(s.strategies) do
      local retries = opts.retries or st.retries or chip.sync.retries or 3
      if reset.has(st, "until_timeout") then
        local deadline = sys.now() + st.timeout
        local n = 0
        repeat
          n = n + 1
          local ok, a = M.attempt(s, st, n, baud, opts)
          if ok then return a end
          if a.kind ~= "nothing" then sys.sleep(0.1) end
        until sys.now() >= deadline
      else
        local last
        for n = 1, retries do
          local ok, a = M.attempt(s, st, n, baud, opts)
          if ok then return a end
          last = a
          if reset.has(st, "no_reset") or s.lines_ok == false then sys.sleep(0.3) end
        end
        -- silence from the ROM: an application may still be logging at its own baud (it
        -- printed its banner before the sync burst); listen once per connect
        if last and last.kind == "nothing" and s.app == nil then
          s.app = M.sniff(s.port) or false
          if s.app then
            last.kind, last.app = "application", s.app
            s.ev:debug(string.format("listening at %d baud: %q", s.app.baud, s.app.line))
            if opts.on_attempt then opts.on_attempt(last) end
          end
        end
      end
    end
  end
  local best
  for _, a in ipairs(s.attempts) do
    if not best or (M.KIND_RANK[a.kind] or 0) > (M.KIND_RANK[best.kind] or 0) then best = a end
  end
  M.fail(s, s.attempts, best, bauds[#bauds])
end

return M
