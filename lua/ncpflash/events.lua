-- ncpflash.events: the one channel through which recipes report.
--
--   ev:stage(name [, fields])          a new phase ("connect", "erase", ...)
--   ev:progress(done, total [, fields]) bytes done of total in the current
--                                       stage (fields.name labels the item)
--   ev:info(message [, fields])        a line for the user (stdout)
--   ev:warn(message [, fields])        a warning (stderr)
--   ev:result(fields)                  the outcome of a command (table)
--   ev:error(err)                      a failure (done by main for you)
--   ev:debug(message)                  only with -v
--
-- Human output: stage/info/result on stdout, warnings and errors on stderr.
-- Progress is a redrawn bar with rate and ETA when stderr is a terminal, and
-- a plain line every 25 % otherwise.  NO_COLOR (or --no-color) disables
-- colour.  With --json every event is one JSON object per line on stdout,
-- schema version 1 (README "JSON events").
local sys = require "ncpflash.core.sys"
local util = require "ncpflash.util"
local json = require "ncpflash.json"

local M = {}
M.SCHEMA = 1

local Events = {}
Events.__index = Events

--- opts: json, verbose, color (nil = auto), out/err (file handles),
--- tty (nil = auto), device (table merged into every JSON event)
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    json = opts.json, verbose = opts.verbose or 0,
    out = opts.out or io.stdout, err = opts.err or io.stderr,
    t0 = sys.now(), device = opts.device, listeners = {},
  }, Events)
  if opts.tty == nil then self.tty = sys.isatty(2) else self.tty = opts.tty end
  if opts.color == nil then
    self.color = self.tty and not sys.getenv("NO_COLOR")
  else
    self.color = opts.color
  end
  return self
end

--- Register fn(event_table) called for every event (the --junit/--report collector,
--- ncpflash.labreport; multi-device forwarding).
function Events:listen(fn)
  self.listeners[#self.listeners + 1] = fn
end

function Events:_paint(code, s)
  if not self.color then return s end
  return "\27[" .. code .. "m" .. s .. "\27[0m"
end

function Events:_emit(kind, fields)
  local e = { v = M.SCHEMA, event = kind, t = sys.now() - self.t0 }
  for k, v in pairs(fields or {}) do e[k] = v end
  if self.device then e.device = self.device end
  for _, fn in ipairs(self.listeners) do fn(e) end
  if self.json then
    self.out:write(json.encode(e), "\n")
    self.out:flush()
    return nil
  end
  return e
end

function Events:_endbar()
  if self.bar then
    self.err:write("\n")
    self.bar = nil
  end
end

function Events:stage(name, fields)
  local f = { name = name }
  for k, v in pairs(fields or {}) do f[k] = v end
  self.cur_stage, self.stage_t0, self.last_pct = name, sys.now(), nil
  if not self:_emit("stage", f) then return end
  self:_endbar()
  local detail = fields and fields.detail
  self.out:write(self:_paint("1", "==> " .. name), detail and (" " .. detail) or "", "\n")
  self.out:flush()
end

local function eta_text(s)
  if s < 60 then return ("%ds"):format(math.floor(s + 0.5)) end
  return ("%dm%02ds"):format(s // 60, math.floor(s % 60))
end

function Events:progress(done, total, fields)
  local now = sys.now()
  local t0 = self.stage_t0 or self.t0
  local rate = (now - t0) > 0 and done / (now - t0) or 0
  local f = { stage = self.cur_stage, done = done, total = total, rate = math.floor(rate) }
  for k, v in pairs(fields or {}) do f[k] = v end
  if self.json then
    -- at most ~10 progress events per second, plus the final one
    if done < total and self.last_json and now - self.last_json < 0.1 then return end
    self.last_json = now
    self:_emit("progress", f)
    return
  end
  for _, fn in ipairs(self.listeners) do fn(f) end
  local pct = total > 0 and math.floor(done * 100 / total) or 100
  local label = f.name and (f.name .. " ") or ""
  if self.tty then
    if done < total and self.last_draw and now - self.last_draw < 0.05 then return end
    self.last_draw = now
    local width = 30
    local fill = total > 0 and math.floor(done * width / total) or width
    local eta = rate > 0 and (total - done) / rate or 0
    self.err:write(("\r%s[%s%s] %3d%% %s/s ETA %s\27[K"):format(label,
      ("#"):rep(fill), ("."):rep(width - fill), pct, util.fmt_size(math.floor(rate)),
      eta_text(eta)))
    self.bar = true
    if done >= total then self:_endbar() end
  else
    -- a line each time a 25 % step is passed (25, 50, 75 and 100 %), labelled with the step
    local step = done >= total and 4 or pct // 25
    if step > (self.last_pct or 0) then
      self.last_pct = step
      self.out:write(("    %s%d%% (%d/%d bytes, %s/s)\n"):format(label, step * 25, done, total,
        util.fmt_size(math.floor(rate))))
      self.out:flush()
    end
  end
end

function Events:info(message, fields)
  local f = { message = message }
  for k, v in pairs(fields or {}) do f[k] = v end
  if not self:_emit("info", f) then return end
  self:_endbar()
  self.out:write(message, "\n")
  self.out:flush()
end

function Events:debug(message)
  if self.verbose < 1 then return end
  if not self:_emit("debug", { message = message }) then return end
  self:_endbar()
  self.err:write(self:_paint("2", message), "\n")
end

function Events:warn(message, fields)
  local f = { message = message }
  for k, v in pairs(fields or {}) do f[k] = v end
  if not self:_emit("warn", f) then return end
  self:_endbar()
  self.err:write(self:_paint("33", "warning: "), util.terminal_safe(message), "\n")
  self.err:flush()
end

--- A result: `fields.summary` (a string or list of lines) is printed in
--- human mode; every field goes to JSON.
function Events:result(fields)
  if not self:_emit("result", fields) then return end
  self:_endbar()
  local s = fields.summary
  if type(s) == "table" then s = table.concat(s, "\n") end
  if s and s ~= "" then self.out:write(s, "\n") end
  self.out:flush()
end

--- Report a failure: message (and hint) on stderr, or a JSON error event.
function Events:error(err, exit_code, traceback)
  local f = { exit = exit_code }
  if type(err) == "table" then
    for k, v in pairs(err) do
      if type(v) ~= "table" and type(v) ~= "function" and type(v) ~= "userdata" then f[k] = v end
    end
  else
    f.code, f.message = "internal", tostring(err)
  end
  if type(f.got) == "string" then f.got = util.hex(f.got) end
  if not self:_emit("error", f) then return end
  self:_endbar()
  self.err:write(self:_paint("31", "error: "), util.terminal_safe(f.message), "\n")
  if f.hint then self.err:write("hint: ", util.terminal_safe(f.hint), "\n") end
  if traceback and self.verbose > 0 then self.err:write(traceback, "\n") end
  self.err:flush()
end

return M
