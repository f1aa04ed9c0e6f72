-- The station killed mid-job (kill -9, as a crash or a power cut): the database stays consistent,
-- finished attempts are intact, and the next start marks the running attempt interrupted.
local sys = require "ncpflash.core.sys"
local SL = require "stationlib"

local PROBE = { interval = 0.1, max_interval = 0.3, removal_interval = 0.15, removal_misses = 2 }

test("kill -9 mid-job: consistent database, the running attempt becomes interrupted at the next start", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(32 * 1024, 41)
  helpers.writefile(dir .. "/fw.bin", fw)
  local good = helpers.ncpsim{ "--boot-info", helpers.boot_info(7) }
  -- every write of this unit stalls for 30 s: the station is killed while the job waits on it
  local slow = helpers.ncpsim{ "--boot-info", helpers.boot_info(8), "--fault", "stall:31:30:0",
    "--fault", "stall:3F:30:0" }
  local file = SL.write_station(dir, { station = "crashy", operator = "op", http = "127.0.0.1:0", probe = PROBE,
    ports = { good.url, slow.url }, job = { regions = { { 0x10000, "fw.bin" } } } })
  local st <close> = SL.start(file)
  SL.wait_slot(st, 1, "pass")
  SL.wait_slot(st, 2, "running", 10, function(s) return s.stage == "write" end)
  -- a second station on the same database is refused while the first one runs
  local r = helpers.run({ "station", file, "--http", "off" }, { timeout = 20 })
  eq(r.code, 2, r.err)
  match(r.err, "in use by another station process")
  eq(SL.kill9(st), 137, "killed by SIGKILL")
  good:stop()
  slow:stop()

  -- the database as the crash left it: consistent, the finished attempt intact, one 'running'
  do
    local db <close> = SL.db(dir .. "/line.db")
    eq(db:query("PRAGMA integrity_check")[1].integrity_check, "ok")
    local rows = db:query("SELECT id, slot, chip_id, result, exit_code, ended_at FROM attempts ORDER BY slot")
    eq(#rows, 2)
    eq({ rows[1].slot, rows[1].result, rows[1].exit_code }, { 1, "pass", 0 })
    eq({ rows[2].slot, rows[2].result, rows[2].chip_id }, { 2, "running", "40827b03d208" })
    eq(rows[2].ended_at, nil)
    eq(#db:query("SELECT * FROM regions WHERE attempt_id = ?", rows[1].id), 1, "the finished attempt's regions")
    eq(db:query("SELECT ended_at FROM sessions")[1].ended_at, nil)
  end

  -- the next start: the running attempt is marked interrupted, the crashed session closed
  local st2 <close> = SL.start(file)
  local out = helpers.readfile(st2.err)
  match(out, "1 attempt of an earlier run did not finish %(crash or power cut%) and is now marked interrupted: "
    .. "#%d slot 2 40:82:7b:03:d2:08")
  eq(st2:stop(), 0, helpers.readfile(st2.err))
  local db <close> = SL.db(dir .. "/line.db")
  eq(db:query("PRAGMA integrity_check")[1].integrity_check, "ok")
  local rows = db:query("SELECT * FROM attempts ORDER BY id")
  eq(#rows, 2, "the restart (no units present) added no attempt")
  local by = {}
  for _, x in ipairs(rows) do by[x.slot] = x end
  eq({ by[1].result, by[1].exit_code, by[1].bytes_written }, { "pass", 0, #fw }, "the finished attempt is unchanged")
  eq({ by[2].result, by[2].error_code }, { "interrupted", "interrupted" })
  match(by[2].error_message, "the station stopped during this attempt")
  local sess = db:query("SELECT * FROM sessions ORDER BY id")
  eq(#sess, 2)
  match(sess[1].end_reason, "^crashed")
  ok(sess[1].ended_at, "the crashed session is closed")
  eq(sess[2].end_reason, "stopped (SIGINT/SIGTERM)")
  local rep = helpers.run{ "station", "report", dir .. "/line.db" }
  eq(rep.code, 0, rep.err)
  match(rep.out, "attempts     pass 1, interrupted 1")
  match(rep.out, "interrupted     1  last: the station stopped during this attempt")
end)

test("Ctrl-C during a job: the attempt is recorded as stopped, exit 0", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(16 * 1024, 43))
  local slow <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(9), "--fault", "stall:31:30:0",
    "--fault", "stall:3F:30:0" }
  local file = SL.write_station(dir, { station = "stop", http = "127.0.0.1:0", probe = PROBE, ports = { slow.url },
    job = { regions = { { 0x10000, "fw.bin" } } } })
  local st <close> = SL.start(file)
  SL.wait_slot(st, 1, "running", 10, function(s) return s.stage == "write" end)
  local t0 = sys.now()
  sys.kill(st.pid, "INT")
  local code = sys.wait(st.pid, 20)
  st.status = code
  eq(code, 0, helpers.readfile(st.err))
  ok(sys.now() - t0 < 10, "stopped promptly")
  local db <close> = SL.db(dir .. "/line.db")
  local rows = db:query("SELECT * FROM attempts")
  eq(#rows, 1)
  eq({ rows[1].result, rows[1].exit_code }, { "stopped", 130 })
  match(rows[1].error_message, "the station was stopped %(SIGINT/SIGTERM%) during the attempt")
  local regs = db:query("SELECT outcome, detail FROM regions WHERE attempt_id = ?", rows[1].id)
  eq(regs[1].outcome, "interrupted", "the region the job was writing")
  match(regs[1].detail, "region is now")
end)
