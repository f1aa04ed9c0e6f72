-- tests/soak.lua - fault soak: `build/ncpflash run tests/soak.lua` (make soak)
--
-- SOAK_N (default 200) flashes of three regions (compressible, random, small)
-- against ncpsim, each with one or two random faults drawn from a seeded
-- generator (SOAK_SEED, default 1; run i uses seed SOAK_SEED + i): byte drops
-- and bit flips either way, stalls, FL codes on erase/write/check/SHA, power
-- loss (process exit or a dead device) after a random byte count, ROM
-- inactivity drops.  Every run must end in one of the allowed outcomes:
--
--   identical   exit 0 and ncpsim's flash.bin holds every file at its address
--   failed      exit != 0 and the error names the failed region (JSON field
--               `region`, or the file/address in the message)
--   no-contact  exit 3/4 before any flash command reached the device
--               (nothing was changed, and the error says so)
--
-- anything else is a violation (above all: exit 0 with different flash
-- content).  Prints the count per outcome and the seeds of violations;
-- exits 1 when there was any.  `SOAK_N=1 SOAK_SEED=17` replays one seed.
local sys = require "ncpflash.core.sys"

local ROOT = dofile("tests/lib/init.lua")   -- test libraries (tests/lib/NAME.lua)
local N = math.tointeger(tonumber(sys.getenv("SOAK_N") or "200")) or 200
local SEED0 = math.tointeger(tonumber(sys.getenv("SOAK_SEED") or "1")) or 1
local VERBOSE = sys.getenv("SOAK_VERBOSE")
package.path = ROOT .. "/tests/lib/?.lua"
local helpers = require "helpers"

local dir = helpers.tmpdir()

local regions = {
  { addr = 0x10000, name = "app.bin", data = helpers.compressible_bytes(150 * 1024, 3) },
  { addr = 0x80000, name = "rand.bin", data = helpers.random_bytes(40 * 1024 + 123, 5) },
  { addr = 0x3F0000, name = "small.bin", data = "config " .. ("\0\1\2"):rep(300) },
}
local argv_files = {}
for _, r in ipairs(regions) do
  r.path = helpers.writefile(dir .. "/" .. r.name, r.data)
  argv_files[#argv_files + 1] = ("0x%X"):format(r.addr)
  argv_files[#argv_files + 1] = r.path
end
local total = 0
for _, r in ipairs(regions) do total = total + #r.data end

-- flash commands the ROM logs (anything that changes flash)
local FLASH_CMDS = { "^0x30", "^0x31", "^0x3C", "^0x3F" }

local function pick(rng, list) return list[rng(#list)] end

local function fault_for(rng)
  local kind = rng(9)
  local dirn = pick(rng, { "rx", "tx", "both" })
  if kind == 1 then return { "drop:" .. pick(rng, { "0.0002", "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 2 then return { "flip:" .. pick(rng, { "0.0002", "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 3 then
    return { ("stall:%s:%s:%d"):format(pick(rng, { "30", "3F", "3D", "3A", "31" }),
      pick(rng, { "0.5", "3", "6" }), rng(0, 4)) }
  end
  if kind == 4 then
    local cmd = pick(rng, { "30", "3F", "3A", "3D", "31", "3C" })
    return { ("fl:%s:%s:%d"):format(cmd, pick(rng, { "0003", "0006", "000C", "0103", "FFFF" }), rng(1, 6)) }
  end
  if kind == 5 then return { ("powerloss:%d:exit"):format(rng(1, total)) } end
  if kind == 6 then return { ("powerloss:%d:dead"):format(rng(1, total)) } end
  if kind == 7 then return { ("romtimeout:%d"):format(rng(3, 60)) } end
  if kind == 8 then -- two faults at once
    return { "drop:0.0005:" .. dirn, ("fl:3F:000C:%d"):format(rng(1, 8)) }
  end
  return { "flip:0.0005:" .. dirn, ("stall:3D:1:%d"):format(rng(1, 3)) }
end

local function json_error(out)
  local last
  for line in out:gmatch("[^\n]+") do
    if line:find('"event":"error"', 1, true) then
      local ok, ev = pcall(helpers.json_decode, line)
      if ok then last = ev end
    end
  end
  return last
end

local function names_region(ev, err)
  if ev and ev.region ~= nil then return true end
  local text = (ev and ev.message or "") .. "\n" .. err
  for _, r in ipairs(regions) do
    if text:find(r.name, 1, true) or text:lower():find(("0x%x"):format(r.addr), 1, true) then return true end
  end
  return false
end

local counts, violations, order = {}, {}, {}
local function count(k)
  if not counts[k] then counts[k] = 0; order[#order + 1] = k end
  counts[k] = counts[k] + 1
end

local t0 = sys.now()
for i = 1, N do
  local seed = SEED0 + i - 1
  local g = math.random
  math.randomseed(seed)
  local function rng(a, b) if b then return g(a, b) end return g(a) end
  local faults = fault_for(rng)
  local args = { "--seed", tostring(seed) }
  for _, f in ipairs(faults) do args[#args + 1] = "--fault"; args[#args + 1] = f end
  -- start from old content, so that a region that was never written cannot match by chance
  local sdir = dir .. "/state" .. i
  assert(sys.mkdirs(sdir))
  helpers.writefile(sdir .. "/flash.bin", helpers.random_bytes(4 * 1024 * 1024, seed))
  table.move({ "--state", sdir }, 1, 2, #args + 1, args)
  local sim = helpers.ncpsim(args)
  local res = helpers.run({ "--json", "--port", sim.url, "flash", table.unpack(argv_files) }, { timeout = 300 })
  sim:stop()
  local flash = helpers.readfile(sdir .. "/flash.bin")
  local identical = true
  for _, r in ipairs(regions) do
    if flash:sub(r.addr + 1, r.addr + #r.data) ~= r.data then identical = false end
  end
  local touched = false
  for _, l in ipairs(sim:log_lines()) do
    for _, p in ipairs(FLASH_CMDS) do if l:match(p) then touched = true end end
  end
  local ev = json_error(res.out)
  local outcome
  if res.code == 0 then
    outcome = identical and "identical" or "VIOLATION: exit 0, flash differs"
  elseif res.code == 130 then
    outcome = "VIOLATION: interrupted"
  elseif names_region(ev, res.err) then
    outcome = "failed (region named)"
  elseif not touched and (res.code == 3 or res.code == 4) then
    outcome = "no-contact (nothing written)"
  else
    outcome = "VIOLATION: failed without naming a region"
  end
  count(outcome)
  local line = ("seed %d  %-40s exit %d  %s%s"):format(seed, table.concat(faults, " "), res.code, outcome,
    ev and ("  [" .. tostring(ev.code) .. "] " .. tostring(ev.message)) or "")
  if outcome:match("^VIOLATION") then
    violations[#violations + 1] = line
    io.stdout:write(line, "\n", res.err:sub(-600), "\n")
  elseif VERBOSE then
    io.stdout:write(line, "\n")
  elseif i % 20 == 0 then
    io.stdout:write(("soak: %d/%d runs (%.0f s)\n"):format(i, N, sys.now() - t0))
  end
  io.stdout:flush()
  os.execute("rm -rf '" .. sdir .. "'")
  helpers.cleanup()
  dir = helpers.tmpdir()
  for _, r in ipairs(regions) do r.path = helpers.writefile(dir .. "/" .. r.name, r.data) end
  for k, r in ipairs(regions) do argv_files[2 * k] = r.path end
end

io.stdout:write(("\nsoak: %d runs, seeds %d..%d, %.0f s\n"):format(N, SEED0, SEED0 + N - 1, sys.now() - t0))
for _, k in ipairs(order) do io.stdout:write(("  %5d  %s\n"):format(counts[k], k)) end
if #violations > 0 then
  io.stdout:write("violations:\n")
  for _, v in ipairs(violations) do io.stdout:write("  ", v, "\n") end
  helpers.cleanup()
  os.exit(1, true)
end
helpers.cleanup()
