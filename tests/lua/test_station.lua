-- The production station end to end: three ncpsims (a unit plugged in late, a unit that fails, a
-- unit flashed twice), the records field by field, the JSON API and its token, the report.
skip_if(helpers.windows or helpers.in_windows, "the factory station is Linux-only (not in the Windows build)")
local sys = require "ncpflash.core.sys"
local image = require "ncpflash.core.codec"
local SL = require "stationlib"

local function mac(k) return ("40:82:7b:03:d2:%02x"):format(k) end
local function chip(k) return ("40827b03d2%02x"):format(k) end
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local PROBE = { interval = 0.1, max_interval = 0.3, removal_interval = 0.15, removal_misses = 2 }

test("three units: late plug-in, a fault, a repeat; records, API, report", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(48 * 1024, 31)
  helpers.writefile(dir .. "/fw.bin", fw)
  local late_port = SL.free_port()
  local rep_state = dir .. "/unit3"
  local rep = helpers.ncpsim{ "--boot-info", helpers.boot_info(3), "--state", rep_state }
  local bad <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(2), "--fault", "fl:31:0005:0",
    "--fault", "fl:3F:0005:0" }
  local file = SL.write_station(dir, { station = "line-7", operator = "maria",
    ports = { rep.url, bad.url, "rfc2217://127.0.0.1:" .. late_port },
    job = { name = "fw-48k", regions = { { 0x10000, "fw.bin" } } }, probe = PROBE, http = "127.0.0.1:0" })
  local st <close> = SL.start(file)
  ok(st.url, "dashboard URL printed")
  match(helpers.readfile(st.out), "locked for this session: image set %x+")

  -- slot 1 passes, slot 2 fails (device error), slot 3 has no unit yet
  SL.wait_slot(st, 1, "pass")
  local s = SL.wait_slot(st, 2, "fail")
  eq(s.slots[3].state, "waiting", "nothing listens on slot 3's port yet")
  eq(s.slots[3].attempts, 0)
  match(s.slots[2].last_error, "FL 0x0005")
  eq(s.slots[2].waiting_for, "removal", "a failed unit stays until it is removed")

  -- a unit is plugged into slot 3 late
  local late = helpers.ncpsim{ "--boot-info", helpers.boot_info(4), "--listen", "127.0.0.1:" .. late_port }
  SL.wait_slot(st, 3, "pass")

  -- unit 3 is removed (stops answering), then put back: flashed again, reported as a repeat
  rep:stop()
  SL.wait_slot(st, 1, "waiting")
  local rep2 = helpers.ncpsim{ "--boot-info", helpers.boot_info(3), "--state", rep_state,
    "--listen", rep.url:match("^rfc2217://(.*)$") }
  s = SL.wait_slot(st, 1, "pass", 20, function(x) return x.attempts == 2 end)
  eq(s.slots[1].unit.is_repeat, true)
  eq(s.slots[1].unit.unit_attempt, 2)
  sys.sleep(0.5)   -- a unit that stays in the fixture is not flashed again
  s = SL.status(st)
  eq(s.slots[1].attempts, 2)
  eq(s.slots[2].attempts, 1, "the failed unit was not retried while it stayed in the fixture")
  local c = s.counters
  eq({ c.done, c.pass, c.fail, c.attempts, c.repeats }, { 3, 2, 1, 4, 1 }, "a repeat is not counted twice")
  ok(math.abs(c.yield - 2 / 3) < 1e-5, "yield " .. tostring(c.yield))
  eq(#s.failures, 1)
  eq(s.failures[1].mac, mac(2))
  eq(s.image_set_sha256:match("^%x+$") and #s.image_set_sha256, 64)
  eq(s.job_name, "fw-48k")

  -- the JSON API: verdicts, slots, attempts; control needs the token
  local code, _, v = SL.api(st, "GET", "/api/slots/1/verdict")
  eq(code, 200)
  eq({ v.verdict.result, v.verdict.mac, v.verdict.is_repeat, v.verdict.unit_attempt, v.verdict.exit_code },
    { "pass", mac(3), true, 2, 0 })
  _, _, v = SL.api(st, "GET", "/api/slots/2/verdict")
  eq({ v.verdict.result, v.verdict.error_code, v.verdict.exit_code }, { "fail", "device", 4 })
  code, _, v = SL.api(st, "GET", "/api/attempts?limit=10")
  eq(code, 200)
  eq(#v, 4)
  code = SL.api(st, "GET", "/api/slots/9")
  eq(code, 404)
  code, _, v = SL.api(st, "POST", "/api/slots/2/pause")
  eq(code, 401, "control without the token")
  match(v.error, "token")
  code = SL.api(st, "POST", "/api/slots/2/pause", ("0"):rep(32))
  eq(code, 401, "control with a wrong token")
  code = SL.api(st, "POST", "/api/pause", nil, nil, { "X-Ncpflash-Token: " .. ("1"):rep(32) })
  eq(code, 401)
  code = SL.api(st, "GET", "/api/status", nil, nil, { "Host: station.example.com" })
  eq(code, 403, "a non-loopback Host name is refused (DNS rebinding)")
  code = SL.api(st, "DELETE", "/api/status")
  eq(code, 405)
  code, _, v = SL.api(st, "POST", "/api/slots/2/pause", st.token)
  eq(code, 200)
  eq(v.status.slots[2].state, "paused")
  _, _, v = SL.api(st, "POST", "/api/slots/2/start", st.token)
  eq(v.status.slots[2].state, "fail", "started again: the failed unit still waits for its removal")
  code = SL.api(st, "POST", "/api/slots/2/trigger", st.token)
  eq(code, 409, "no trigger in auto mode")

  -- a clean stop: exit 0, the session closed
  eq(st:stop(), 0, helpers.readfile(st.err))
  match(helpers.readfile(st.out), "station line%-7 stopped: done 3  pass 2  fail 1  yield 66%.7 %%")
  late:stop()
  rep2:stop()
  eq(late:flash():sub(0x10000 + 1, 0x10000 + #fw) == fw, true, "late unit flashed")
  eq(rep2:flash():sub(0x10000 + 1, 0x10000 + #fw) == fw, true, "repeat unit flashed")

  -- the records, field by field
  local db <close> = SL.db(dir .. "/line.db")
  local rows = db:query("SELECT * FROM attempts ORDER BY id")
  eq(#rows, 4)
  local by = {}
  for _, r in ipairs(rows) do by[#by + 1] = r end
  table.sort(by, function(a, b) return (a.chip_id .. a.id) < (b.chip_id .. b.id) end)   -- unit 2, 3, 3, 4
  local set_sha = s.image_set_sha256
  local expect = {
    { slot = 2, chip_id = chip(2), mac = mac(2), unit_attempt = 1, is_repeat = 0, result = "fail", exit_code = 4,
      error_code = "device" },
    { slot = 1, chip_id = chip(3), mac = mac(3), unit_attempt = 1, is_repeat = 0, result = "pass", exit_code = 0,
      bytes_written = #fw },
    { slot = 1, chip_id = chip(3), mac = mac(3), unit_attempt = 2, is_repeat = 1, result = "pass", exit_code = 0,
      bytes_written = #fw },
    { slot = 3, chip_id = chip(4), mac = mac(4), unit_attempt = 1, is_repeat = 0, result = "pass", exit_code = 0,
      bytes_written = #fw },
  }
  local ports = { rep.url, bad.url, "rfc2217://127.0.0.1:" .. late_port }
  for i, e in ipairs(expect) do
    local r = by[i]
    for k, want in pairs(e) do eq(r[k], want, ("attempt %d (%s) field %s"):format(r.id, r.chip_id, k)) end
    eq(r.session_id, 1)
    eq(r.port, ports[e.slot])
    eq(r.station, "line-7")
    eq(r.operator, "maria")
    eq(r.job_name, "fw-48k")
    eq(r.image_set_sha256, set_sha)
    match(r.started_at, ISO)
    match(r.ended_at, ISO)
    ok(r.ended_at >= r.started_at, "ended after it started")
    ok(r.seconds > 0 and r.seconds < 20, "seconds " .. tostring(r.seconds))
    if e.result == "pass" then
      eq(r.error_code, nil)
      eq(r.error_message, nil)
    else
      match(r.error_message, "fw%.bin @0x10000 failed twice.*FL 0x0005")
    end
    ok(r.log_path and sys.stat(r.log_path), "log " .. tostring(r.log_path))
    match(r.log_path, chip(i == 1 and 2 or (i == 4 and 4 or 3)) .. "_%d+T%d+Z")
    match(helpers.readfile(r.log_path), e.result == "pass" and "result: ok %(exit 0%)" or "result: failed %(exit 4%)")
    local regs = db:query("SELECT * FROM regions WHERE attempt_id = ?", r.id)
    eq(#regs, 1)
    eq({ regs[1].name, regs[1].address, regs[1].size, regs[1].sha256, regs[1].outcome },
      { "fw.bin", 0x10000, #fw, image.hex(image.sha256(fw)), e.result == "pass" and "written" or "failed" })
  end
  ok(by[3].started_at > by[2].ended_at, "the repeat came after the first flash of that unit")
  local sess = db:query("SELECT * FROM sessions")
  eq(#sess, 1)
  eq({ sess[1].station, sess[1].operator, sess[1].image_set_sha256, sess[1].job_name, sess[1].end_reason },
    { "line-7", "maria", set_sha, "fw-48k", "stopped (SIGINT/SIGTERM)" })
  eq(sess[1].station_file_sha256, image.hex(image.sha256(helpers.readfile(file))))
  eq(sess[1].station_file, sys.realpath(file))
  eq(sess[1].job_command, "flash 0x10000 " .. sys.realpath(dir) .. "/fw.bin")
  match(sess[1].ended_at, ISO)
  eq(db:query("PRAGMA journal_mode")[1].journal_mode, "wal")

  -- the report: yield, counts by error, units per hour, CSV and JUnit
  local r = helpers.run{ "station", "report", dir .. "/line.db", "--csv", dir .. "/a.csv", "--junit", dir .. "/a.xml" }
  eq(r.code, 0, r.err)
  match(r.out, "units        3 %(passed 2, failed 1%), 1 repeat attempt")
  match(r.out, "yield        66%.7 %% %(first%-pass yield 66%.7 %%%)")
  match(r.out, "units/hour   [%d%.]+ %(2 passed units in")
  match(r.out, "attempts     pass 3, fail 1")
  match(r.out, "device          1  last: fw%.bin @0x10000 failed twice")
  local csv = helpers.readfile(dir .. "/a.csv")
  local lines = {}
  for l in csv:gmatch("([^\r\n]*)\r\n") do lines[#lines + 1] = l end
  eq(#lines, 5, csv)
  match(lines[1], "^attempt_id,session_id,station,operator,slot,port,chip_id,mac,")
  ok(csv:find('"fw.bin @0x10000 failed twice, region is now erased (no write acknowledged):', 1, true),
    "a message with commas is quoted")
  ok(csv:find("fw.bin@0x10000=written", 1, true))
  local xml = helpers.readfile(dir .. "/a.xml")
  eq(select(2, xml:gsub("<testcase ", "")), 4)
  eq(select(2, xml:gsub("<failure ", "")), 1)
  match(xml, '<testsuite name="line%-7" tests="4" failures="1"')
  match(xml, '<testcase name="' .. mac(3) .. ' #2" classname="line%-7%.slot1"')
  match(xml, 'type="device"')
  local j = helpers.json_lines(helpers.run{ "--json", "station", "report", dir .. "/line.db" }.out)
  local res = j[#j]
  eq({ res.units, res.passed, res.failed, res.repeats, res.attempts }, { 3, 2, 1, 1, 4 })
end)

test("trigger = button: nothing is flashed until the operator starts the unit; no chip is a failed attempt", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(16 * 1024, 3))
  local sim <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(5) }
  local file = SL.write_station(dir, { station = "bench", trigger = "button", http = "127.0.0.1:0",
    ports = { sim.url, "rfc2217://127.0.0.1:" .. SL.free_port() }, job = { regions = { { 0x20000, "fw.bin" } } },
    probe = PROBE })
  local st <close> = SL.start(file)
  local s = SL.status(st)
  eq(SL.states(s), "1=ready 2=ready")
  sys.sleep(0.5)
  eq(SL.status(st).slots[1].attempts, 0, "no trigger, no flash")
  local code = SL.api(st, "POST", "/api/slots/1/trigger", st.token)
  eq(code, 200)
  SL.wait_slot(st, 1, "ready", 10, function(x) return x.attempts == 1 end)
  s = SL.status(st)
  eq(s.slots[1].last.result, "pass")
  SL.api(st, "POST", "/api/slots/2/trigger", st.token)
  s = SL.wait_slot(st, 2, "ready", 10, function(x) return x.attempts == 1 end)
  eq(s.slots[2].last.result, "fail")
  match(s.slots[2].last.error_message, "no chip answered")
  eq(s.counters.no_unit, 1)
  eq(s.counters.done, 1, "an attempt without a unit is not a unit")
  eq(st:stop(), 0)
  local db <close> = SL.db(dir .. "/line.db")
  local rows = db:query("SELECT slot, chip_id, result, error_code FROM attempts ORDER BY slot")
  eq(#rows, 2)
  eq({ rows[1].chip_id, rows[1].result }, { chip(5), "pass" })
  eq(rows[2].chip_id, nil)
  eq({ rows[2].result, rows[2].error_code }, { "fail", "port" })
end)

test("a changed image file halts the station before the next unit", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(16 * 1024, 9))
  local late_port = SL.free_port()
  local file = SL.write_station(dir, { station = "lock", http = "127.0.0.1:0",
    ports = { "rfc2217://127.0.0.1:" .. late_port }, job = { regions = { { 0x20000, "fw.bin" } } }, probe = PROBE })
  local st <close> = SL.start(file)
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(16 * 1024, 10))
  local sim <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(6), "--listen", "127.0.0.1:" .. late_port }
  ok(sim.url)
  local s = SL.wait_for("halt", function() local x = SL.status(st); return x.halted and x end, 10)
  match(s.halted, "fw%.bin changed since the station started")
  eq(s.slots[1].attempts, 0, "nothing flashed with the changed file")
  local code, _, v = SL.api(st, "POST", "/api/start", st.token)
  eq(code, 409)
  match(v.error, "restart the station")
  local ex = st:stop()
  eq(ex, 6, "a halted station exits 6 (refused for safety)")
  match(helpers.readfile(st.err), "station halted: locked input")
end)

test("station file errors name the field", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", "x")
  local function try(t, pat, exit)
    local f = SL.write_station(dir, t, "bad.lua")
    local r = helpers.run{ "station", f }
    eq(r.code, exit or 2, r.err)
    match(r.err, pat)
  end
  try({ station = "a", ports = { "/dev/null" }, job = {}, opertor = "x" },
    "unknown field opertor %(did you mean operator%?%)")
  try({ station = "a", ports = { "/dev/null" } }, "job = {...} is required")
  try({ station = "a", ports = { "/dev/null" }, job = { regions = { { 0x1000, "fw.bin" } } }, trigger = "foot" },
    "trigger must be")
  try({ station = "a", ports = { "/dev/null" }, job = { regions = { { 0x1000, "nope.bin" } } } }, "nope%.bin", 7)
  try({ station = "a", ports = { "/dev/null" }, job = { config = "x.ini", regions = {} } }, "exactly one of")
  try({ station = "a", ports = { "/dev/null" }, job = { regions = { { 0x1000, "fw.bin" } } }, http = "localhost:80" },
    "numeric address")
  try({ station = "a", ports = { "/dev/null" }, job = { regions = { { 0x1000, "fw.bin" } }, options = { "--port" } } },
    "set by the station")
  helpers.writefile(dir .. "/code.lua", "return { station = os.getenv('HOME') }")
  local r = helpers.run{ "station", dir .. "/code.lua" }
  eq(r.code, 7, "a station file is data: no library is reachable")
  match(r.err, "attempt to index a nil value")
  r = helpers.run{ "station", "report", dir .. "/none.db" }
  eq(r.code, 7)
  match(r.err, "no such database")
end)

test("a QConn ini job: every region recorded, the flash byte-exact", function()
  local synth = require "synth"
  local dir = helpers.tmpdir()
  local set = synth.release(dir, { fw_size = 64 * 1024 })
  local sim = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x21) }
  local file = SL.write_station(dir, { station = "ini", http = "127.0.0.1:0", probe = PROBE, ports = { sim.url },
    job = { config = "synth_flash_prog_cfg.ini" } })
  local st <close> = SL.start(file)
  local s = SL.wait_slot(st, 1, "pass", 20)
  eq(s.job_name, "synth_flash_prog_cfg")
  eq(#s.regions, #set.files)
  eq(st:stop(), 0)
  sim:stop()
  local flash = sim:flash()
  eq(flash == synth.expected_flash(set, #flash), true, "flash.bin holds the release set (chip erase from the ini)")
  local db <close> = SL.db(dir .. "/line.db")
  local regs = db:query("SELECT name, address, size, outcome FROM regions ORDER BY address")
  eq(#regs, #set.files)
  for i, f in ipairs(set.files) do
    eq({ regs[i].name, regs[i].address, regs[i].size, regs[i].outcome }, { f.name, f.address, #f.data, "written" })
  end
  local sess = db:query("SELECT job_command FROM sessions")[1]
  match(sess.job_command, "^flash %-%-config .*synth_flash_prog_cfg%.ini$")
end)

test("a job with an eFuse burn: flashed, burnt as the file says, audited, recorded", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(16 * 1024, 31)
  helpers.writefile(dir .. "/fw.bin", fw)
  local ef = string.rep("\0", 0x100) .. "STATION\3" .. string.rep("\0", 512 - 0x108)   -- customer area only
  helpers.writefile(dir .. "/ef.bin", ef)
  local sim = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x31) }
  local file = SL.write_station(dir, { station = "efuse", http = "127.0.0.1:0", probe = PROBE, ports = { sim.url },
    job = { regions = { { 0x10000, "fw.bin" } }, efuse = "ef.bin", confirm_efuse_burn = true,
      insecure_write = true, audit = "audit.jsonl" } })
  local st <close> = SL.start(file)
  SL.wait_slot(st, 1, "pass", 30)
  eq(st:stop(), 0)
  sim:stop()
  eq(sim:flash():sub(0x10001, 0x10000 + #fw), fw, "flashed")
  eq(sim:efuse():sub(0x101, 0x108), "STATION\3", "the eFuse holds the file's bytes")
  local audit = helpers.read_lines(dir .. "/audit.jsonl")
  eq(#audit, 1, "one audit record")
  local rec = helpers.json_decode(audit[1])
  eq(rec.result, "ok")
  eq(rec.after, require("ncpflash.core.codec").hex(sim:efuse()), "the audit's after-state is the chip's")
end)

test("a profile job (st67w611m1/mission_t02 from a 1.3 release): the newest firmware, flashed byte-exact", function()
  local SR = require "strelease"
  local dir = helpers.tmpdir()
  local R = SR.build(dir .. "/rel", { layout = "1.3" })
  local sim = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x32) }
  local file = SL.write_station(dir, { station = "profile", http = "127.0.0.1:0", probe = PROBE, ports = { sim.url },
    job = { profile = "st67w611m1/mission_t02", release = R.nb } })
  local st <close> = SL.start(file)
  local s = SL.wait_slot(st, 1, "pass", 30)
  match(s.job_name, "mission_t02")
  eq(st:stop(), 0)
  sim:stop()
  local flash = sim:flash()
  local fw = R.images.mission_t02["2.0.106"]
  ok(fw, "the synthetic release has v2.0.106")
  eq(flash:sub(0x10001, 0x10000 + #fw), fw, "the newest FW (v2.0.106) at 0x10000")
  eq(flash:sub(1, #R.boot2), R.boot2, "boot2 at 0")
end)

test("a job with provisioning: each unit gets its own CSV row in flash, the row is marked used", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(16 * 1024, 33)
  helpers.writefile(dir .. "/fw.bin", fw)
  helpers.writefile(dir .. "/units.csv", "serial,mac,calib\nSN001,02:00:00:00:00:01,c1c1\n")
  -- the example hook, with this test's CSV (it reads UNITS_CSV; the station's environment is ours)
  local hook = helpers.readfile(helpers.root .. "/docs/examples/provision-mac.lua")
    :gsub('os%.getenv%("UNITS_CSV"%) or "units%.csv"', ("%q"):format(dir .. "/units.csv"))
  helpers.writefile(dir .. "/prov.lua", hook)
  local sim = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x33) }
  local file = SL.write_station(dir, { station = "prov", http = "127.0.0.1:0", probe = PROBE, ports = { sim.url },
    job = { regions = { { 0x10000, "fw.bin" } }, provision = "prov.lua" } })
  local st <close> = SL.start(file)
  SL.wait_slot(st, 1, "pass", 30)
  eq(st:stop(), 0)
  sim:stop()
  local flash = sim:flash()
  eq(flash:sub(0x10001, 0x10000 + #fw), fw, "flashed")
  eq(flash:sub(0x3FF001, 0x3FF004), "MFD1", "the unit's record at 0x3FF000")
  eq(flash:sub(0x3FF005, 0x3FF009), "SN001")
  match(helpers.readfile(dir .. "/units.csv"), "SN001,02:00:00:00:00:01,c1c1,used %x+")
end)
