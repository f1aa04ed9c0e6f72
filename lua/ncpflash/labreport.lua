-- ncpflash.labreport: CI and lab reports built from the event stream (--junit FILE, --report).
--
-- main attaches a collector to the events of the run (ncpflash.events listeners).  With one port
-- it sees the v1 events of the command; with several (ncpflash.multi) the v2 events of every
-- device, each with `device = {index, port, chip_id, mac}` and a `done` event per device.  From
-- them it keeps one unit per device: port, chip id, MAC, result, exit code, error code and
-- message, the region the error names, bytes written, seconds, log file.  When the command ends,
-- finish() writes the reports:
--
--   --junit FILE           JUnit XML, one testcase per device (ncpflash.junit)
--   --report lava[:FILE]   one `lava-test-case NAME --result pass|fail --measurement S --units
--                          seconds` line per device, for a LAVA test shell (stdout by default,
--                          after everything else; FILE with --json)
--   --report junit:FILE    the same as --junit FILE
--
-- The flash code knows nothing of this: a new report format is one more writer here.
local sys = require "ncpflash.core.sys"
local errors = require "ncpflash.errors"
local junit = require "ncpflash.junit"

local M = {}

--- The report requests of the options: list of {format = "junit"|"lava", path = FILE|nil (stdout)}.
function M.requests(opts)
  local out = {}
  if opts.junit then out[#out + 1] = { format = "junit", path = opts.junit } end
  for _, spec in ipairs(opts.report_list or (opts.report and { opts.report }) or {}) do
    local fmt, path = spec:match("^(%w+):(.+)$")
    fmt = fmt or spec
    if fmt == "junit" and path then
      out[#out + 1] = { format = "junit", path = path }
    elseif fmt == "lava" then
      if not path and opts.json then
        errors.raise("usage", "--report lava writes to stdout, which carries the JSON events with --json: "
          .. "use --report lava:FILE")
      end
      out[#out + 1] = { format = "lava", path = path }
    else
      errors.raise("usage", ("--report %s: unknown report (lava, lava:FILE or junit:FILE)"):format(spec))
    end
  end
  return out
end

local Collector = {}
Collector.__index = Collector

--- Start collecting the events of `ev` when the options ask for a report; nil otherwise.
--- `rest` is the command and its arguments, `argv` the whole command line, `multi` true when
--- ncpflash.multi runs the command (v2 events).
function M.attach(ev, opts, rest, argv, multi)
  local reqs = M.requests(opts)
  if #reqs == 0 then return nil end
  local self = M.new({ port = opts.port, command = rest[1], argv = argv, multi = multi })
  self.opts, self.ev = opts, ev
  ev:listen(function(e) self:on_event(e) end)
  return self
end

--- A collector without events attached (feed it with on_event): opts.port (the single port),
--- opts.command, opts.argv, opts.multi (v2 events: events without a device are the run's own).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ t0 = sys.now(), started = os.time(), command = opts.command or "ncpflash",
    argv = opts.argv, port = opts.port, multi = opts.multi, devs = {}, order = {} }, Collector)
end

function Collector:_dev(index, port)
  local d = self.devs[index]
  if not d then
    d = { index = index, port = port }
    self.devs[index] = d
    self.order[#self.order + 1] = index
  end
  return d
end

--- One event (a v1 event of a single-port run, or a v2 event with `device`).
function Collector:on_event(e)
  if type(e) ~= "table" or not e.event then return end
  local d
  if type(e.device) == "table" and e.device.index then
    d = self:_dev(e.device.index, e.device.port)
    d.chip_id = e.device.chip_id or d.chip_id
    d.mac = e.device.mac or d.mac
  elseif self.multi then
    -- the multi-device run's own events: only an error matters (no port matched, ...)
    if e.event == "error" then self.run_error = e end
    return
  else
    d = self:_dev(1, self.port)
  end
  d.chip_id = d.chip_id or e.chip_id
  d.mac = d.mac or e.mac
  if e.event == "error" then
    d.error = e
  elseif e.event == "result" and type(e.bytes_written) == "number" then
    d.bytes = (d.bytes or 0) + e.bytes_written
  elseif e.event == "done" then
    d.done = e
  end
end

local function short_port(url)
  return (tostring(url or "?"):gsub("^%a[%w+]*://", ""):gsub("%?.*$", ""):gsub("^/dev/serial/by%-id/", "")
    :gsub("^/dev/", ""))
end

--- The units of the run, in port order: {index, port, chip_id, mac, result, exit, code, message,
--- region, hint, bytes_written, time}.  `code` is the exit code of the command (single port).
function Collector:units(exit_code)
  local units = {}
  local classname = "ncpflash." .. tostring(self.command):gsub("[/\\]", "."):gsub("%.lua$", "")
  table.sort(self.order)
  for _, i in ipairs(self.order) do
    local d = self.devs[i]
    local err, done = d.error, d.done
    local exit = done and done.exit or exit_code or (err and err.exit) or 0
    local result = exit == 0 and "ok" or (exit == 130 and "interrupted") or "failed"
    local u = { index = i, port = d.port, chip_id = d.chip_id, mac = d.mac, result = result, exit = exit,
      bytes_written = done and done.bytes_written or d.bytes, classname = classname,
      time = done and done.seconds or (sys.now() - self.t0) }
    if result ~= "ok" then
      u.code = err and err.code or (done and done.code) or "exit"
      u.message = err and err.message or (done and done.message) or ("ended with exit code " .. tostring(exit))
      u.region = err and err.region or nil
      u.hint = err and err.hint or nil
    end
    u.name = ("%s %s"):format(d.port or "(no port)", d.chip_id or "(no chip id)")
    local details = { "port: " .. tostring(d.port) }
    if d.chip_id then details[#details + 1] = "chip_id: " .. d.chip_id end
    if d.mac then details[#details + 1] = "mac: " .. d.mac end
    if u.hint then details[#details + 1] = "hint: " .. u.hint end
    u.details = details
    units[#units + 1] = u
  end
  if #units == 0 and (exit_code or 0) ~= 0 then
    -- the command failed before any device ran: say so, a report without units would read as a pass
    local e = self.run_error or {}
    units[1] = { index = 0, name = "ncpflash " .. tostring(self.command), classname = classname,
      result = exit_code == 130 and "interrupted" or "failed", exit = exit_code, code = e.code or "exit",
      message = e.message or ("ended with exit code " .. tostring(exit_code)), time = sys.now() - self.t0 }
  end
  return units
end

--- The JUnit suite of the run (ncpflash.junit's shape).
function Collector:suite(exit_code)
  local units = self:units(exit_code)
  local lines = {}
  for _, u in ipairs(units) do
    lines[#lines + 1] = ("[%d] %s: %s%s"):format(u.index, u.name, u.result == "ok" and "ok" or
      (("%s (exit %d, %s): %s"):format(u.result, u.exit, tostring(u.code), junit.failure_message(u))),
      u.bytes_written and (", " .. u.bytes_written .. " bytes written") or "")
  end
  return { name = "ncpflash " .. tostring(self.command), timestamp = self.started, time = sys.now() - self.t0,
    properties = { { "ncpflash.version", sys.version }, { "ncpflash.command", table.concat(self.argv or {}, " ") },
      { "ncpflash.exit", tostring(exit_code or "") } },
    units = units, system_out = table.concat(lines, "\n") }
end

--- A LAVA test case id for a unit: letters, digits, '.', '_' and '-' only (LAVA's test shell
--- signal is space-separated), e.g. flash-1-ttyUSB0-40827b03d201.
function M.lava_name(u, command)
  local parts = { tostring(command or "ncpflash"), tostring(u.index or 0), short_port(u.port) }
  if u.chip_id then parts[#parts + 1] = u.chip_id end
  if not u.port then parts = { tostring(command or "ncpflash") } end
  return (table.concat(parts, "-"):gsub("[^%w%._%-]+", "_"))
end

--- The lava-test-case lines for a list of units.
function M.lava_lines(units, command)
  local out = {}
  for _, u in ipairs(units) do
    out[#out + 1] = ("lava-test-case %s --result %s --measurement %.3f --units seconds"):format(
      M.lava_name(u, command), u.result == "ok" and "pass" or "fail", tonumber(u.time) or 0)
  end
  return out
end

--- Write every requested report for a run that ended with `exit_code`.  Returns the exit code to
--- use: unchanged, or 7 (with an error event) when a report could not be written.
function Collector:finish(exit_code)
  if self.finished then return exit_code end
  self.finished = true
  local ok, err = pcall(function()
    -- asked again: a command's own option of the same name takes it (cli.give_back)
    for _, r in ipairs(self.opts and M.requests(self.opts) or {}) do
      if r.format == "junit" then
        junit.write(r.path, self:suite(exit_code))
      else
        local text = table.concat(M.lava_lines(self:units(exit_code), (self.command:gsub("[/\\]", "-"))), "\n") .. "\n"
        if r.path then
          require("ncpflash.util").writefile(r.path, text)
        else
          io.stdout:write(text)
          io.stdout:flush()
        end
      end
    end
  end)
  if ok then return exit_code end
  if not errors.is(err) then err = errors.new("input", tostring(err)) end
  self.ev:error(err, 7)
  return exit_code ~= 0 and exit_code or 7
end

return M
