-- benchmodel: the lower bound of a flashing run under ncpsim's realtime model (tests/bench.lua).
--
-- ncpsim --realtime --log FILE appends to every command line
--   "@T busy=B baud=D"   T monotonic seconds, B = modelled device time of the command (adapter
--                        latency + flash work), D = the UART baud the frame and reply travel at
-- and "@T" to handshake and line-change lines. The bound of a phase is
--   wire time  (frame bytes + reply bytes, 10 bits each at the baud in effect: 200,000 B/s at
--               2 Mbaud, 50,000 B/s at the 500 kbaud handshake speed; a handshake counts the
--               sync burst the host sends plus the "OK")
-- + device time (the sum of B)
-- + the adapter latency of the other direction change: ncpsim also delays the first byte the host
--   sends after the device talked by --latency-ms (opts.latency, seconds), i.e. once per command
--   of a host that waits for each reply
-- for a host that keeps one frame in flight and spends no time itself: nothing in the model lets
-- a stop-and-wait host be faster. The reset sequence's guard times are the board's (spec) waits,
-- not modelled device work, and are not in the bound.
local M = {}

-- opcode -> phase (everything else is "connect": handshake, boot info, timeout, clock, MAC,
-- flash parameters, JEDEC id)
M.phase_of = {
  [0x30] = "erase", [0x3C] = "erase",
  [0x31] = "write", [0x3F] = "write", [0x3A] = "write",
  [0x60] = "verify", [0x3D] = "verify", [0x3E] = "verify", [0x61] = "verify",
}
M.phases = { "connect", "erase", "write", "verify" }

-- One log line -> event table or nil (lines without realtime fields are ignored).
--   {kind = "cmd", op =, plen =, rx =, tx =, t =, busy =, baud =, phase =}
--   {kind = "handshake", t =, busy =, baud =}   {kind = "lines", t =, dtr =, rts =}
function M.parse_line(l)
  local t = tonumber(l:match(" @([%d%.]+)"))
  if not t then return nil end
  local busy, baud = tonumber(l:match(" busy=([%d%.]+)")), tonumber(l:match(" baud=(%d+)"))
  local op, plen = l:match("^0x(%x%x) %S+ plen=(%d+)")
  if op then
    op, plen = tonumber(op, 16), tonumber(plen)
    local tx = 2                                       -- "OK"
    local dl = l:match("%-> OK len=(%d+)")
    if dl then tx = 4 + tonumber(dl)
    elseif l:match("%-> FL ") then tx = 4
    elseif l:match("%-> %(no reply%)") then tx = 0 end
    return { kind = "cmd", op = op, plen = plen, rx = 4 + plen, tx = tx, t = t, busy = busy or 0,
             baud = baud, phase = M.phase_of[op] or "connect" }
  end
  if l:match("^handshake ") then
    return { kind = "handshake", t = t, busy = busy or 0, baud = baud or tonumber(l:match("baud=(%d+)")),
             phase = "connect" }
  end
  local dtr, rts = l:match("^lines dtr=(%d) rts=(%d)")
  if dtr then return { kind = "lines", t = t, dtr = dtr == "1", rts = rts == "1" } end
  return nil
end

-- Bound of a list of events. opts.sync_bytes: 0x55 bytes per handshake burst (the host's
-- `handshake.sync_count(chip, baud)`), default 300; opts.latency: ncpsim's --latency-ms in seconds
-- (charged once per command for the host->device turnaround), default 0. Returns
--   {connect = {wire=, device=, bound=, rx=, tx=, commands=}, erase = ..., write = ...,
--    verify = ..., total = {wire=, device=, bound=}}
function M.bound(events, opts)
  opts = opts or {}
  local r = { total = { wire = 0, device = 0, bound = 0, rx = 0, tx = 0, commands = 0 } }
  for _, p in ipairs(M.phases) do r[p] = { wire = 0, device = 0, bound = 0, rx = 0, tx = 0, commands = 0 } end
  for _, e in ipairs(events) do
    local rx, tx
    local lat = 0
    if e.kind == "cmd" then rx, tx, lat = e.rx, e.tx, opts.latency or 0
    elseif e.kind == "handshake" then rx, tx = opts.sync_bytes or 300, 2 end
    if rx then
      local baud = e.baud or 2000000
      local wire = (rx + tx) * 10 / baud
      for _, acc in ipairs({ r[e.phase], r.total }) do
        acc.wire = acc.wire + wire
        acc.device = acc.device + e.busy + lat
        acc.rx, acc.tx = acc.rx + rx, acc.tx + tx
        acc.commands = acc.commands + 1
      end
    end
  end
  for _, p in ipairs(M.phases) do r[p].bound = r[p].wire + r[p].device end
  r.total.bound = r.total.wire + r.total.device
  return r
end

-- Seconds from the reset (CHIP_EN pulled low: the first line change with RTS asserted since the
-- previous handshake) to the first command after the handshake that follows; nil when the events
-- hold no reset before a handshake.
function M.reset_to_first_command(events)
  local first_lines, hs
  for _, e in ipairs(events) do
    if e.kind == "lines" then
      if e.rts and not first_lines then first_lines = e.t end
    elseif e.kind == "handshake" then
      if first_lines then hs = first_lines end
      first_lines = nil
    elseif e.kind == "cmd" and hs then
      return e.t - hs
    end
  end
  return nil
end

function M.parse_log(lines, from)
  local ev = {}
  for i = (from or 0) + 1, #lines do
    local e = M.parse_line(lines[i])
    if e then ev[#ev + 1] = e end
  end
  return ev
end

-- ncpsim's typical flash times (docs/api/ncpsim.md "Flash part": its defaults), seconds.
M.sim_times = { page = 0.0006, sector = 0.045, blk32 = 0.120, blk64 = 0.150, chip_4m = 12.0, rate_switch = 0.005 }

-- The events of a recording made on ncpsim without --realtime (the vendor's
-- ../shared/conformance/vendor/*/ncpsim.log): the device time each command would take under the
-- realtime model is computed as ncpsim does (opts.latency s per reply; pages of 256 bytes
-- programmed; erase per unit of the SDK loop; a chip erase per 4 MiB; the baud switch). For 0x3F
-- the log does not say how many bytes each frame decompressed to: the stream's pages are those
-- of the region it wrote (the size its 0x3E verify names), charged once per stream - at least
-- what ncpsim charges (it rounds each frame's output up to a page).
function M.parse_plain(lines, opts)
  opts = opts or {}
  local lat, T = opts.latency or 0, opts.times or M.sim_times
  local size = opts.flash_size or 0x400000
  local erase_units = require("ncpflash.session").erase_units
  local ev, baud, stream = {}, opts.baud or 500000, nil
  for _, l in ipairs(lines) do
    local op, plen = l:match("^0x(%x%x) %S+ plen=(%d+)")
    if l:match("^handshake baud=%d+ %-> OK") then
      baud = tonumber(l:match("baud=(%d+)"))
      ev[#ev + 1] = { kind = "handshake", t = 0, busy = lat, baud = baud, phase = "connect" }
    elseif op then
      op, plen = tonumber(op, 16), tonumber(plen)
      local tx = 2
      local dl = l:match("%-> OK len=(%d+)")
      if dl then tx = 4 + tonumber(dl) elseif l:match("%-> FL ") then tx = 4 end
      local work = 0
      if op == 0x3C then work = T.chip_4m * size / 0x400000
      elseif op == 0x30 then
        local a, e = l:match("start=0x(%x+) end=0x(%x+)")
        local n = erase_units(tonumber(a, 16), tonumber(e, 16), 4096)
        work = n.n64 * T.blk64 + n.n32 * T.blk32 + n.n4 * T.sector
      elseif op == 0x31 then work = math.ceil((plen - 4) / 256) * T.page
      elseif op == 0x3F and l:match("new%-stream") then stream = { cmd = nil }
      elseif op == 0x3E and stream then
        work = 0
        stream.cmd.busy = stream.cmd.busy + math.ceil(tonumber(l:match(" len=(%d+) ")) / 256) * T.page
        stream = nil
      elseif op == 0x22 then work = T.rate_switch end
      local e = { kind = "cmd", op = op, plen = plen, rx = 4 + plen, tx = tx, t = 0, busy = lat + work, baud = baud,
        phase = M.phase_of[op] or "connect" }
      if op == 0x3F and stream and not stream.cmd then stream.cmd = e end
      ev[#ev + 1] = e
      local nb = op == 0x22 and tonumber(l:match(" baud=(%d+)"))
      if nb then baud = nb end
    end
  end
  return ev
end

-- The vendor's fixed waits in its wire.trace (lines "  T_ms KIND ..."): every pause of at
-- least 20 ms between two events, from the first event after the port's OPEN (the RFC 2217
-- negotiation of the recording's transport is left out) to the first frame of a command that
-- changes flash (0x30/0x31/0x3C/0x3F) - the probe before the reset, the reset sequence, the
-- waits around the handshake, before the first 0x10 and after the baud switch. Pauses after that
-- point are the vendor's own work (compressing the next file), not waits. Seconds.
function M.vendor_waits(trace_lines)
  local sum, prev, state = 0, nil, "before"
  for _, l in ipairs(trace_lines) do
    local t, kind, rest = l:match("^%s*([%d.]+) (%u+)%s*(%S*)")
    t = tonumber(t)
    if t then
      if state == "before" then
        if kind == "OPEN" then state = "open" end
      elseif state == "open" then
        state, prev = "on", t
      else
        local op = rest:sub(1, 2):lower()
        if kind == "TX" and (op == "30" or op == "31" or op == "3c" or op == "3f") then return sum end
        if t - prev >= 20 then sum = sum + (t - prev) / 1000 end
        prev = t
      end
    end
  end
  return sum
end

-- The vendor's modelled time for the job of a recording: the bound of its command sequence
-- under the realtime model at opts.latency (s) plus its fixed waits. Returns {bound=, waits=,
-- total=, commands=, phases = M.bound's result}.
function M.vendor(log_lines, trace_lines, opts)
  local b = M.bound(M.parse_plain(log_lines, opts), opts)
  local w = M.vendor_waits(trace_lines)
  return { bound = b.total.bound, waits = w, total = b.total.bound + w, commands = b.total.commands, phases = b }
end

return M
