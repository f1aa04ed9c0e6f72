-- tests/run.lua - the test runner: `build/ncpflash run tests/run.lua [FILTER...]`
--
-- Runs every tests/lua/test_*.lua (each test in isolation) and every C test
-- binary build/tests/test_*, then prints one line "N passed, N failed,
-- N skipped" and exits non-zero when anything failed.  FILTER arguments
-- select test files whose name contains one of them.
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

local function run_file(path)
  local short = path:match("tests/lua/(.*)%.lua$")
  local tests = {}
  local file_skip
  local env = setmetatable({}, { __index = _G })
  local t = require "testlib"
  for k, v in pairs(t) do env[k] = v end
  env.helpers = require "helpers"
  env.test = function(name, fn) tests[#tests + 1] = { name = name, fn = fn } end
  env.skip_if = function(cond, reason)
    if cond and not file_skip then file_skip = reason end
  end
  env.skip = function(reason) error(setmetatable({ reason = reason }, SKIP), 0) end
  local chunk, err = loadfile(path, "t", env)
  if not chunk then report("failed", short, err); return end
  local ok, lerr = pcall(chunk)
  if not ok then report("failed", short .. " (loading)", tostring(lerr)); return end
  for _, tc in ipairs(tests) do
    local name = short .. ": " .. tc.name
    if file_skip then
      report("skipped", name, file_skip)
    else
      local t0 = sys.now()
      local tok, terr = xpcall(tc.fn, function(e)
        if getmetatable(e) == SKIP then return e end
        if type(e) == "table" and e.code then
          return ("%s [%s]\n%s"):format(tostring(e.message), e.code, debug.traceback("", 2))
        end
        return debug.traceback(tostring(e), 2)
      end)
      local dt = sys.now() - t0
      if tok then
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

local function run_c(bin)
  local short = bin:match("/tests/([^/]*)$")
  local out = os.tmpname()
  local pid = sys.spawn({ bin }, { stdout = out, stderr = out, stdin = "null" })
  local status = sys.wait(pid, 300)
  if not status then sys.kill(pid, "KILL"); sys.wait(pid); status = "timeout" end
  local f = io.open(out, "r")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
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
for _, f in ipairs(files) do run_file(f) end
local BUILD = require("helpers").build
for _, n in ipairs(sys.listdir(BUILD .. "/tests") or {}) do
  if n:match("^test_[%w_]+$") and selected(n) then run_c(BUILD .. "/tests/" .. n) end
end

if #failures > 0 then
  io.stdout:write("\nfailures:\n")
  for _, f in ipairs(failures) do io.stdout:write("  ", (f:gsub("\n", "\n    ")), "\n") end
end
io.stdout:write(("\n(%.1f s)\n"):format(sys.now() - t_all))
io.stdout:write(("%d passed, %d failed, %d skipped\n"):format(counts.passed, counts.failed, counts.skipped))
io.stdout:flush()
if counts.failed > 0 then os.exit(1, true) end
