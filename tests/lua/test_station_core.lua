-- The station's C bindings (ncpflash.core.db: SQLite; ncpflash.core.http: libmicrohttpd) and its
-- report arithmetic on a database built by hand.
local sys = require "ncpflash.core.sys"
local db = require "ncpflash.core.db"
local http = require "ncpflash.core.http"
local SL = require "stationlib"

test("db: types, parameters, one statement per call, errors, idempotent close", function()
  local dir = helpers.tmpdir()
  local c = db.open(dir .. "/t.db")
  c:exec("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n INTEGER)")
  local changes, id = c:run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", 42, 1.5, "text", "a\0b", nil)
  eq({ changes, id }, { 1, 1 })
  c:run("INSERT INTO t (i, s) VALUES (?, ?)", true, "x'); DROP TABLE t; --")
  local rows = c:query("SELECT * FROM t ORDER BY rowid")
  eq(#rows, 2)
  eq({ rows[1].i, rows[1].r, rows[1].s, rows[1].b, rows[1].n }, { 42, 1.5, "text", "a\0b", nil })
  eq(math.type(rows[1].i), "integer")
  eq({ rows[2].i, rows[2].s }, { 1, "x'); DROP TABLE t; --" }, "parameters are bound, never spliced")
  local e = raises(function() c:query("SELECT * FROM nope") end, "internal")
  match(e.message, "no such table: nope")
  ok(not pcall(c.query, c, "SELECT 1; SELECT 2"), "one statement per query")
  ok(not pcall(c.run, c, "SELECT ?", 1, 2), "too many parameters")
  ok(not pcall(c.run, c, "SELECT ?", {}), "a table is no parameter")
  c:close()
  c:close()
  ok(not pcall(c.query, c, "SELECT 1"), "a closed connection refuses")
  helpers.writefile(dir .. "/junk.db", ("not a database "):rep(100))
  e = raises(function() db.open(dir .. "/junk.db") end, "input")
  match(e.message, "junk%.db")
  raises(function() db.open(dir .. "/missing/x.db") end, "input")
  raises(function() db.open(dir .. "/none.db", { readonly = true }) end, "input")
  -- a writer holding the lock: the second writer waits its timeout, then "timeout"
  local a = db.open(dir .. "/lock.db")
  a:exec("PRAGMA journal_mode = WAL; CREATE TABLE x (v)")
  local b = db.open(dir .. "/lock.db", { timeout = 0.2 })
  a:exec("BEGIN IMMEDIATE")
  local t0 = sys.now()
  raises(function() b:exec("BEGIN IMMEDIATE") end, "timeout")
  ok(sys.now() - t0 >= 0.15, "waited for the lock")
  eq(#b:query("SELECT * FROM x"), 0, "a reader is not blocked by the writer (WAL)")
  a:exec("COMMIT")
  a:close()
  b:close()
end)

test("http: GET/POST, headers and query, body limit, handler errors logged, SSE, close", function()
  local seen = {}
  local srv = http.listen({ host = "127.0.0.1", port = 0, max_body = 1000, handler = function(req)
    seen[#seen + 1] = req
    if req.path == "/boom" then error("kaput") end
    if req.path == "/ev" then return { stream = true, body = ": hello\n\n" } end
    return { status = req.method == "POST" and 201 or 200, type = "text/plain", body = req.method .. " " .. req.path
      .. " q=" .. tostring(req.query.q) .. " h=" .. tostring(req.headers["x-test"]) .. " b=" .. req.body,
      headers = { ["X-Reply"] = "yes" } }
  end })
  local port = srv:port()
  ok(port > 0)
  local base = "http://127.0.0.1:" .. port
  local dir = helpers.tmpdir()
  -- curl runs in the background while this thread serves
  local script = ("curl -s -H 'X-Test: 7' '%s/a?q=1'; echo; curl -s -d hello '%s/p'; echo; "
    .. "curl -s -o /dev/null -w '%%{http_code}' '%s/boom'; echo; "
    .. "curl -s -o /dev/null -w '%%{http_code}' --data-binary @%s/big '%s/p'; echo; "
    .. "curl -sN --max-time 2 '%s/ev'"):format(base, base, base, dir, base, base)
  helpers.writefile(dir .. "/big", ("x"):rep(5000))
  local pid = sys.spawn({ "sh", "-c", script }, { stdout = dir .. "/out", stderr = dir .. "/err", stdin = "null" })
  local deadline = sys.now() + 8
  local sent = 0
  while sys.now() < deadline and not sys.wait(pid, 0) do
    srv:poll(0.05)
    if srv:streams() > 0 and sent < 3 then
      sent = sent + 1
      eq(srv:send("data: tick " .. sent .. "\n\n"), 1)
    end
  end
  local out = helpers.readfile(dir .. "/out")
  match(out, "^GET /a q=1 h=7 b=\n")
  match(out, "\nPOST /p q=nil h=nil b=hello\n")
  match(out, "\n500\n")
  match(out, "\n413\n", "a body above max_body is refused")
  match(out, ": hello\n\ndata: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\n$")
  local log = table.concat(srv:log(), "\n")
  match(log, "handler error on GET /boom: .*kaput")
  eq(seen[1].remote, "127.0.0.1")
  srv:close()
  srv:close()
  ok(not pcall(srv.poll, srv, 0), "a closed server refuses")
  local e = raises(function() http.listen({ host = "localhost", port = 0, handler = print }) end, "usage")
  match(e.message, "not a numeric IPv4 or IPv6 address")
  local busy = http.listen({ host = "127.0.0.1", port = 0, handler = print })
  e = raises(function() http.listen({ host = "127.0.0.1", port = busy:port(), handler = print }) end, "port")
  match(e.message, "cannot listen on 127%.0%.0%.1:" .. busy:port())
  busy:close()
end)

test("report: yield, first-pass yield, units per hour, repeats, errors from a hand-made database", function()
  local records = require "ncpflash.station.records"
  local report = require "ncpflash.station.report"
  local dir = helpers.tmpdir()
  local rec = records.open(dir .. "/r.db")
  local sid = rec:begin_session({ station = "s", station_file = "f", station_file_sha256 = "a", image_set_sha256 = "b",
    job_name = "j", job_command = "c", version = "v", started_at = "2026-01-01T10:00:00.000Z" })
  local function add(chip, result, t0, t1, code)
    local id = rec:begin_attempt({ session_id = sid, slot = 1, port = "p", chip_id = chip, image_set_sha256 = "b",
      job_name = "j", station = "s", started_at = t0 })
    rec:finish_attempt(id, { result = result, ended_at = t1, seconds = 10, exit_code = result == "pass" and 0 or 4,
      error_code = code, error_message = code and ("msg " .. code) })
  end
  add("A", "pass", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:10.000Z")
  add("B", "fail", "2026-01-01T10:10:00.000Z", "2026-01-01T10:10:10.000Z", "device")
  add("B", "pass", "2026-01-01T10:20:00.000Z", "2026-01-01T10:20:10.000Z")   -- a repeat that passes
  add("C", "fail", "2026-01-01T10:30:00.000Z", "2026-01-01T10:30:10.000Z", "verify")
  add("C", "fail", "2026-01-01T10:59:50.000Z", "2026-01-01T11:00:00.000Z", "verify")
  add(nil, "fail", "2026-01-01T10:40:00.000Z", "2026-01-01T10:40:01.000Z", "handshake")
  local f = report.figures(rec)
  eq({ f.attempts, f.units, f.passed, f.failed, f.repeats, f.no_unit }, { 6, 3, 2, 1, 2, 1 })
  ok(math.abs(f.yield - 2 / 3) < 1e-12)
  ok(math.abs(f.first_pass_yield - 1 / 3) < 1e-12, "only A passed at its first attempt")
  ok(math.abs(f.span_seconds - 3600) < 0.01, tostring(f.span_seconds))
  ok(math.abs(f.units_per_hour - 2) < 1e-6, "2 passed units in one hour: " .. tostring(f.units_per_hour))
  eq({ f.errors[1].code, f.errors[1].n, f.errors[2].code, f.errors[2].n }, { "verify", 2, "device", 1 })
  local lines = table.concat(report.text(f, "r.db"), "\n")
  match(lines, "yield        66%.7 %% %(first%-pass yield 33%.3 %%%)")
  match(lines, "units/hour   2%.0 %(2 passed units in 60 min 00 s")
  -- JUnit through ncpflash.junit: one testcase per attempt, a failure for each attempt that did not pass
  local x = report.junit(f)
  local fails = 0
  for _, r in ipairs(f.rows) do if r.result ~= "pass" then fails = fails + 1 end end
  eq(select(2, x:gsub("<testcase ", "")), 6)
  eq(select(2, x:gsub("<failure ", "")), fails)
  match(x, 'type="verify"')
  rec:close()
  eq(SL.free_port() >= 20000, true)
end)
