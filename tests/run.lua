-- tests/run.lua - the test runner: `build/ncpflash run tests/run.lua [FILTER...]`
--
-- Runs every tests/lua/test_*.lua (each test in isolation) and every C test
-- binary build/tests/test_*, then prints one line "N passed, N failed,
-- N skipped" and exits non-zero when anything failed.  FILTER arguments
-- select test files whose name contains one of them.
--
-- NCPFLASH_TEST_JOBS=N (default 3; 1 = everything in this process): the Lua test files run as
-- child runners (`ncpflash run tests/run.lua FILE`), N at a time, since most of a test waits on
-- ncpsim and timers rather than the CPU. A file whose first lines hold the comment
-- "-- test-runner: alone" (timing measurements) runs after the others with nothing beside it.
-- Each file's lines are printed when it ends; the counts are the children's summed.
--
-- make test-win (tools/test-win.sh) runs this same runner natively with NCPFLASH_EXE =
-- build-win/ncpflash.exe and NCPFLASH_LAUNCHER = wine (tests/lib/helpers.lua): every test that
-- starts ncpflash starts the .exe.  A test that passed without starting it checked only this
-- native process; it is run again inside the .exe (`ncpflash.exe run tests/run.lua` with
-- NCPFLASH_TEST_ONLY naming it) and counted by that result.  The C tests are the
-- NCPFLASH_C_TESTS folder's test_*.exe, run through the launcher.
local sys = require "ncpflash.core.sys"

-- test libraries are plain Lua files next to this runner
local ROOT = dofile("tests/lib/init.lua")
package.path = ROOT .. "/tests/lib/?.lua"

local filters = { ... }
local function selected(name)
  if #filters == 0 then return true end
  for _, f in ipairs(filters) do
    if name:find(f, 1, true) then return true end
  end
  return false
end

local counts = { passed = 0, failed = 0, skipped = 0 }
local failures = {}
local t_all = sys.now()

local function report(status, name, detail)
  counts[status] = counts[status] + 1
  local tag = status == "passed" and "ok  " or status == "failed" and "FAIL" or "skip"
  io.stdout:write(("%s %s%s\n"):format(tag, name, detail and ("  (" .. detail .. ")") or ""))
  io.stdout:flush()
  if status == "failed" then failures[#failures + 1] = name .. ": " .. (detail or "") end
end

local SKIP = {}
local helpers = require "helpers"
helpers.skip = function(reason) error(setmetatable({ reason = reason }, SKIP), 0) end

-- NCPFLASH_TEST_ONLY: a file listing "file: test name" lines; only those run (see above)
local only
if sys.getenv("NCPFLASH_TEST_ONLY") then
  only = {}
  for l in io.lines(sys.getenv("NCPFLASH_TEST_ONLY")) do only[l] = true end
end
local deferred = {}   -- [file path] = { names } of tests to run again inside the .exe

-- Inside ncpflash.exe (wine) the Linux programs the tests start (ncpsim, ncppeer, socat, the
-- POSIX shell's commands) cannot run: a test that tries skips, saying so.
if helpers.in_windows then
  local spawn, execute = sys.spawn, os.execute
  sys.spawn = function(argv, o)
    local prog = type(argv) == "table" and tostring(argv[1]) or "cmd.exe"  -- a string: cmd.exe /c
    if not prog:lower():match("%.exe$") then
      helpers.skip("inside ncpflash.exe: " .. prog .. " is a Linux program wine cannot start from it")
    end
    return spawn(argv, o)
  end
  os.execute = function(cmd) -- luacheck: ignore 122
    if cmd == nil then return execute() end
    helpers.skip("inside ncpflash.exe: needs a POSIX shell (" .. tostring(cmd):sub(1, 40) .. ")")
  end
end

local function run_file(path)
  local short = path:match("tests/lua/(.*)%.lua$")
  local tests = {}
  local file_skip
  local env = setmetatable({}, { __index = _G })
  local t = require "testlib"
  for k, v in pairs(t) do env[k] = v end
  env.helpers = helpers
  env.test = function(name, fn)
    if not only or only[short .. ": " .. name] then tests[#tests + 1] = { name = name, fn = fn } end
  end
  env.skip_if = function(cond, reason)
    if cond and not file_skip then file_skip = reason end
  end
  env.skip = helpers.skip
  local chunk, err = loadfile(path, "t", env)
  if not chunk then report("failed", short, err); return end
  local ok, lerr = pcall(chunk)
  if not ok then report("failed", short .. " (loading)", tostring(lerr)); return end
  for _, tc in ipairs(tests) do
    local name = short .. ": " .. tc.name
    if file_skip then
      report("skipped", name, file_skip)
    else
      local t0, runs = sys.now(), helpers.ncpflash_runs
      local tok, terr = xpcall(tc.fn, function(e)
        if getmetatable(e) == SKIP then return e end
        if type(e) == "table" and e.code then
          return ("%s [%s]\n%s"):format(tostring(e.message), e.code, debug.traceback("", 2))
        end
        return debug.traceback(tostring(e), 2)
      end)
      local dt = sys.now() - t0
      if tok and helpers.windows and not helpers.in_windows and helpers.ncpflash_runs == runs then
        deferred[path] = deferred[path] or {}
        table.insert(deferred[path], name)
      elseif tok then
        report("passed", name, dt > 2 and ("%.1fs"):format(dt) or nil)
      elseif getmetatable(terr) == SKIP then
        report("skipped", name, terr.reason)
      else
        report("failed", name, terr)
      end
    end
    env.helpers.cleanup()
  end
end

-- the output of one run of argv (stdout and stderr together) and its exit status
local function capture(argv, timeout, env)
  local out = os.tmpname()
  if env then table.insert(argv, 1, "env"); table.insert(argv, 2, env) end
  local pid = sys.spawn(argv, { stdout = out, stderr = out, stdin = "null" })
  local status = sys.wait(pid, timeout)
  if not status then sys.kill(pid, "KILL"); sys.wait(pid); status = "timeout" end
  local f = io.open(out, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
  return text, status
end

local function run_c(bin)
  local short = bin:match("/tests/([^/]*)$")
  local argv = {}
  if helpers.windows then for w in helpers.launcher:gmatch("%S+") do argv[#argv + 1] = w end end
  argv[#argv + 1] = bin
  local text, status = capture(argv, 300)
  text = text:gsub("\r\n", "\n")
  local any, failed_before = false, counts.failed
  for line in text:gmatch("[^\n]+") do
    local name = line:match("^ok (.*)$")
    if name then report("passed", short .. ": " .. name); any = true end
    local fname, why = line:match("^not ok ([^:]*):?%s*(.*)$")
    if fname then report("failed", short .. ": " .. fname, why); any = true end
    local sname, swhy = line:match("^skip ([^:]*):?%s*(.*)$")
    if sname then report("skipped", short .. ": " .. sname, swhy); any = true end
  end
  if status ~= 0 and (not any or counts.failed == failed_before) then
    report("failed", short, ("exit status %s\n%s"):format(tostring(status), text:sub(-2000)))
  elseif not any then
    report("failed", short, "printed no test results")
  end
end

local files = {}
for _, n in ipairs(sys.listdir(ROOT .. "/tests/lua") or {}) do
  if n:match("^test_.*%.lua$") and selected(n) then files[#files + 1] = ROOT .. "/tests/lua/" .. n end
end
-- The deferred tests of one file, run inside ncpflash.exe; each counts by that result.
local function run_inside(path, names)
  local list = os.tmpname()
  local f = assert(io.open(list, "wb"))
  f:write(table.concat(names, "\n"), "\n")
  f:close()
  local argv = helpers.ncpflash_argv{ "run", "tests/run.lua", path:match("([^/]*)$") }
  local text = capture(argv, 600, "NCPFLASH_TEST_ONLY=" .. list)
  os.remove(list)
  local seen = {}
  for line in text:gsub("\r\n", "\n"):gmatch("[^\n]+") do
    local tag, rest = line:match("^(%a+) +(.*)$")
    if tag == "ok" or tag == "FAIL" or tag == "skip" then
      local name = rest:match("^(.-)  %(") or rest
      local detail = rest:match("  %((.-)%)?$")
      seen[name] = true
      report(tag == "ok" and "passed" or tag == "FAIL" and "failed" or "skipped", name .. " [in the .exe]",
        detail)
    end
  end
  for _, n in ipairs(names) do
    if not seen[n] then report("failed", n .. " [in the .exe]", "no result:\n" .. text:sub(-1500)) end
  end
end

-- true when the file asks to run with no other test file beside it
local function alone(path)
  local f = io.open(path, "rb")
  local head = f and f:read(2000) or ""
  if f then f:close() end
  return head:find("%-%- test%-runner: alone") ~= nil
end

-- Run the files as child runners, `jobs` at a time (the "alone" ones afterwards, one by one).
local function run_parallel(list, jobs)
  local queue, solo = {}, {}
  for _, f in ipairs(list) do table.insert(alone(f) and solo or queue, f) end
  local running = {}
  local function start(path)
    local out = os.tmpname()
    local argv = { "env", "NCPFLASH_TEST_JOBS=1", "NCPFLASH_TEST_CHILD=1", helpers.build .. "/ncpflash", "run",
      "tests/run.lua", path:match("([^/]*)$") }
    local pid = sys.spawn(argv, { stdout = out, stderr = out, stdin = "null" })
    running[#running + 1] = { pid = pid, out = out, path = path, t0 = sys.now() }
  end
  local function collect(r, status)
    local fh = io.open(r.out, "rb")
    local text = fh and fh:read("a") or ""
    if fh then fh:close() end
    os.remove(r.out)
    local short = r.path:match("tests/lua/(.*)%.lua$")
    local n = {}
    for line in text:gmatch("[^\n]+") do
      local tag, rest = line:match("^(%a+) +(.*)$")
      if tag == "ok" or tag == "FAIL" or tag == "skip" then
        local name = rest:match("^(.-)  %(") or rest
        local detail = rest:match("  %((.-)%)?$")
        report(tag == "ok" and "passed" or tag == "FAIL" and "failed" or "skipped", name, detail)
      end
      local p, fl, sk = line:match("^(%d+) passed, (%d+) failed, (%d+) skipped$")
      if p then n = { tonumber(p), tonumber(fl), tonumber(sk) } end
    end
    if n[2] and n[2] > 0 then   -- the child's own failures list, with the whole tracebacks
      io.stdout:write((text:match("\n(failures:\n.-)\n\n%(") or ""), "\n")
    end
    if not n[1] or (status ~= 0 and n[2] == 0) then
      report("failed", short .. " (runner)", ("exit status %s\n%s"):format(tostring(status), text:sub(-2000)))
    end
  end
  local function reap(block)
    while true do
      for i, r in ipairs(running) do
        local status = sys.wait(r.pid, 0.02)
        if status then
          table.remove(running, i)
          collect(r, status)
          return
        elseif sys.now() - r.t0 > 1800 then
          sys.kill(r.pid, "KILL"); sys.wait(r.pid)
          table.remove(running, i)
          collect(r, "timeout (30 min)")
          return
        end
      end
      if not block or #running == 0 then return end
    end
  end
  for _, f in ipairs(queue) do
    while #running >= jobs do reap(true) end
    start(f)
  end
  while #running > 0 do reap(true) end
  for _, f in ipairs(solo) do start(f); reap(true) end
end

local jobs = tonumber(sys.getenv("NCPFLASH_TEST_JOBS") or "") or 3
if jobs > 1 and #files > 1 and not only and not helpers.in_windows then
  run_parallel(files, jobs)
else
  for _, f in ipairs(files) do run_file(f) end
  for _, f in ipairs(files) do
    if deferred[f] then run_inside(f, deferred[f]) end
  end
end
local CDIR = sys.getenv("NCPFLASH_C_TESTS") or (helpers.build .. "/tests")
for _, n in ipairs(only and {} or sys.listdir(CDIR) or {}) do
  if (n:match("^test_[%w_]+$") or n:match("^test_[%w_]+%.exe$")) and selected(n) then run_c(CDIR .. "/" .. n) end
end

if #failures > 0 then
  io.stdout:write("\nfailures:\n")
  for _, f in ipairs(failures) do io.stdout:write("  ", (f:gsub("\n", "\n    ")), "\n") end
end
io.stdout:write(("\n(%.1f s)\n"):format(sys.now() - t_all))
io.stdout:write(("%d passed, %d failed, %d skipped\n"):format(counts.passed, counts.failed, counts.skipped))
io.stdout:flush()
if counts.failed > 0 then os.exit(1, true) end
