-- station: unattended production flashing with a live dashboard and a unit database.
local errors = require("ncpflash.errors")

local function usage_sub(what)
  errors.raise("usage", "station: " .. what, { hint = "see 'ncpflash help station'" })
end

return {
  help = "production station: station FILE | station report FILE.db [--csv F] [--junit F]",
  description = [[
station FILE             run the station described by FILE (a Lua data file: station name, ports,
                         the job, operator; README "Production station") until Ctrl-C / SIGTERM.
                         Per slot: wait for a unit, flash it, show PASS or FAIL, wait until it is
                         removed, then the next one.  Every attempt is recorded in FILE's SQLite
                         database; the dashboard (http://127.0.0.1:8067 by default) shows the
                         slots live and takes Start/Stop/Pause with the token printed at start.
station report FILE.db   yield, counts by error, units per hour; --csv / --junit export the
                         attempts (one row / one testcase each).
station probe            (used by the station itself) connect, print chip id and MAC, leave.

The station file, the image set's SHA-256 and the ncpflash version are locked for the session: a
changed file halts the station (restart it).  A clean stop (Ctrl-C, SIGTERM) records every running
attempt as stopped and exits 0; a crash or power cut loses at most the attempt that was running,
which the next start marks interrupted.]],
  args = {
    { "--operator", metavar = "NAME", help = "station FILE: the operator (overrides the file's)" },
    { "--http", metavar = "HOST:PORT", help = "station FILE: dashboard address (overrides the file's; 'off': none)" },
    { "--db", type = "path", metavar = "FILE", help = "station FILE: the database (default: FILE.db beside it)" },
    { "--csv", type = "path", metavar = "FILE", help = "report: write the attempts as CSV" },
    { "--junit", type = "path", metavar = "FILE", help = "report: write the attempts as JUnit XML" },
    { "--session", type = "int", metavar = "N", help = "report: only session N" },
    { "words", type = "string", many = true, help = "FILE | report FILE.db | probe" },
  },
  examples = {
    "ncpflash station line1.lua",
    "ncpflash station line1.lua --operator maria --http 127.0.0.1:8080",
    "ncpflash station report line1.db --csv line1.csv --junit line1.xml",
  },
  run = function(ctx, a)
    local w = a.words
    if w[1] == "probe" then
      if #w > 1 then usage_sub("probe takes no arguments") end
      local s <close> = ctx:connect()
      local info = s:boot_info()
      ctx.ev:result({ command = "station probe", chip_id = info.chip_id, mac = s:mac() })
      return
    end
    if w[1] == "report" then
      if #w ~= 2 then usage_sub("report needs one FILE.db") end
      local lines, f = require("ncpflash.station.report").run(w[2], { csv = a.csv, junit = a.junit,
        session = a.session })
      ctx.ev:result({ command = "station report", summary = lines, attempts = f.attempts, units = f.units,
        passed = f.passed, failed = f.failed, repeats = f.repeats, yield = f.yield,
        first_pass_yield = f.first_pass_yield,
        units_per_hour = f.units_per_hour, errors = f.errors, no_unit = f.no_unit })
      return
    end
    if #w ~= 1 then usage_sub("give one station FILE (or: report FILE.db)") end
    if a.csv or a.junit or a.session then usage_sub("--csv/--junit/--session belong to 'station report'") end
    local http = a.http
    if http == "off" then http = false end
    local res = require("ncpflash.station").run(ctx, w[1], { operator = a.operator, http = http, db = a.db,
      json = ctx.opts.json })
    if res.halted then errors.raise("safety", "station halted: " .. res.halted) end
  end,
}
