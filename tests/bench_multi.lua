-- bench_multi: one command flashing N realtime ncpsims vs. one board.
--
--   build/ncpflash run tests/bench_multi.lua [N] [--erase 0|1|2] [--fw-size BYTES]
--
-- Flashes a synthetic ST67W611M1 release set (boot2, partition table, FW, LittleFS) once on a
-- single realtime ncpsim (paced at the wire's baud, with adapter latency and flash timings), then
-- on N (default 8) realtime ncpsims with one `ncpflash --port ... --port ... flash` command, and
-- prints the total time of the N-board run as a ratio to the one-board time (target <= 1.5 for
-- 8 boards on a 2-core machine).  Every board's flash is compared with the expected image.
dofile("tests/lib/init.lua")   -- test libraries (tests/lib/NAME.lua)
local sys = require "ncpflash.core.sys"
local helpers = require "helpers"
local synth = require "synth"

local n, erase, fw_size = 8, nil, nil
local args = { ... }
local i = 1
while i <= #args do
  local a = args[i]
  if a == "--erase" then erase = tonumber(args[i + 1]); i = i + 1
  elseif a == "--fw-size" then fw_size = tonumber(args[i + 1]); i = i + 1
  else n = tonumber(a) or n end
  i = i + 1
end

local dir = helpers.tmpdir()
local set = synth.release(dir, { erase = erase, fw_size = fw_size })
local total = 0
for _, f in ipairs(set.files) do total = total + #f.data end

local boot_info = helpers.boot_info

local function sims(count)
  local list = {}
  for k = 1, count do
    list[k] = helpers.ncpsim{ "--realtime", "--boot-info", boot_info(k) }
  end
  return list
end

local function run(list)
  local argv = {}
  for _, s in ipairs(list) do argv[#argv + 1] = "--port"; argv[#argv + 1] = s.url end
  argv[#argv + 1] = "flash"
  argv[#argv + 1] = "--config"
  argv[#argv + 1] = set.ini
  local t0 = sys.now()
  local r = helpers.run(argv, { timeout = 600 })
  local dt = sys.now() - t0
  if r.code ~= 0 then error(("flash failed (exit %d): %s%s"):format(r.code, r.out, r.err)) end
  for k, s in ipairs(list) do
    s:stop()
    local img = s:flash()
    for _, f in ipairs(set.files) do
      if img:sub(f.address + 1, f.address + #f.data) ~= f.data then
        error(("board %d: %s differs after flashing"):format(k, f.name))
      end
    end
  end
  return dt
end

print(("bench_multi: %d bytes in %d regions per board (erase policy %s), realtime ncpsims, %s"):format(total,
  #set.files, erase or "from the ini (2: erased as needed, issue 17)", "2 Mbaud"))
local t1 = run(sims(1))
print(("  1 board : %6.2f s"):format(t1))
local tn = run(sims(n))
print(("  %d boards: %6.2f s"):format(n, tn))
local ratio = tn / t1
print(("  ratio %d boards / 1 board = %.2f (target <= 1.5)%s"):format(n, ratio,
  ratio <= 1.5 and "" or "  ABOVE TARGET"))
helpers.cleanup()
