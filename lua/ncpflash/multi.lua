-- ncpflash.multi: one command on many devices at once, in one process.
--
--   ncpflash --port A --port B ... COMMAND ...      ncpflash --ports FILTER COMMAND ...
--
-- Each device gets a job (ncpflash.core.jobs): a thread with its own Lua state that runs
-- ncpflash.main with that device's argv ("--port URL" plus the user's other arguments) and sends
-- its events back as JSON lines through a pipe.  This module starts the jobs, reads every pipe
-- with poll(), keeps per-device state (port, chip id, MAC, stage, bytes, result), shows it
-- (a live table on a terminal, prefixed lines otherwise, or JSON schema v2 with --json), writes
-- per-device logs (--log-dir) and returns the worst exit code (M.WORST_ORDER).  A slow or failing
-- board only ever affects its own job.
local sys = require "ncpflash.core.sys"
local jobs = require "ncpflash.core.jobs"
local errors = require "ncpflash.errors"
local util = require "ncpflash.util"
local json = require "ncpflash.json"

local M = {}
M.SCHEMA = 2

-- "Worst" result first: an interrupted run beats everything (the summary is incomplete), then
-- problems of the whole command (usage, bad input files, safety refusals), then a unit whose
-- content is wrong (verify), then unclassified failures, then device/protocol errors, then
-- devices that could not be reached, then success.
M.WORST_ORDER = { 130, 2, 7, 6, 5, 1, 4, 3, 0 }
local RANK = {}
for i, c in ipairs(M.WORST_ORDER) do RANK[c] = #M.WORST_ORDER - i end

--- The worse of two exit codes (unknown codes rank like 1).
function M.worst(a, b)
  local ra, rb = RANK[a] or RANK[1], RANK[b] or RANK[1]
  if ra >= rb then return a end
  return b
end

--- True when main should hand the command to this module.
function M.wanted(opts, rest)
  if opts.help or opts.version then return false end
  local cmd = rest[1]
  if cmd == nil or cmd == "help" or cmd == "ports" then return false end
  return (opts.port_list and #opts.port_list > 1) or opts.ports_list ~= nil or opts.log_dir ~= nil
end

---------------------------------------------------------------------------------------------------
-- port selection

local function glob_pattern(g)
  return "^" .. g:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
end

--- Does port entry p ({name, by_id, vid, pid, serial}) match FILTER?  FILTER is a comma list of
--- alternatives: "sn:GLOB" (serial number), "VID:PID" (hex; PID may be "*"), or a glob on the
--- name, the by-id path, or the last component of either.
function M.match(filter, p)
  for alt in filter:gmatch("[^,]+") do
    local sn = alt:match("^sn:(.+)$") or alt:match("^serial[:=](.+)$")
    local vid, pid = alt:match("^(%x%x%x%x):([%x%*]+)$")
    if sn then
      if p.serial and p.serial:match(glob_pattern(sn)) then return true end
    elseif vid then
      if p.vid and p.vid == tonumber(vid, 16) and (pid == "*" or p.pid == tonumber(pid, 16)) then return true end
    else
      local pat = glob_pattern(alt)
      for _, s in ipairs({ p.name, p.name and p.name:match("[^/]+$"), p.by_id, p.by_id and p.by_id:match("[^/]+$") }) do
        if s and s:match(pat) then return true end
      end
    end
  end
  return false
end

--- The ports to run on: every --port, then every listed port matching a --ports filter.
function M.resolve_ports(opts, list_fn)
  local out, seen = {}, {}
  local function add(u) if not seen[u] then seen[u] = true; out[#out + 1] = u end end
  -- NCPFLASH_PORT (opts.port without opts.port_list) counts only when no filter is given
  for _, u in ipairs(opts.port_list or (not opts.ports_list and opts.port and { opts.port }) or {}) do add(u) end
  if opts.ports_list then
    local list = (list_fn or require("ncpflash.core.port").list)()
    for _, f in ipairs(opts.ports_list) do
      local n = 0
      for _, p in ipairs(list) do
        if M.match(f, p) then add(p.name); n = n + 1 end
      end
      if n == 0 then
        local names = {}
        for _, p in ipairs(list) do names[#names + 1] = p.name end
        errors.raise("port", ("--ports %s matches no serial port (found: %s)"):format(f,
          #names > 0 and table.concat(names, ", ") or "none"), { hint = "'ncpflash ports' lists them" })
      end
    end
  end
  if #out == 0 then errors.raise("usage", "no port given: use --port URL (repeatable) or --ports FILTER") end
  return out
end

--- argv for one device's job: the user's arguments without the multi-device options.
function M.job_argv(argv, url, extra)
  local out = { argv[0] or "ncpflash", "--port", url }
  for _, a in ipairs(extra or {}) do out[#out + 1] = a end
  local drop_value = { ["--port"] = true, ["--ports"] = true, ["--log-dir"] = true, ["--trace-file"] = true }
  local drop = { ["--json"] = true, ["--trace"] = true }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      table.move(argv, i, #argv, #out + 1, out)
      break
    end
    local name = a:match("^(%-%-[%w%-]+)=") or a
    if drop_value[name] then
      if not a:find("=", 1, true) then i = i + 1 end
    elseif not drop[a] then
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out
end

M.json_decode = json.decode

---------------------------------------------------------------------------------------------------
-- per-device state, display and logs

local Run = {}
Run.__index = Run

local function short_port(url)
  return (url:gsub("^rfc2217://", ""):gsub("^socket://", ""):gsub("^/dev/serial/by%-id/", ""):gsub("^/dev/", ""))
end

local function stamp() return os.date("!%Y%m%dT%H%M%SZ") end

function Run.log(_, d, line)
  if d.logf then
    d.logf:write(("%8.3f %s\n"):format(sys.now() - d.t0, line))
    d.logf:flush()
  end
end

-- A human line for an event, or nil for events that only update state.
local function human(e)
  local k = e.event
  if k == "stage" then return "==> " .. tostring(e.name) .. (e.detail and (" " .. e.detail) or "") end
  if k == "info" or k == "debug" then return e.message end
  if k == "warn" then return "warning: " .. tostring(e.message) end
  if k == "error" then
    return "error: " .. tostring(e.message) .. (e.hint and ("\nhint: " .. e.hint) or "")
  end
  if k == "result" then
    local s = e.summary
    if type(s) == "table" then s = table.concat(s, "\n") end
    return s
  end
  return nil
end

function Run.device_fields(_, d)
  return { index = d.index, port = d.port, chip_id = d.chip_id, mac = d.mac }
end

-- Forward one event of device d (decoded child event e) to the user.
function Run:forward(d, e)
  local now = sys.now()
  if e.chip_id and not d.chip_id then d.chip_id = e.chip_id end
  if e.mac and not d.mac then d.mac = e.mac end
  if e.event == "stage" then
    d.stage, d.done, d.total, d.last_pct = e.name, 0, 0, nil
  elseif e.event == "progress" then
    d.done, d.total, d.rate = e.done or 0, e.total or 0, e.rate
    if e.name then d.item = e.name end
  elseif e.event == "result" then
    d.result_ev = e
    if type(e.bytes_written) == "number" then d.bytes = (d.bytes or 0) + e.bytes_written end
  elseif e.event == "error" then
    d.error_ev = e
  end
  -- the per-device log: human lines, progress in 25 % steps
  local line = human(e)
  if e.event == "progress" and (e.total or 0) > 0 then
    local step = (e.done * 4) // e.total
    if step ~= d.last_pct then
      d.last_pct = step
      line = ("    %s%d%% (%d/%d bytes)"):format(e.name and (e.name .. " ") or "", step * 25, e.done, e.total)
    end
  end
  if line then self:log(d, line) end
  local out = { v = M.SCHEMA, event = e.event, t = now - self.t0, elapsed = now - d.t0,
    device = self:device_fields(d), stage = d.stage, bytes = d.done }
  for k, v in pairs(e) do
    if k ~= "v" and k ~= "t" and k ~= "device" then out[k] = v end
  end
  if e.event == "stage" then out.stage = e.name end
  for _, fn in ipairs(self.ev.listeners or {}) do fn(out) end   -- e.g. ncpflash.labreport
  if self.json then
    self.ev.out:write(json.encode(out), "\n")
    self.ev.out:flush()
  elseif not self.tty and line and e.event ~= "debug" then
    local prefix = ("[%d %s] "):format(d.index, d.label)
    local f = (e.event == "warn" or e.event == "error") and self.ev.err or self.ev.out
    f:write(prefix, (line:gsub("\n", "\n" .. prefix)), "\n")
    f:flush()
  end
end

local function bar(done, total, width)
  local fill = total > 0 and math.floor(done * width / total) or 0
  return ("#"):rep(fill) .. ("."):rep(width - fill)
end

function Run.status_text(_, d)
  if d.code == nil then
    if d.stage and d.total and d.total > 0 then
      return ("[%s] %3d%% %s/s"):format(bar(d.done, d.total, 16), d.done * 100 // d.total,
        util.fmt_size(d.rate or 0))
    end
    return "..."
  end
  if d.code == 0 then return "ok" end
  return ("FAILED (exit %d) %s"):format(d.code, d.error_ev and d.error_ev.message or "")
end

-- The live table on stderr (terminal only), redrawn in place.
function Run:draw(force)
  if not self.tty or self.json then return end
  local now = sys.now()
  if not force and self.last_draw and now - self.last_draw < 0.1 then return end
  self.last_draw = now
  local cols = sys.term_cols() or 100
  local lines = { ("%-2s %-22s %-17s %-8s %s"):format("#", "port", "MAC", "stage", "progress") }
  for _, d in ipairs(self.devs) do
    lines[#lines + 1] = ("%-2d %-22s %-17s %-8s %s"):format(d.index, d.label:sub(1, 22), d.mac or "-",
      (d.stage or "start"):sub(1, 8), self:status_text(d))
  end
  local w = self.ev.err
  if self.drawn then w:write(("\27[%dA"):format(self.drawn)) end
  for _, l in ipairs(lines) do w:write("\r", l:sub(1, cols - 1), "\27[K\n") end
  w:flush()
  self.drawn = #lines
end

-- The per-device machinery (state from events, logs, v2 lines, the live table) for modules that
-- run device jobs their own way (ncpflash.station).
M.Run, M.short_port, M.stamp = Run, short_port, stamp

function Run:finish_device(d, code)
  d.code = code
  d.seconds = sys.now() - d.t0
  local err = d.error_ev
  local result = code == 0 and "ok" or (code == 130 and "interrupted" or "failed")
  local ev = { event = "done", result = result, exit = code, code = err and err.code or nil,
    message = err and err.message or nil, bytes_written = d.bytes, seconds = d.seconds }
  if code ~= 0 and not err then ev.message = "the job ended with exit code " .. code end
  self:log(d, ("result: %s (exit %d)%s"):format(result, code, ev.message and (": " .. ev.message) or ""))
  self:forward(d, ev)   -- to the listeners always; on stdout with --json
  if d.logf then
    d.logf:close()
    d.logf = nil
    if d.mac then   -- name the logs by MAC now that it is known; never over another run's log
      local base = ("%s/%s_%s"):format(self.log_dir, d.mac:gsub(":", ""), d.stamp)
      local ok, f, log, paths = pcall(util.create_unique, base, { ".log", ".trace" })
      if ok then
        f:close()
        sys.replace(d.log_path, log)         -- over our own reservation (MoveFileEx on Windows)
        if d.trace_path and sys.stat(d.trace_path) then sys.replace(d.trace_path, paths[2])
        else os.remove(paths[2]) end
        d.log_path, d.trace_path = log, d.trace_path and paths[2]
      end
    end
  end
  if code == 130 and not self.cancelled then self:cancel_all() end
end

function Run:cancel_all()
  self.cancelled = true
  for _, d in ipairs(self.devs) do if d.code == nil then d.job:cancel() end end
end

function Run:pump(d)
  while true do
    local chunk = d.job:read()
    if chunk == nil then d.eof = true; break end
    if chunk == "" then break end
    d.buf = d.buf .. chunk
  end
  while true do
    local nl = d.buf:find("\n", 1, true)
    if not nl then break end
    local line = d.buf:sub(1, nl - 1)
    d.buf = d.buf:sub(nl + 1)
    local ok, e = pcall(M.json_decode, line)
    if ok and type(e) == "table" then self:forward(d, e)
    else self:forward(d, { event = "warn", message = "unreadable event line: " .. line:sub(1, 200) }) end
  end
end

function Run:summary(worst)
  local ok_n = 0
  local devices = setmetatable({}, json.array)
  local lines = {}
  for _, d in ipairs(self.devs) do
    if d.code == 0 then ok_n = ok_n + 1 end
    devices[#devices + 1] = { index = d.index, port = d.port, chip_id = d.chip_id, mac = d.mac, exit = d.code,
      result = d.code == 0 and "ok" or (d.code == 130 and "interrupted" or "failed"),
      code = d.error_ev and d.error_ev.code or nil, message = d.error_ev and d.error_ev.message or nil,
      bytes_written = d.bytes, seconds = d.seconds, log = d.log_path }
    lines[#lines + 1] = ("%-2d %-22s %-17s %-6s %6.1f s  %s"):format(d.index, d.label:sub(1, 22), d.mac or "-",
      d.code == 0 and "ok" or "FAILED", d.seconds or 0,
      d.code == 0 and (d.bytes and (d.bytes .. " bytes written") or "")
        or (("exit %d: %s"):format(d.code, d.error_ev and d.error_ev.message or "")))
    if d.code ~= 0 and d.error_ev and d.error_ev.hint then lines[#lines + 1] = "   hint: " .. d.error_ev.hint end
  end
  local total = sys.now() - self.t0
  lines[#lines + 1] = ("%d of %d devices ok, %d failed, %.1f s; exit code %d"):format(ok_n, #self.devs,
    #self.devs - ok_n, total, worst)
  if self.json then
    self.ev.out:write(json.encode({ v = M.SCHEMA, event = "summary", t = total, devices = devices, ok = ok_n,
      failed = #self.devs - ok_n, exit = worst, seconds = total }), "\n")
    self.ev.out:flush()
  else
    self.ev.out:write(table.concat(lines, "\n"), "\n")
    self.ev.out:flush()
  end
end

--- Entry from ncpflash.main: run `rest` (the command and its arguments) on every selected port.
--- Returns the worst exit code.
function M.main(opts, rest, argv, ev)
  local ok, res = pcall(M._main, opts, rest, argv, ev)
  if ok then return res end
  local code = errors.exit_code(res)
  if not errors.is(res) then res = { code = "internal", message = tostring(res) } end
  ev:error(res, code)
  return code
end

function M._main(opts, rest, argv, ev)
  local ports = M.resolve_ports(opts)
  local self = setmetatable({ ev = ev, json = opts.json, tty = (not opts.json) and sys.isatty(2),
    t0 = sys.now(), devs = {}, log_dir = opts.log_dir }, Run)
  if opts.log_dir and not sys.mkdirs(opts.log_dir) then
    errors.raise("input", "--log-dir: cannot create " .. opts.log_dir)
  end
  for i, url in ipairs(ports) do
    local d = { index = i, port = url, label = short_port(url), t0 = sys.now(), buf = "", stage = "start",
      done = 0, total = 0, stamp = stamp() }
    local extra = {}
    if opts.log_dir then
      local slug = d.label:gsub("[^%w%-%.]", "_")
      local base = ("%s/%s_%d_%s"):format(opts.log_dir, d.stamp, i, slug)
      local ok, f, log, paths = pcall(util.create_unique, base, { ".log", ".trace" })
      if not ok then errors.raise("input", "--log-dir: cannot write a log in " .. opts.log_dir .. ": "
        .. tostring(errors.is(f) and f.message or f)) end
      d.logf, d.log_path, d.trace_path = f, log, paths[2]
      self:log(d, ("ncpflash %s on %s: %s"):format(sys.version, url, table.concat(rest, " ")))
      extra = { "--trace-file", d.trace_path }
    elseif opts.trace_file or opts.trace then
      ev:warn("--trace/--trace-file are per device with several ports: use --log-dir DIR")
    end
    d.job = jobs.start(M.job_argv(argv, url, extra), { index = i })
    self.devs[i] = d
  end
  if not self.json and not self.tty then
    ev.out:write(("running %s on %d devices: %s\n"):format(rest[1], #ports, table.concat(ports, ", ")))
    ev.out:flush()
  end
  local list = {}
  for i, d in ipairs(self.devs) do list[i] = d.job end
  local running = #self.devs
  local cancel_deadline, interrupted
  -- Ctrl-C / SIGTERM: the signal stays pending until every job has seen it and ended (jobs.wait
  -- reports it without consuming it), so this loop runs without the interrupt hook.
  debug.sethook()
  while running > 0 do
    local _, intr = jobs.wait(list, 0.1)
    if intr and not interrupted then
      interrupted = true
      if not self.cancelled then self:cancel_all() end
      cancel_deadline = sys.now() + 15
    end
    running = 0
    for _, d in ipairs(self.devs) do
      if d.code == nil then
        self:pump(d)
        local code = d.eof and d.job:result()
        if d.eof and not code and d.job:join(5) then code = d.job:result() end
        if code then
          d.job:join(5)
          self:finish_device(d, code)
        else
          running = running + 1
        end
      end
    end
    if cancel_deadline and sys.now() > cancel_deadline then
      for _, d in ipairs(self.devs) do if d.code == nil then self:finish_device(d, 130) end end
      running = 0
    end
    self:draw()
  end
  self:draw(true)
  if interrupted then pcall(sys.error, "interrupted", "interrupted") end   -- consume the signal now
  local worst = 0
  for _, d in ipairs(self.devs) do worst = M.worst(worst, d.code) end
  if self.cancelled then worst = M.worst(worst, 130) end
  self:summary(worst)
  return worst
end

return M
