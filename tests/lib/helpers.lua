-- helpers: processes, temporary files, ncpsim and fixtures for the tests.
local sys = require "ncpflash.core.sys"

local M = {}
M.root = sys.realpath(".")
-- the build directory: NCPFLASH_BUILD (set by `make test B=dir`), else ./build
M.build = sys.realpath(sys.getenv("NCPFLASH_BUILD") or (M.root .. "/build")) or (M.root .. "/build")
M.ncpflash = M.build .. "/ncpflash"
-- make test-win: NCPFLASH_EXE is the binary under test (build-win/ncpflash.exe) and
-- NCPFLASH_LAUNCHER what starts it ("wine"); this runner, ncpsim and the peers stay native.
M.exe = sys.getenv("NCPFLASH_EXE")
if M.exe and M.exe ~= "" then M.ncpflash = sys.realpath(M.exe) or M.exe end
--- true inside ncpflash.exe itself (the in-process part of make test-win)
M.in_windows = sys.platform == "windows"
M.launcher = not M.in_windows and sys.getenv("NCPFLASH_LAUNCHER") or ""
--- true when the ncpflash under test is the Windows build (driven through wine)
M.windows = M.ncpflash:match("%.exe$") ~= nil
--- how many times a test started the ncpflash under test (the runner reads it)
M.ncpflash_runs = 0

--- The argv that starts the ncpflash under test with args (a list): {ncpflash, args...},
--- or {launcher..., ncpflash.exe, args...} under make test-win.
function M.ncpflash_argv(args)
  local argv = {}
  for w in M.launcher:gmatch("%S+") do argv[#argv + 1] = w end
  argv[#argv + 1] = M.ncpflash
  for _, a in ipairs(args or {}) do argv[#argv + 1] = tostring(a) end
  M.ncpflash_runs = M.ncpflash_runs + 1
  return argv
end

--- Skip the running test when the ncpflash under test is the Windows build (make test-win)
--- and the test needs what wine cannot give; `why` says what.
function M.skip_on_windows(why)
  if M.windows or M.in_windows then M.skip("Windows build: " .. why) end
end
M.fixtures = sys.realpath(M.root .. "/../shared/fixtures/st67w611m1/ST67W6X_Scripts")
M.ncp_binaries = M.fixtures and (M.fixtures .. "/Binaries/NCP_Binaries")

local live = {}   -- things to clean up after each test

function M.have_fixtures()
  return M.fixtures ~= nil and sys.stat(M.ncp_binaries) ~= nil
end

--- The lines of a text file ({} when it does not exist).
function M.read_lines(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local out = {}
  for l in f:lines() do out[#out + 1] = l end
  f:close()
  return out
end

function M.readfile(path)
  local f = assert(io.open(path, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

function M.writefile(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
  return path
end

local tmp_seq = 0
--- A fresh temporary directory, removed after the test.
function M.tmpdir()
  tmp_seq = tmp_seq + 1
  local base = sys.getenv("TMPDIR") or "/tmp"
  local dir = ("%s/ncpflash-test-%d-%d-%d"):format(base, sys.pid(), tmp_seq, math.random(1, 1e9))
  assert(sys.mkdirs(dir))
  live[#live + 1] = function() M.rmtree(dir) end
  return dir
end

--- A shell command line that creates the file `path`, for the shell of the ncpflash under test
--- (/bin/sh; cmd.exe for the Windows build).
function M.touch_command(path)
  if M.windows then return ('type nul > "%s"'):format((path:gsub("/", "\\"))) end
  return "touch '" .. path .. "'"
end

--- Remove a directory tree: rm -rf (it does not follow symlinks); inside ncpflash.exe, where
--- there is no rm, by hand (the tests make no links there).
function M.rmtree(path)
  if not M.in_windows then os.execute("rm -rf '" .. path .. "'"); return end
  local st = sys.stat(path)
  if st and st.type == "dir" then
    for _, n in ipairs(sys.listdir(path) or {}) do M.rmtree(path .. "/" .. n) end
  end
  os.remove(path)
end

-- The state directory (journals, pending eFuse records) of the runs of one test: never the
-- user's ~/.local/state, and not shared between tests.
local test_state
local function state_home()
  if not test_state then test_state = M.tmpdir() .. "/state-home" end
  return test_state
end

--- Run build/ncpflash with argv (a list); returns {code=, out=, err=}.
--- opts.stdin: text fed on stdin; opts.timeout (s, default 120); opts.env:
--- {NAME = value} added to the environment (XDG_STATE_HOME defaults to a directory of the test).
function M.run(argv, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local cmd = {}
  local env = {}
  for k, v in pairs(opts.env or {}) do env[k] = v end
  -- the state directory of the test (not inside ncpflash.exe, where there is no env program)
  if env.XDG_STATE_HOME == nil and not M.in_windows then env.XDG_STATE_HOME = state_home() end
  if next(env) then
    cmd[1] = "env"
    for k, v in pairs(env) do cmd[#cmd + 1] = k .. "=" .. v end
  end
  for _, a in ipairs(M.ncpflash_argv(argv)) do cmd[#cmd + 1] = a end
  local stdin = "null"
  if opts.stdin then stdin = M.writefile(dir .. "/stdin", opts.stdin) end
  local pid = assert(sys.spawn(cmd, { stdout = dir .. "/out", stderr = dir .. "/err", stdin = stdin }))
  local code = sys.wait(pid, opts.timeout or 120)
  if not code then
    sys.kill(pid, "KILL")
    sys.wait(pid)
    error("ncpflash " .. table.concat(argv, " ") .. ": still running after the timeout", 2)
  end
  return { code = code, out = M.readfile(dir .. "/out"), err = M.readfile(dir .. "/err") }
end

--- Decode one JSON value (--json event lines): ncpflash.json's reader.
M.json_decode = require("ncpflash.json").decode

function M.json_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = M.json_decode(line) end
  return out
end

-- A child process with a <close> handle that stops it (TERM, then KILL).
local Proc = {}
Proc.__index = Proc
Proc.__close = function(self) self:stop() end
function Proc:stop()
  if self.status ~= nil then return self.status end
  sys.kill(self.pid, "TERM")
  self.status = sys.wait(self.pid, 5)
  if not self.status then sys.kill(self.pid, "KILL"); self.status = sys.wait(self.pid, 5) end
  return self.status
end

--- Start argv with stdout/stderr in a temporary dir: handle {dir, out, err, pid, stop()}
--- (also <close>).
function M.spawn(argv)
  local dir = M.tmpdir()
  local self = setmetatable({ dir = dir, out = dir .. "/out", err = dir .. "/err" }, Proc)
  self.pid = assert(sys.spawn(argv, { stdout = self.out, stderr = self.err, stdin = "null" }))
  return self
end

-- The first line `pid` writes to `path` (its URL), polled for up to `seconds`; nil and the exit
-- status if it exits first, nil if the time runs out.
local function first_line(path, pid, seconds)
  local deadline = sys.now() + seconds
  while sys.now() < deadline do
    local f = io.open(path, "r")
    local line = f and f:read("l")
    if f then f:close() end
    if line and line ~= "" then return line end
    local st = sys.wait(pid, 0)
    if st then return nil, st end
    sys.sleep(0.01)
  end
end

--- A socat pty pair: the M.spawn handle (also <close>) with .a and .b, the two links in its
--- dir, once both exist or 5 s passed; nil when socat is not installed.
function M.pty_pair()
  if M.in_windows then M.skip("inside ncpflash.exe: no socat pty pair under wine") end
  local found, _, code = os.execute("command -v socat >/dev/null 2>&1")
  if not (found == true and (code or 0) == 0) then return nil end
  local dir = M.tmpdir()
  local a, b = dir .. "/a", dir .. "/b"
  local s = M.spawn{ "socat", "-d", "-d", "pty,raw,echo=0,link=" .. a, "pty,raw,echo=0,link=" .. b }
  s.a, s.b = a, b
  local deadline = sys.now() + 5
  while not (sys.stat(a) and sys.stat(b)) and sys.now() < deadline do sys.sleep(0.02) end
  return s
end

--- build/tests/ncppeer (raw TCP / RFC 2217 test peer).
M.ncppeer = M.build .. "/tests/ncppeer"

--- Start ncppeer with extra args (list), logging to a temporary file; waits for the URL it
--- prints. Returns the M.spawn handle with .url and .log (path).
function M.peer(args)
  if M.in_windows then M.skip("inside ncpflash.exe: ncppeer is a Linux program wine cannot start from it") end
  local log = M.tmpdir() .. "/peer.log"
  local argv = { M.ncppeer, "--log", log, "--timeout", "20" }
  table.move(args, 1, #args, #argv + 1, argv)
  local p = M.spawn(argv)
  p.log = log
  local url, exited = first_line(p.out, p.pid, 5)
  if url then p.url = url; return p end
  if exited then error("ncppeer exited: " .. M.readfile(p.err)) end
  p:stop()
  error("ncppeer printed no URL")
end

local Sim = {}
Sim.__index = Sim
Sim.__close = function(self) self:stop() end


--- Start build/ncpsim with extra args (list).  Unless the args name a
--- frontend, it serves RFC 2217 on a free loopback port; unless they name
--- --state, a temporary state dir is used.  Returns a handle:
---   url, state, pid, log (path of --log), chip_id, stop(), flash(), efuse(), lines()
function M.ncpsim(args, opts)
  if M.in_windows then M.skip("inside ncpflash.exe: ncpsim is a Linux program wine cannot start from it") end
  args = args or {}
  opts = opts or {}
  local dir = M.tmpdir()
  local argv = { M.build .. "/ncpsim" }
  local has_front, has_state, has_log = false, false, false
  for _, a in ipairs(args) do
    if a == "--listen" or a == "--raw" or a == "--pty" then has_front = true end
    if a == "--state" then has_state = true end
    if a == "--log" then has_log = true end
  end
  local self = setmetatable({ state = dir .. "/state", dir = dir }, Sim)
  if not has_front then table.move({ "--listen", "127.0.0.1:0" }, 1, 2, #argv + 1, argv) end
  if not has_state then table.move({ "--state", self.state }, 1, 2, #argv + 1, argv) end
  if not has_log then
    self.log = dir .. "/ncpsim.log"
    table.move({ "--log", self.log }, 1, 2, #argv + 1, argv)
  end
  for i, a in ipairs(args) do
    argv[#argv + 1] = a
    if args[i - 1] == "--state" then self.state = a end
    if args[i - 1] == "--log" then self.log = a end
  end
  self.stdout = dir .. "/stdout"
  self.stderr = dir .. "/stderr"
  self.stdin = opts.stdin
  self.pid = assert(sys.spawn(argv, { stdout = self.stdout, stderr = self.stderr,
    stdin = opts.stdin or "null" }))
  live[#live + 1] = function() self:stop() end
  local url, st = first_line(self.stdout, self.pid, 10)
  if st then
    error(("ncpsim exited (%s) before serving: %s"):format(st, M.readfile(self.stderr)), 2)
  end
  self.url = url
  if not self.url then self:stop(); error("ncpsim printed no URL within 10 s", 2) end
  -- the unit's identity: a fresh state dir is a new chip (device.json is written at start)
  local dj = io.open(self.state .. "/device.json", "r")
  if dj then
    self.chip_id = dj:read("a"):match('"chip_id": "(%x+)"')
    dj:close()
  end
  return self
end

--- ncpsim's default boot info (hex, for --boot-info) with chip id byte 0 = k: one distinct
--- chip per k.
function M.boot_info(k)
  return ("02001606010001" .. "00a7128201%02xd2037b82401c008f758090e8805be3"):format(k)
end

function Sim:stop()
  if self.stopped then return self.status end
  self.stopped = true
  sys.kill(self.pid, "TERM")
  self.status = sys.wait(self.pid, 10)
  if not self.status then sys.kill(self.pid, "KILL"); self.status = sys.wait(self.pid, 5) end
  return self.status
end

--- The simulated flash as saved in the state dir (stop or wait for a save first).
function Sim:flash() return M.readfile(self.state .. "/flash.bin") end
function Sim:efuse() return M.readfile(self.state .. "/efuse.bin") end
--- The command log lines.
function Sim:log_lines() return M.read_lines(self.log) end

--- Raise unless ncpsim's flash `got` equals `want`, naming the first 4 KiB sector that differs.
function M.same_flash(got, want)
  if #got ~= #want then error(("flash size: expected %d, found %d"):format(#want, #got), 2) end
  if got == want then return end
  for a = 0, #want - 1, 4096 do
    if got:sub(a + 1, a + 4096) ~= want:sub(a + 1, a + 4096) then
      error(("flash differs in the sector at 0x%X"):format(a), 2)
    end
  end
end

--- Deterministic pseudo-random bytes (xorshift), for synthetic images.
function M.random_bytes(n, seed)
  local x = seed or 0x12345678
  local parts = {}
  for i = 1, n // 4 + 1 do
    x = x ~ (x << 13) & 0xFFFFFFFF
    x = x ~ (x >> 17)
    x = x ~ (x << 5) & 0xFFFFFFFF
    parts[i] = string.pack("<I4", x)
  end
  return table.concat(parts):sub(1, n)
end

--- Compressible pseudo-firmware: text-like repeated structures.
function M.compressible_bytes(n, seed)
  local words = { "wifi", "ble", "lwip", "task", "init", "done", "\0\0\0\0", "\xff\xff" }
  local x = seed or 7
  local parts, len = {}, 0
  while len < n do
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    local w = words[x % #words + 1] .. string.pack("<I2", x % 4096)
    parts[#parts + 1] = w
    len = len + #w
  end
  return table.concat(parts):sub(1, n)
end

--- Called by the runner after every test.
function M.cleanup()
  for i = #live, 1, -1 do
    pcall(live[i])
    live[i] = nil
  end
  test_state = nil
end

return M
