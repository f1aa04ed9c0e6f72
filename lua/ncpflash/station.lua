-- ncpflash.station: unattended production flashing (`ncpflash station FILE`, README "Production
-- station").
--
-- Built on the multi-device jobs (ncpflash.multi, ncpflash.core.jobs): every unit is flashed by a
-- device job (a thread with its own Lua state running the normal flash command for that port),
-- whose v2 events drive the slot's state, the per-unit log, the live table, the dashboard
-- (Server-Sent Events carry the same v2 lines) and the record in the database.  Per slot:
--
--   waiting  probe the port (a short job: connect, report chip id and MAC) with backoff until a
--            chip answers; with trigger = "button" the slot is `ready` and probes once an operator
--            (dashboard, API) triggers it
--   running  the flash job on that unit (chip id + MAC = the unit; seen before = a repeat)
--   pass/fail  the verdict stays until the unit is removed: the chip stops answering (probe.
--            removal_misses probes in a row) or another chip id answers (the next unit)
--   paused   no new unit is started (the running one finishes); stopped: the running job is
--            cancelled (recorded `stopped`) and the slot rests until Start
local sys = require "ncpflash.core.sys"
local jobs = require "ncpflash.core.jobs"
local errors = require "ncpflash.errors"
local json = require "ncpflash.json"
local util = require "ncpflash.util"
local multi = require "ncpflash.multi"
local config = require "ncpflash.station.config"
local records = require "ncpflash.station.records"

local M = {}

local Station = setmetatable({}, { __index = multi.Run })
Station.__index = Station

-- a job that ends with exit 130 was stopped by us: it never cancels the other slots (multi does)
function Station.cancel_all() end

M.STATES = { "waiting", "ready", "running", "pass", "fail", "stopped", "paused" }

---------------------------------------------------------------------------------------------------
-- events out: v2 lines to the dashboard's event stream (and stdout with --json)

function Station:emit_line(line)
  if self.web then self.web:broadcast(line) end
  if self.json_out then
    self.json_out:write(line, "\n")
    self.json_out:flush()
  end
end

function Station:emit(ev)
  ev.v = multi.SCHEMA
  ev.t = sys.now() - self.t0
  self:emit_line(json.encode(ev))
end

-- the sink multi.Run writes device events to (self.ev.out): one JSON line per write call
local function sink(self)
  local parts = {}
  return {
    write = function(_, ...)
      for _, s in ipairs({ ... }) do
        if s == "\n" then
          self:emit_line(table.concat(parts))
          parts = {}
        else
          parts[#parts + 1] = s
        end
      end
    end,
    flush = function() end,
  }
end

---------------------------------------------------------------------------------------------------
-- snapshots (API, dashboard, terminal)

function Station:slot_view(slot)
  local now = sys.now()
  local d = slot.d
  local v = { index = slot.index, port = slot.port, label = slot.label, state = slot.state, mode = slot.mode,
    trigger = self.cfg.trigger, waiting_for = slot.waiting_for, attempts = slot.attempts,
    last_error = slot.last_error, last = slot.last, present = slot.present }
  if slot.state == "running" and d then
    v.unit = { chip_id = d.chip_id or slot.unit.chip_id, mac = d.mac or slot.unit.mac, is_repeat = slot.unit.is_repeat,
      unit_attempt = slot.unit.unit_attempt }
    v.stage = d.stage
    v.progress = self:progress(d)
    v.elapsed = now - d.t0
    v.attempt_id = slot.attempt_id
  elseif slot.last then
    v.unit = { chip_id = slot.last.chip_id, mac = slot.last.mac, is_repeat = slot.last.is_repeat,
      unit_attempt = slot.last.unit_attempt }
    v.elapsed = slot.last.seconds
  end
  return v
end

function Station:counters()
  local c = self.count
  local done = c.pass + c.fail
  local hours = (sys.now() - self.t0) / 3600
  return { done = done, pass = c.pass, fail = c.fail, attempts = c.attempts, repeats = c.repeats,
    stopped = c.stopped, no_unit = c.no_unit, yield = done > 0 and c.pass / done or nil,
    units_per_hour = hours > 0 and c.pass / hours or 0, since = self.started_at }
end

function Station:status()
  local slots = setmetatable({}, json.array)
  for i, s in ipairs(self.slots) do slots[i] = self:slot_view(s) end
  local cfg = self.cfg
  return { station = cfg.station, operator = cfg.operator, version = sys.version, session_id = self.session_id,
    started_at = self.started_at, station_file = cfg.path, station_file_sha256 = cfg.station_file_sha256,
    image_set_sha256 = cfg.image_set_sha256, job_name = cfg.job_name, job_command = config.job_text(cfg),
    regions = self.region_list, trigger = cfg.trigger, db = cfg.db, log_dir = cfg.log_dir,
    halted = self.halted, slots = slots, counters = self:counters(),
    failures = setmetatable({ table.unpack(self.failures) }, json.array),
    locked = "the station file, the image set and the ncpflash version are fixed for this session; "
      .. "a change needs a restart" }
end

function Station:slot_changed(slot, note)
  self:emit({ event = "slot", slot = self:slot_view(slot), note = note })
  if note and not self.tty and not self.json_out then
    self.out:write(("[%d %s] %s\n"):format(slot.index, slot.label, note))
    self.out:flush()
  end
  self.dirty = true
end

function Station:set_state(slot, state, note)
  slot.state = state
  self:slot_changed(slot, note)
end

---------------------------------------------------------------------------------------------------
-- device events: per-region outcome and overall progress

function Station:forward(d, e)
  multi.Run.forward(self, d, e)
  local name = e.region
  if e.event == "stage" and e.name == "write" then d.writing = name end
  if not name then return end
  local r = d.regions[name]
  if not r then
    r = { name = name, address = e.address }
    d.regions[name] = r
    d.region_order[#d.region_order + 1] = name
  end
  r.address = r.address or e.address
  if e.event == "stage" and (e.name == "erase" or e.name == "write") then
    if not r.outcome then r.outcome = "started" end
    r.size = r.size or e.size
  elseif e.event == "info" and (e.written or e.unchanged or e.resumed) then
    r.outcome = e.written and "written" or (e.unchanged and "unchanged" or "resumed")
    r.size = r.size or e.written
    d.completed_bytes = (d.completed_bytes or 0) + (self.region_size[name] or e.written or 0)
  elseif e.event == "warn" and e.code then
    r.detail = "retried after " .. tostring(e.code)
  elseif e.event == "error" then
    r.outcome = e.code == "interrupted" and "interrupted" or "failed"
    r.detail = e.state and ("region is now " .. e.state) or e.message
  end
  self.dirty = true
end

function Station:progress(d)
  local total = self.cfg.plan.bytes
  if total <= 0 then return nil end
  local done = (d.completed_bytes or 0) + ((d.stage == "write" and d.writing and d.regions[d.writing]
    and d.regions[d.writing].outcome == "started") and d.done or 0)
  return math.min(1, done / total)
end

local function region_rows(self, d)
  local rows, seen = {}, {}
  for _, r in ipairs(self.cfg.plan.regions) do
    local t = d and d.regions[r.name]
    seen[r.name] = true
    rows[#rows + 1] = { name = r.name, address = r.address, size = r.size, sha256 = util.hex(r.sha256),
      outcome = t and t.outcome or "not-reached", detail = t and t.detail }
  end
  for _, name in ipairs(d and d.region_order or {}) do   -- per-unit regions (provisioning)
    if not seen[name] then
      local t = d.regions[name]
      rows[#rows + 1] = { name = name, address = t.address or 0, size = t.size, outcome = t.outcome or "started",
        detail = t.detail }
    end
  end
  return rows
end

---------------------------------------------------------------------------------------------------
-- probes

local function probe_start(self, slot)
  slot.probe = { job = jobs.start(config.probe_argv(self.cfg, slot.port), { index = slot.index }), buf = "",
    t0 = sys.now() }
end

-- Read a probe's events; returns true once it has ended (p.code, p.chip_id, p.mac, p.err set).
local function probe_pump(p)
  while true do
    local chunk = p.job:read()
    if chunk == nil then p.eof = true; break end
    if chunk == "" then break end
    p.buf = p.buf .. chunk
  end
  for line in p.buf:gmatch("([^\n]*)\n") do
    local ok, e = pcall(json.decode, line)
    if ok and type(e) == "table" then
      p.chip_id = p.chip_id or e.chip_id
      p.mac = p.mac or e.mac
      if e.event == "error" then p.err = e end
    end
  end
  p.buf = p.buf:match("[^\n]*$")
  if not p.eof then return false end
  p.code = p.job:result()
  if not p.code and p.job:join(5) then p.code = p.job:result() end
  if p.code then p.job:join(5) end
  return p.code ~= nil
end

local function is_local_path(port) return port:sub(1, 1) == "/" end

---------------------------------------------------------------------------------------------------
-- attempts

function Station:new_device(slot)
  local d = { index = slot.index, port = slot.port, label = slot.label, t0 = sys.now(), buf = "", stage = "start",
    done = 0, total = 0, stamp = multi.stamp(), regions = {}, region_order = {} }
  local slug = d.label:gsub("[^%w%-%.]", "_")
  local base = ("%s/%s_%d_%s"):format(self.cfg.log_dir, d.stamp, slot.index, slug)
  local ok, f, log, paths = pcall(util.create_unique, base, { ".log", ".trace" })   -- never over another log
  if not ok then self:halt("cannot write a unit log in " .. self.cfg.log_dir) return nil end
  d.logf, d.log_path, d.trace_path = f, log, paths[2]
  return d
end

function Station:begin_attempt(slot, chip_id, mac)
  local changed = config.changed(self.cfg)
  if changed then self:halt("locked input " .. changed) return end
  local d = self:new_device(slot)
  if not d then return end
  local ok, id, unit_attempt, rep = pcall(self.rec.begin_attempt, self.rec, { session_id = self.session_id,
    slot = slot.index, port = slot.port, chip_id = chip_id, mac = mac, image_set_sha256 = self.cfg.image_set_sha256,
    job_name = self.cfg.job_name, station = self.cfg.station, operator = self.cfg.operator })
  if not ok then
    d.logf:close()
    self:halt("cannot record the attempt: " .. tostring(errors.is(id) and id.message or id))
    return
  end
  slot.attempt_id, slot.attempts = id, slot.attempts + 1
  slot.unit = { chip_id = chip_id, mac = mac, is_repeat = rep, unit_attempt = unit_attempt }
  self.count.attempts = self.count.attempts + 1
  if rep then self.count.repeats = self.count.repeats + 1 end
  self:log(d, ("ncpflash %s station %s slot %d on %s: unit %s%s, attempt %d"):format(sys.version, self.cfg.station,
    slot.index, slot.port, mac or chip_id or "?", rep and " (repeat)" or "", id))
  d.job = jobs.start(config.job_argv(self.cfg, slot.port, { "--trace-file", d.trace_path }), { index = slot.index })
  slot.d = d
  slot.waiting_for = nil
  self:set_state(slot, "running", ("unit %s%s: flashing"):format(mac or chip_id or "?",
    rep and (" (repeat, attempt " .. unit_attempt .. ")") or ""))
end

function Station:note_failure(v)
  table.insert(self.failures, 1, { slot = v.slot, chip_id = v.chip_id, mac = v.mac, result = v.result,
    error_code = v.error_code, message = v.error_message, ended_at = v.ended_at, attempt_id = v.attempt_id })
  while #self.failures > 10 do table.remove(self.failures) end
end

-- Count a finished attempt in the session's counters (a unit counts once: repeats do not add).
function Station:count_result(v)
  local c = self.count
  if v.result == "stopped" then c.stopped = c.stopped + 1 end
  if not v.chip_id then
    if v.result == "fail" then c.no_unit = c.no_unit + 1 end
    return
  end
  if v.result ~= "pass" and v.result ~= "fail" then return end
  local u = self.units[v.chip_id]
  if not u then
    u = { pass = false }
    self.units[v.chip_id] = u
    c.fail = c.fail + 1   -- done, not (yet) passed
  end
  if v.result == "pass" and not u.pass then
    u.pass = true
    c.fail, c.pass = c.fail - 1, c.pass + 1
  end
end

function Station:end_attempt(slot, code)
  local d = slot.d
  self:finish_device(d, code)   -- the `done` event, closes and names the log (multi.Run)
  local err = d.error_ev
  local result = code == 0 and "pass" or (code == 130 and "stopped" or "fail")
  local err_code, err_msg = err and err.code, err and err.message
  if code ~= 0 and not err_msg then err_msg = "the job ended with exit code " .. code end
  if code == 130 then
    -- the jobs see a Ctrl-C/SIGTERM themselves and may end before this loop has noticed it
    if not slot.stop_reason and sys.interrupted() then
      slot.stop_reason = "the station was stopped (SIGINT/SIGTERM) during the attempt"
    end
    err_msg = slot.stop_reason or err_msg
  end
  slot.stop_reason = nil
  local changed = config.changed(self.cfg)
  if changed then
    if result == "pass" then
      result, err_code = "fail", "input"
      err_msg = "a locked input changed during the attempt, the unit may hold other data: " .. changed
    end
    self:halt("locked input " .. changed)
  end
  local v = { attempt_id = slot.attempt_id, slot = slot.index, port = slot.port,
    chip_id = d.chip_id or slot.unit.chip_id,
    mac = d.mac or slot.unit.mac, result = result, exit_code = code, error_code = err_code, error_message = err_msg,
    bytes_written = d.bytes, seconds = d.seconds, log_path = d.log_path, ended_at = records.now_iso(),
    is_repeat = slot.unit.is_repeat, unit_attempt = slot.unit.unit_attempt }
  local ok, e = pcall(self.rec.finish_attempt, self.rec, slot.attempt_id, v, region_rows(self, d))
  if not ok then
    self:halt("cannot record attempt " .. slot.attempt_id .. ": " .. tostring(errors.is(e) and e.message or e))
  end
  slot.last, slot.d, slot.attempt_id = v, nil, nil
  slot.last_error = result ~= "pass" and err_msg or nil
  self:count_result(v)
  if result == "fail" or (result == "stopped" and v.chip_id) then self:note_failure(v) end
  self:emit({ event = "counters", counters = self:counters(), failures = setmetatable({ table.unpack(self.failures) },
    json.array) })
  local note = ("%s %s%s%s"):format(result:upper(), v.mac or v.chip_id or "?", v.is_repeat and " (repeat)" or "",
    result == "pass" and ("  %.1f s"):format(v.seconds or 0) or (": " .. tostring(err_msg)))
  slot.present, slot.misses = v.chip_id, 0
  slot.next_probe = sys.now() + self.cfg.probe.removal_interval
  if slot.mode == "stop" or result == "stopped" then
    slot.waiting_for = nil
    self:set_state(slot, "stopped", note)
  elseif self.cfg.trigger == "button" then
    slot.waiting_for = "trigger"
    self:set_state(slot, slot.mode == "pause" and "paused" or "ready", note)
  else
    slot.waiting_for = "removal"
    self:set_state(slot, slot.mode == "pause" and "paused" or result, note)
  end
end

-- Button mode: the trigger found no chip.  That is a failed attempt of an unknown unit.
function Station:no_unit(slot, p)
  local _, id = pcall(self.rec.begin_attempt, self.rec, { session_id = self.session_id, slot = slot.index,
    port = slot.port, image_set_sha256 = self.cfg.image_set_sha256, job_name = self.cfg.job_name,
    station = self.cfg.station, operator = self.cfg.operator })
  local msg = "triggered, but no chip answered: " .. tostring(p.err and p.err.message or ("exit " .. tostring(p.code)))
  local v = { attempt_id = id, slot = slot.index, port = slot.port, result = "fail", exit_code = p.code,
    error_code = p.err and p.err.code or "handshake", error_message = msg, seconds = sys.now() - p.t0,
    ended_at = records.now_iso() }
  if type(id) == "number" then
    local ok, e = pcall(self.rec.finish_attempt, self.rec, id, v, region_rows(self, nil))
    if not ok then self:halt("cannot record attempt " .. id .. ": " .. tostring(errors.is(e) and e.message or e)) end
  end
  self.count.attempts = self.count.attempts + 1
  slot.attempts = slot.attempts + 1
  slot.last, slot.last_error = v, msg
  self:count_result(v)
  self:note_failure(v)
  self:emit({ event = "counters", counters = self:counters(), failures = setmetatable({ table.unpack(self.failures) },
    json.array) })
  slot.waiting_for = "trigger"
  self:set_state(slot, slot.mode == "pause" and "paused" or "ready", "FAIL (no chip answered the trigger)")
end

---------------------------------------------------------------------------------------------------
-- the slot state machine

function Station:probe_done(slot, p)
  slot.probe = nil
  if p.discard or slot.mode == "stop" then return end
  local answered = p.code == 0 and p.chip_id
  local cfg = self.cfg
  if slot.waiting_for == "removal" then
    if answered and p.chip_id ~= slot.present then
      slot.present = nil
      if slot.mode == "run" then self:begin_attempt(slot, p.chip_id, p.mac) end
      return
    end
    if answered then
      slot.misses = 0
    else
      slot.misses = slot.misses + 1
      if slot.misses >= cfg.probe.removal_misses then
        slot.present, slot.waiting_for, slot.backoff = nil, "unit", cfg.probe.interval
        slot.next_probe = sys.now()
        self:set_state(slot, slot.mode == "pause" and "paused" or "waiting", "unit removed")
        return
      end
    end
    slot.next_probe = sys.now() + cfg.probe.removal_interval
    return
  end
  if answered then
    if slot.mode == "run" or slot.triggered then
      slot.triggered = false
      self:begin_attempt(slot, p.chip_id, p.mac)
    end
    return
  end
  if slot.triggered then
    slot.triggered = false
    self:no_unit(slot, p)
    return
  end
  slot.backoff = math.min((slot.backoff or cfg.probe.interval) * 2, cfg.probe.max_interval)
  slot.next_probe = sys.now() + slot.backoff
  local why = p.err and p.err.code or "?"
  if why ~= slot.last_probe then
    slot.last_probe = why
    self.dirty = true
  end
end

function Station:step(slot, now)
  if slot.probe then
    if probe_pump(slot.probe) then self:probe_done(slot, slot.probe) end
    return
  end
  local d = slot.d
  if d then
    self:pump(d)
    local code = d.eof and d.job:result()
    if d.eof and not code and d.job:join(5) then code = d.job:result() end
    if code then
      d.job:join(5)
      self:end_attempt(slot, code)
    end
    return
  end
  if slot.mode == "stop" or self.halted then return end
  local wants = slot.waiting_for == "removal" or (slot.mode == "run" and slot.waiting_for == "unit")
    or slot.triggered
  if not wants or now < (slot.next_probe or 0) then return end
  if is_local_path(slot.port) and not sys.stat(slot.port) then   -- the adapter itself is unplugged
    if slot.waiting_for == "removal" then
      slot.misses = self.cfg.probe.removal_misses - 1
      self:probe_done(slot, { code = 3, err = { code = "port" } })
    elseif slot.triggered then
      slot.triggered = false
      self:no_unit(slot, { code = 3, t0 = now,
        err = { code = "port", message = "port " .. slot.port .. " is missing" } })
    else
      slot.backoff = math.min((slot.backoff or self.cfg.probe.interval) * 2, self.cfg.probe.max_interval)
      slot.next_probe = now + slot.backoff
    end
    return
  end
  probe_start(self, slot)
end

---------------------------------------------------------------------------------------------------
-- operator controls (dashboard, API)

function Station:halt(why)
  if self.halted then return end
  self.halted = why .. "; restart the station"
  self.ev_main:warn("station halted: " .. self.halted)
  for _, s in ipairs(self.slots) do
    if s.mode == "run" then s.mode = "pause" end
    s.last_error = self.halted
    if not s.d then
      if s.probe then s.probe.discard = true end
      s.state = "stopped"
    end
    self:slot_changed(s)
  end
  self:emit({ event = "halted", message = self.halted })
end

--- action: "start" | "stop" | "pause" | "trigger"; index nil = every slot.  Returns ok, message.
function Station:control(action, index)
  local list = {}
  if index then
    if not self.slots[index] then return false, ("no slot %s (1..%d)"):format(tostring(index), #self.slots), 404 end
    list[1] = self.slots[index]
  else
    list = self.slots
  end
  if self.halted and (action == "start" or action == "trigger") then return false, self.halted, 409 end
  local n = 0
  for _, s in ipairs(list) do
    if action == "start" then
      if s.mode ~= "run" then
        s.mode = "run"
        n = n + 1
        if not s.d then
          if s.waiting_for == "removal" and s.last then
            self:set_state(s, s.last.result == "pass" and "pass" or (s.last.result == "fail" and "fail" or "waiting"),
              "started")
          elseif self.cfg.trigger == "button" then
            s.waiting_for = "trigger"
            self:set_state(s, "ready", "started")
          else
            s.waiting_for, s.next_probe, s.backoff = "unit", 0, nil
            self:set_state(s, "waiting", "started")
          end
        end
      end
    elseif action == "pause" then
      if s.mode == "run" then
        s.mode = "pause"
        n = n + 1
        if not s.d then self:set_state(s, "paused", "paused") else self:slot_changed(s, "pausing after this unit") end
      end
    elseif action == "stop" then
      if s.mode ~= "stop" or s.d then
        s.mode = "stop"
        n = n + 1
        if s.probe then s.probe.discard = true end
        if s.d then
          s.stop_reason = "stopped by the operator during the attempt"
          s.d.job:cancel()
          self:slot_changed(s, "stopping")
        else
          if s.waiting_for ~= "removal" then s.waiting_for = nil end
          self:set_state(s, "stopped", "stopped")
        end
      end
    elseif action == "trigger" then
      if self.cfg.trigger ~= "button" then return false, "this station runs with trigger = \"auto\"", 409 end
      if s.state == "ready" and not s.d and not s.probe and not s.triggered then
        s.triggered = true
        s.next_probe = 0
        n = n + 1
      elseif #list == 1 then
        return false, ("slot %d is %s, not ready"):format(s.index, s.state), 409
      end
    else
      return false, "unknown action " .. tostring(action), 404
    end
  end
  return true, ("%s: %d slot%s"):format(action, n, n == 1 and "" or "s")
end

---------------------------------------------------------------------------------------------------
-- the terminal

local STATE_TEXT = { waiting = "waiting", ready = "ready", running = "RUNNING", pass = "PASS", fail = "FAIL",
  stopped = "stopped", paused = "paused" }

function Station:counters_line()
  local c = self:counters()
  return ("done %d  pass %d  fail %d  yield %s  %.1f units/h  (attempts %d, repeats %d)"):format(c.done, c.pass,
    c.fail, c.yield and ("%.1f %%"):format(c.yield * 100) or "-", c.units_per_hour, c.attempts, c.repeats)
end

function Station:draw(force)
  if not self.tty then return end
  local now = sys.now()
  if not force and self.last_draw and now - self.last_draw < 0.2 then return end
  self.last_draw = now
  local cols = sys.term_cols() or 100
  local lines = { ("station %s  %s%s"):format(self.cfg.station, self:counters_line(),
    self.halted and ("  HALTED: " .. self.halted) or ""),
    ("%-2s %-22s %-8s %-17s %s"):format("#", "port", "state", "unit", "progress / last") }
  for _, s in ipairs(self.slots) do
    local v = self:slot_view(s)
    local unit = v.unit and (v.unit.mac or v.unit.chip_id) or "-"
    local detail
    if s.d then
      detail = self:status_text(s.d)
      if v.progress then detail = ("%3d%% %s %s"):format(math.floor(v.progress * 100), s.d.stage or "", detail) end
    elseif s.last then
      detail = (s.last.result == "pass" and ("ok %.1f s"):format(s.last.seconds or 0) or tostring(s.last.error_message))
        .. (s.last.is_repeat and " (repeat)" or "")
        .. (s.waiting_for == "removal" and "  - remove the unit" or "")
    else
      detail = s.waiting_for == "trigger" and "press Start unit" or "waiting for a unit"
    end
    lines[#lines + 1] = ("%-2d %-22s %-8s %-17s %s"):format(s.index, s.label:sub(1, 22), STATE_TEXT[s.state] or s.state,
      unit, detail)
  end
  local f = self.failures[1]
  lines[#lines + 1] = f and ("last failure: slot %d %s %s"):format(f.slot, f.mac or f.chip_id or "(no unit)",
    tostring(f.message)) or ""
  local w = self.err
  if self.drawn then w:write(("\27[%dA"):format(self.drawn)) end
  for _, l in ipairs(lines) do w:write("\r", l:sub(1, cols - 1), "\27[K\n") end
  w:flush()
  self.drawn = #lines
end

---------------------------------------------------------------------------------------------------
-- the run

local function random_token()
  local env = sys.getenv("NCPFLASH_STATION_TOKEN")
  if env and #env >= 16 then return env end
  local f = io.open("/dev/urandom", "rb")
  local b = f and f:read(16)
  if f then f:close() end
  if not b or #b < 16 then errors.raise("internal", "station: cannot read /dev/urandom for the control token") end
  return util.hex(b)
end

--- `ncpflash station FILE`: o = {operator=, http=, db=, json=}.  Runs until SIGINT/SIGTERM, then
--- returns {halted = why | nil, counters = ...} once every attempt is recorded.
function M.run(ctx, path, o)
  o = o or {}
  local ev = ctx.ev
  local cfg = config.load(path, ctx, o)
  if not sys.mkdirs(cfg.log_dir) then errors.raise("input", "station: cannot create the log folder " .. cfg.log_dir) end
  local okl, lock = pcall(jobs.lock, cfg.db .. ".lock", 0.2)
  if not okl then
    errors.raise("usage", ("station: %s is in use by another station process"):format(cfg.db),
      { hint = "one station per database; stop the other one, or give this one its own db = FILE" })
  end
  local rec <close> = records.open(cfg.db)
  local recovered = rec:recover()
  local self = setmetatable({ ctx = ctx, cfg = cfg, rec = rec, ev_main = ev, t0 = sys.now(), json = true,
    tty = (not o.json) and sys.isatty(2), out = io.stdout, err = io.stderr, log_dir = cfg.log_dir,
    json_out = o.json and io.stdout or nil, slots = {}, units = {}, failures = {},
    count = { pass = 0, fail = 0, attempts = 0, repeats = 0, stopped = 0, no_unit = 0 }, region_size = {} }, Station)
  self.ev = { out = sink(self), err = io.stderr }
  self.started_at = records.now_iso()
  self.region_list = setmetatable({}, json.array)
  for _, r in ipairs(cfg.plan.regions) do
    self.region_size[r.name] = r.size
    self.region_list[#self.region_list + 1] = { name = r.name, address = r.address, size = r.size,
      sha256 = util.hex(r.sha256) }
  end
  self.session_id = rec:begin_session({ station = cfg.station, operator = cfg.operator, station_file = cfg.path,
    station_file_sha256 = cfg.station_file_sha256, image_set_sha256 = cfg.image_set_sha256, job_name = cfg.job_name,
    job_command = config.job_text(cfg), version = sys.version, host = sys.getenv("HOSTNAME"), pid = sys.pid(),
    started_at = self.started_at })
  for i, s in ipairs(cfg.slots) do
    self.slots[i] = { index = i, port = s.port, label = multi.short_port(s.port), attempts = 0, misses = 0,
      mode = cfg.autostart and "run" or "stop", unit = {},
      state = cfg.autostart and (cfg.trigger == "button" and "ready" or "waiting") or "stopped",
      waiting_for = cfg.trigger == "button" and "trigger" or "unit", next_probe = 0 }
  end
  -- tell the operator what is locked, where things go, and how to reach the dashboard
  ev:info(("station %s: %d slot%s, job %s (%s)"):format(cfg.station, #self.slots, #self.slots == 1 and "" or "s",
    cfg.job_name, config.job_text(cfg)), { station = cfg.station })
  ev:info(("locked for this session: image set %s (%d regions, %s), station file %s, ncpflash %s; a change needs a "
    .. "restart"):format(cfg.image_set_sha256:sub(1, 16), #cfg.plan.regions, util.fmt_size(cfg.plan.bytes),
    cfg.station_file_sha256:sub(1, 16), sys.version), { image_set_sha256 = cfg.image_set_sha256 })
  ev:info(("records: %s (session %d, journal %s); unit logs: %s"):format(cfg.db, self.session_id,
    tostring(rec.journal_mode), cfg.log_dir), { db = cfg.db, session_id = self.session_id })
  if #recovered > 0 then
    ev:warn(("%d attempt%s of an earlier run did not finish (crash or power cut) and %s now marked interrupted: %s")
      :format(#recovered, #recovered == 1 and "" or "s", #recovered == 1 and "is" or "are", (function()
        local t = {}
        for _, r in ipairs(recovered) do
          t[#t + 1] = ("#%d slot %d %s"):format(r.id, r.slot, r.mac or r.chip_id or "?")
        end
        return table.concat(t, ", ")
      end)()), { interrupted = #recovered })
  end
  local web
  if cfg.http then
    web = require("ncpflash.station.web").start(self, cfg.http, random_token(), ctx.opts.lua_path)
    self.web = web
    ev:info("dashboard: " .. web.url .. "/#token=" .. web.token, { url = web.url, token = web.token })
    ev:info("control token: " .. web.token .. "  (API: header \"Authorization: Bearer TOKEN\")")
    if not config.is_loopback(cfg.http.host) then
      ev:warn(("!!! the dashboard listens on %s, NOT a loopback address: anyone who reaches this machine's port %d "
        .. "can see the station; control and (off loopback) reading need the token; plain HTTP, no TLS !!!")
        :format(cfg.http.host, web.port))
    end
  end
  self:emit({ event = "station", status = self:status() })
  for _, s in ipairs(self.slots) do self:slot_changed(s) end
  -- the loop: job pipes, HTTP, the terminal.  Ctrl-C/SIGTERM stay pending until every job has seen
  -- them (as in ncpflash.multi), so the interrupt hook is off here.
  debug.sethook()
  local keepalive = sys.now()
  local quit
  while true do
    local list = {}
    for _, s in ipairs(self.slots) do
      local j = (s.probe and s.probe.job) or (s.d and s.d.job)
      if j then list[#list + 1] = j end
    end
    local _, intr = jobs.wait(list, web and 0.05 or 0.1)
    if intr and not quit then
      quit = sys.now() + 15
      for _, s in ipairs(self.slots) do
        s.mode = "stop"
        if s.probe then s.probe.discard = true; s.probe.job:cancel() end
        if s.d then s.stop_reason = "the station was stopped (SIGINT/SIGTERM) during the attempt"; s.d.job:cancel() end
      end
    end
    local now = sys.now()
    for _, s in ipairs(self.slots) do self:step(s, now) end
    if quit then
      local busy = false
      for _, s in ipairs(self.slots) do if s.d or s.probe then busy = true end end
      if not busy or now > quit then break end
    end
    if web then
      web:poll(0.05)
      if now - keepalive > 15 then keepalive = now; web:keepalive() end
    end
    if self.dirty then self:draw() end
  end
  -- jobs that did not end within the deadline: record what is known
  for _, s in ipairs(self.slots) do
    if s.d then
      s.stop_reason = "the station was stopped and the job did not end within 15 s"
      self:end_attempt(s, 130)
    end
  end
  self:draw(true)
  rec:end_session(self.session_id, "stopped (SIGINT/SIGTERM)")
  self:emit({ event = "summary", counters = self:counters(), session_id = self.session_id })
  if web then web:close() end
  lock:unlock()
  pcall(sys.error, "interrupted", "interrupted")   -- consume the signal now
  if not self.json_out then
    self.out:write(("station %s stopped: %s\nrecords: %s (ncpflash station report %s)\n"):format(cfg.station,
      self:counters_line(), cfg.db, cfg.db))
    self.out:flush()
  end
  return { halted = self.halted, counters = self:counters() }
end

M.Station = Station
return M
