-- ncpflash.station.report: `ncpflash station report FILE.db` - yield, counts by error, units per
-- hour; CSV (one row per attempt) and JUnit XML (one testcase per attempt) exports.
--
-- Definitions (also in README "Production station"):
--   unit           a chip id; attempts without one (a trigger nobody answered) are counted apart
--   passed unit    a unit with at least one `pass` attempt; failed unit: finished, never passed
--   yield          passed units / units with a finished (pass or fail) attempt
--   first-pass yield  units whose first finished attempt passed / the same denominator
--   units per hour passed units / hours from the first attempt's start to the last one's end
local records = require "ncpflash.station.records"
local errors = require "ncpflash.errors"

local M = {}

--- Gather the figures from an open records object. opts.session (id) limits to one session.
function M.figures(rec, opts)
  opts = opts or {}
  local where, args = "", {}
  if opts.session then where, args = " WHERE session_id = ?", { opts.session } end
  local q = function(sql, ...) return rec.conn:query(sql, ...) end
  local rows = q("SELECT * FROM attempts" .. where .. " ORDER BY id", table.unpack(args))
  local f = { attempts = #rows, by_result = {}, by_error = {}, units = 0, passed = 0, failed = 0, first_pass = 0,
    repeats = 0, no_unit = 0, rows = rows, stale_running = 0 }
  local units, order = {}, {}
  local t_first, t_last
  for _, r in ipairs(rows) do
    f.by_result[r.result] = (f.by_result[r.result] or 0) + 1
    if r.is_repeat == 1 then f.repeats = f.repeats + 1 end
    if r.result == "fail" or r.result == "interrupted" or r.result == "stopped" then
      local k = r.error_code or r.result
      local e = f.by_error[k] or { code = k, n = 0 }
      e.n = e.n + 1
      e.last = r.error_message
      f.by_error[k] = e
    end
    if not r.chip_id then
      if r.result == "fail" then f.no_unit = f.no_unit + 1 end
    elseif r.result == "pass" or r.result == "fail" then
      local u = units[r.chip_id]
      if not u then
        u = { first = r.result, pass = false }
        units[r.chip_id] = u
        order[#order + 1] = r.chip_id
      end
      if r.result == "pass" then u.pass = true end
    end
    t_first = t_first or r.started_at
    if r.ended_at and (not t_last or r.ended_at > t_last) then t_last = r.ended_at end
  end
  for _, id in ipairs(order) do
    local u = units[id]
    f.units = f.units + 1
    if u.pass then f.passed = f.passed + 1 else f.failed = f.failed + 1 end
    if u.first == "pass" then f.first_pass = f.first_pass + 1 end
  end
  f.yield = f.units > 0 and f.passed / f.units or nil
  f.first_pass_yield = f.units > 0 and f.first_pass / f.units or nil
  f.t_first, f.t_last = t_first, t_last
  if t_first then f.t_first_epoch = q("SELECT CAST(strftime('%s', ?) AS INTEGER) AS e", t_first)[1].e end
  if t_first and t_last then
    local span = q("SELECT (julianday(?) - julianday(?)) * 86400.0 AS s", t_last, t_first)[1].s or 0
    f.span_seconds = span
    f.units_per_hour = span > 0 and f.passed * 3600 / span or nil
  end
  local sessions = q("SELECT * FROM sessions" .. (opts.session and " WHERE id = ?" or "") .. " ORDER BY id",
    table.unpack(args))
  f.sessions = sessions
  local errs = {}
  for _, e in pairs(f.by_error) do errs[#errs + 1] = e end
  table.sort(errs, function(a, b) if a.n ~= b.n then return a.n > b.n end return a.code < b.code end)
  f.errors = errs
  return f
end

local function pct(x) return x and ("%.1f %%"):format(x * 100) or "-" end

local function duration(s)
  if not s then return "-" end
  if s < 120 then return ("%.1f s"):format(s) end
  if s < 7200 then return ("%d min %02d s"):format(s // 60, math.floor(s % 60)) end
  return ("%d h %02d min"):format(s // 3600, math.floor(s % 3600) // 60)
end

--- The report as text lines.
function M.text(f, path)
  local names = {}
  for _, s in ipairs(f.sessions) do names[s.station] = true end
  local list = {}
  for n in pairs(names) do list[#list + 1] = n end
  table.sort(list)
  local lines = {
    ("%s: station %s, %d session%s, %d attempt%s"):format(path, #list > 0 and table.concat(list, ", ") or "-",
      #f.sessions, #f.sessions == 1 and "" or "s", f.attempts, f.attempts == 1 and "" or "s"),
    ("units        %d (passed %d, failed %d), %d repeat attempt%s%s"):format(f.units, f.passed, f.failed,
      f.repeats, f.repeats == 1 and "" or "s", f.no_unit > 0 and (", " .. f.no_unit .. " without a unit") or ""),
    ("yield        %s (first-pass yield %s)"):format(pct(f.yield), pct(f.first_pass_yield)),
    ("units/hour   %s (%d passed units in %s, first start to last end)"):format(
      f.units_per_hour and ("%.1f"):format(f.units_per_hour) or "-", f.passed, duration(f.span_seconds)),
  }
  local res = {}
  for _, k in ipairs(records.RESULTS) do
    if f.by_result[k] then res[#res + 1] = ("%s %d"):format(k, f.by_result[k]) end
  end
  lines[#lines + 1] = "attempts     " .. (#res > 0 and table.concat(res, ", ") or "none")
  if #f.errors > 0 then
    lines[#lines + 1] = "failures by error:"
    for _, e in ipairs(f.errors) do
      lines[#lines + 1] = ("  %-12s %4d  last: %s"):format(e.code, e.n, tostring(e.last or ""):sub(1, 100))
    end
  end
  for _, s in ipairs(f.sessions) do
    lines[#lines + 1] = ("session %d: %s .. %s, operator %s, job %s, image set %s, ncpflash %s%s"):format(s.id,
      s.started_at, s.ended_at or "(running)", s.operator or "-", s.job_name, s.image_set_sha256:sub(1, 16),
      s.ncpflash_version, s.end_reason and (", " .. s.end_reason) or "")
  end
  return lines
end

---------------------------------------------------------------------------------------------------
-- CSV (RFC 4180: comma, CRLF, fields with , " CR LF quoted, quotes doubled)

M.CSV_COLUMNS = { "attempt_id", "session_id", "station", "operator", "slot", "port", "chip_id", "mac", "unit_attempt",
  "is_repeat", "image_set_sha256", "job_name", "started_at", "ended_at", "seconds", "result", "exit_code",
  "error_code", "error_message", "bytes_written", "log_path", "regions" }

local function csv_field(v)
  if v == nil then return "" end
  local s = tostring(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

function M.csv(rec, f)
  local out = { table.concat(M.CSV_COLUMNS, ",") }
  for _, r in ipairs(f.rows) do
    local regs = {}
    for _, g in ipairs(rec:regions(r.id)) do regs[#regs + 1] = ("%s@0x%X=%s"):format(g.name, g.address, g.outcome) end
    r.attempt_id, r.regions = r.id, table.concat(regs, ";")
    local cells = {}
    for i, c in ipairs(M.CSV_COLUMNS) do
      local v = r[c]
      if c == "seconds" and v then v = ("%.3f"):format(v) end
      cells[i] = csv_field(v)
    end
    out[#out + 1] = table.concat(cells, ",")
  end
  return table.concat(out, "\r\n") .. "\r\n"
end

---------------------------------------------------------------------------------------------------
--- One testcase per attempt: name = the unit (MAC, else chip id, else "no unit"; "#k" for a
--- repeat), classname = station.slotN; pass -> no failure, anything else -> <failure>.
function M.junit(f)
  local station = f.sessions[1] and f.sessions[1].station or "station"
  local units = {}
  for _, r in ipairs(f.rows) do
    local unit = r.mac or r.chip_id or ("no unit (attempt " .. r.id .. ")")
    local u = { name = r.unit_attempt and r.unit_attempt > 1 and ("%s #%d"):format(unit, r.unit_attempt) or unit,
      classname = ("%s.slot%d"):format(station, r.slot), time = r.seconds or 0,
      result = r.result == "pass" and "ok" or (r.result == "interrupted" or r.result == "stopped") and "interrupted"
        or "failed" }
    if u.result ~= "ok" then
      u.code, u.exit = r.error_code or r.result, r.exit_code
      u.message = r.error_message or r.result
      u.details = { ("attempt %d, %s, slot %d (%s), started %s, log %s"):format(r.id, r.result, r.slot,
        tostring(r.port), tostring(r.started_at), tostring(r.log_path)) }
    end
    units[#units + 1] = u
  end
  return require("ncpflash.junit").render({ name = station, timestamp = f.t_first_epoch, units = units,
    properties = { { "station", station } } })
end

--- `station report`: returns the text lines; writes CSV/JUnit when asked.
function M.run(path, opts)
  opts = opts or {}
  local st = require("ncpflash.core.sys").stat(path)
  if not st or st.type ~= "file" then errors.raise("input", "station report: no such database " .. path) end
  local rec <close> = records.open(path, { readonly = true })
  local ok = pcall(rec.conn.query, rec.conn, "SELECT 1 FROM attempts LIMIT 1")
  if not ok then errors.raise("input", path .. " is not a station database (no attempts table)") end
  local f = M.figures(rec, { session = opts.session })
  local lines = M.text(f, path)
  local function write(file, data, what)
    local h, err = io.open(file, "wb")
    if not h then errors.raise("input", ("station report: cannot write %s: %s"):format(file, err)) end
    h:write(data)
    h:close()
    lines[#lines + 1] = ("%s: %s"):format(what, file)
  end
  if opts.csv then write(opts.csv, M.csv(rec, f), "CSV") end
  if opts.junit then write(opts.junit, M.junit(f), "JUnit XML") end
  return lines, f
end

return M
