-- tools/demo.lua - `make demo`: start the virtual module (build/ncpsim),
-- flash a synthetic ST67W611M1 release set with progress, show `info`,
-- stop the module.  Run as: build/ncpflash run tools/demo.lua
local sys = require "ncpflash.core.sys"

local root = dofile("tests/lib/init.lua")   -- test libraries (tests/lib/NAME.lua)
local synth = require "synth"

local dir = root .. "/build/demo"
sys.mkdirs(dir .. "/state")
local set = synth.release(dir, { fw_size = 900 * 1024 })
print(("demo: synthetic release set in %s (%s)"):format(dir, set.ini))

local pid = assert(sys.spawn({ root .. "/build/ncpsim", "--listen", "127.0.0.1:0",
  "--state", dir .. "/state", "--log", dir .. "/ncpsim.log" },
  { stdout = dir .. "/ncpsim.out", stderr = dir .. "/ncpsim.err" }))
local url
local deadline = sys.now() + 10
repeat
  sys.sleep(0.02)
  local f = io.open(dir .. "/ncpsim.out")
  url = f and f:read("l")
  if f then f:close() end
until (url and url ~= "") or sys.now() > deadline
if not url or url == "" then
  sys.kill(pid)
  error("ncpsim did not start; see " .. dir .. "/ncpsim.err")
end
print("demo: virtual ST67W611M1 listening at " .. url)

local function ncpflash(...)
  local argv = { root .. "/build/ncpflash", "--port", url, ... }
  print("\n$ ncpflash --port " .. url .. " " .. table.concat({ ... }, " "))
  local p = assert(sys.spawn(argv))
  return sys.wait(p)
end

local ok, err = pcall(function()
  local rc = ncpflash("flash", "--config", set.ini)
  if rc ~= 0 then error("flash failed with exit code " .. rc) end
  rc = ncpflash("info")
  if rc ~= 0 then error("info failed with exit code " .. rc) end
end)
sys.kill(pid)
sys.wait(pid, 5)
if not ok then
  io.stderr:write("demo: ", tostring(err), "\n")
  os.exit(1, true)
end
print("\ndemo: done; the virtual flash is in " .. dir .. "/state/flash.bin")
