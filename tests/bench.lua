-- tests/bench.lua - `make bench`: flashing time against the link limit (docs/api/bench.md).
--
-- Runs ncpsim --realtime (2 Mbaud after the switch; adapter latency 1 ms and 16 ms) and times
--   a  ST's mission t02 set with a chip erase (the ini's erase = 2, --chip-erase: the vendor's way)
--   b  the same with --erase 1
--   c  the unchanged set again with --erase 1 --skip-unchanged
--   d  a 1 MiB incompressible image (--erase 1)
--   e  (a) with two write frames in flight: informational, no target (see docs/api/bench.md)
--   s  the seed job (issue 17): ncpsim holding ST's t01 set, flash the t02 set (its erase = 2)
--   z  the t02 set (erase = 2) on a blank module
-- For s and z also the vendor's modelled time: the bound of the vendor's recorded command
-- sequence for the job (../shared/conformance/vendor/st_t02) plus its fixed waits.
-- Per phase it prints the time ncpflash reports, the model's lower bound (tests/lib/benchmodel.lua:
-- wire bytes at the baud in effect + the device time ncpsim logs) and their ratio; per case also
-- the child's CPU seconds and peak RSS. Writes BUILD/bench/results.json. Exit 1 when a target is
-- missed. Args: `--latency MS` (repeatable) to run only some latencies, `--cases abcdesz`.
local sys = require "ncpflash.core.sys"

dofile("tests/lib/init.lua")   -- test libraries (tests/lib/NAME.lua)
local helpers = require "helpers"
local synth = require "synth"
local model = require "benchmodel"
local handshake = require "ncpflash.handshake"

local args = { ... }
local latencies, only = {}, "abcdesz"
do
  local i = 1
  while i <= #args do
    if args[i] == "--latency" then latencies[#latencies + 1] = tonumber(args[i + 1]); i = i + 2
    elseif args[i] == "--cases" then only = args[i + 1]; i = i + 2
    else error("bench.lua: unknown argument " .. args[i]) end
  end
  if #latencies == 0 then latencies = { 1, 16 } end
end

local TARGET = { ratio = 1.15, skip_vs_a = 0.10, reset_to_cmd = 0.5, cpu_a = 1.5, rss_kib = 32 * 1024,
  vs_vendor = { s = 0.5, z = 0.35 } }

local writefile = helpers.writefile

-- Firmware-like bytes that XZ (dict 32 KiB) compresses to ~58 % like ST's t02 FW: 1 KiB blocks,
-- 53 % of them random, the rest token text.
local function synthetic_fw(n, seed)
  local txt = helpers.compressible_bytes(n, seed)
  local parts, len, x = {}, 0, seed
  while len < n do
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    local m = math.min(1024, n - len)
    if (x >> 8) % 1000 < 530 then parts[#parts + 1] = helpers.random_bytes(m, x | 1)
    else parts[#parts + 1] = txt:sub(len + 1, len + m) end
    len = len + m
  end
  return table.concat(parts)
end

-- The t02 release set: ST's files when ../shared/fixtures is there, else synthetic files of the
-- same sizes and compressibility (boot2 52,544 B, partition table, FW 1,267,264 B, LittleFS
-- 446,464 B mostly zeros, like ST's).
local FLASH_SIZE = 4 * 1024 * 1024

-- A flash image: 0xFF with each {address, bytes} of `parts` in place.
local function image(parts)
  table.sort(parts, function(x, y) return x[1] < y[1] end)
  local out, at = {}, 0
  for _, p in ipairs(parts) do
    out[#out + 1] = string.rep("\255", p[1] - at)
    out[#out + 1] = p[2]
    at = p[1] + #p[2]
  end
  out[#out + 1] = string.rep("\255", FLASH_SIZE - at)
  return table.concat(out)
end

-- The regions of an ini as {address, bytes} (ncpflash's own ini reader).
local function ini_parts(ini)
  local progcfg, flash = require "ncpflash.progcfg", require "ncpflash.flash"
  local board, chip = require "ncpflash.boards.st67w611m1", require "ncpflash.chips.bl616"
  local cfg = progcfg.load(ini, flash.ini_options(board, chip))
  local parts = {}
  for _, r in ipairs(cfg.regions) do parts[#parts + 1] = { r.address, helpers.readfile(r.file) } end
  return parts
end

local function release_set(dir)
  if helpers.have_fixtures() then
    local ini = helpers.ncp_binaries .. "/mission_t02_flash_prog_cfg_v2.0.89.ini"
    local t01 = helpers.ncp_binaries .. "/mission_t01_flash_prog_cfg_v2.0.89.ini"
    if sys.stat(ini) and sys.stat(t01) then
      return { ini = ini, source = "ST fixtures (" .. ini:match("[^/]+$") .. ")",
        seed = function() return image(ini_parts(t01)) end }
    end
  end
  local files = {
    { "boot2", 0x0, "boot2.bin", synthetic_fw(52544, 3) },
    { "partition", 0xE000, "partition.bin", synth.partition_table() },
    -- ST's littlefs.bin is zero-filled (413,574 of its bytes are 0x00), not erased
    { "littlefs", 0x378000, "littlefs.bin", ("littlefs"):rep(512) .. string.rep("\0", 446464 - 4096) },
    { "FW", 0x10000, "fw.bin", synthetic_fw(1267264, 11) },
  }
  local ini = { "[cfg]", "erase = 2", "skip_mode = 0x0, 0x0", "boot2_isp_mode = 0", "" }
  for _, f in ipairs(files) do
    writefile(dir .. "/" .. f[3], f[4])
    ini[#ini + 1] = ("[%s]\nfiledir = ./%s\naddress = 0x%06X\n"):format(f[1], f[3], f[2])
  end
  -- the seed: the same set with another FW of the t01 size (1,400,224 B) in place of the t02 one
  local seed = {}
  for _, f in ipairs(files) do
    seed[#seed + 1] = { f[2], f[1] == "FW" and synthetic_fw(1400224, 13) or f[4] }
  end
  return { ini = writefile(dir .. "/t02_flash_prog_cfg.ini", table.concat(ini, "\n")),
           source = "synthetic (fixtures absent)", seed = function() return image(seed) end }
end

local read_lines = helpers.read_lines

-- Run ncpflash (argv after --port URL --json), return wall time, rusage, exit code, result event.
local function run_case(sim, dir, argv, env)
  local cmd = { helpers.ncpflash, "--port", sim.url, "--json" }
  if env then table.insert(cmd, 1, "env"); table.insert(cmd, 2, env) end
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local out, err = dir .. "/out.json", dir .. "/err.txt"
  local t0 = sys.now()
  local pid = assert(sys.spawn(cmd, { stdout = out, stderr = err, stdin = "null" }))
  -- Peak RSS: the child's VmHWM, sampled while it runs. (getrusage's ru_maxrss of a child started
  -- with posix_spawn includes this bench process's own peak: Linux keeps the high-water mark of
  -- the address space the child exec'ed from, which vfork shares with the parent.)
  local code, ru
  local hwm = 0
  local status = "/proc/" .. pid .. "/status"
  repeat
    local f = io.open(status, "r")
    if f then
      local kib = tonumber((f:read("a") or ""):match("VmHWM:%s*(%d+)"))
      f:close()
      if kib and kib > hwm then hwm = kib end
    end
    code, ru = sys.wait(pid, 0.02)
  until code or sys.now() - t0 > 600
  local wall = sys.now() - t0
  if not code then sys.kill(pid, "KILL"); sys.wait(pid); error("ncpflash did not finish within 600 s") end
  ru.hwm_kib = hwm
  local result
  for _, e in ipairs(helpers.json_lines(helpers.readfile(out))) do
    if e.event == "result" then result = e end
  end
  if code ~= 0 or not result then
    error(("ncpflash %s exited %d: %s"):format(table.concat(argv, " "), code, helpers.readfile(err)))
  end
  return { wall = wall, ru = ru, result = result }
end

local CASES = {
  { id = "a", name = "t02 set, chip erase",
    argv = function(set) return { "flash", "--config", set.ini, "--erase", "2", "--chip-erase" } end },
  { id = "b", name = "t02 set, --erase 1",
    argv = function(set) return { "flash", "--config", set.ini, "--erase", "1" } end },
  { id = "c", name = "t02 unchanged, --skip-unchanged",
    argv = function(set) return { "flash", "--config", set.ini, "--erase", "1", "--skip-unchanged" } end },
  { id = "d", name = "1 MiB incompressible",
    argv = function(set) return { "flash", "0x10000", set.random } end },
  -- informational, no target: (a) with 2 write frames in flight. ncpsim queues what arrives while
  -- it is busy; whether the BL616 ROM does (or acks early) is unconfirmed, so this is not the
  -- default, and the stop-and-wait bound does not apply to it.
  { id = "e", name = "(a), 2 frames in flight [info]", env = true,
    argv = function(set)
      return { "--chip", "bl616_window2", "flash", "--config", set.ini, "--erase", "2", "--chip-erase" }
    end },
  -- issue 17: each on a module of its own (a state dir prepared before ncpsim starts)
  { id = "s", name = "seed: t01 on chip, t02 (erase = 2)", state = "seed",
    argv = function(set) return { "flash", "--config", set.ini } end },
  { id = "z", name = "blank module, t02 (erase = 2)", state = "blank",
    argv = function(set) return { "flash", "--config", set.ini } end },
}

-- The vendor's recording of the t02 job (its command sequence, its wire trace), if present.
local VENDOR = helpers.root .. "/../shared/conformance/vendor/st_t02"
local vendor_rec = sys.stat(VENDOR .. "/ncpsim.log") and sys.stat(VENDOR .. "/wire.trace") and {
  log = (function() local t = {} for l in io.lines(VENDOR .. "/ncpsim.log") do t[#t + 1] = l end return t end)(),
  trace = (function() local t = {} for l in io.lines(VENDOR .. "/wire.trace") do t[#t + 1] = l end return t end)(),
} or nil

local function r3(x) return x and math.floor(x * 1000 + 0.5) / 1000 end

local dir = helpers.tmpdir()
local set = release_set(dir)
set.random = writefile(dir .. "/random_1MiB.bin", helpers.random_bytes(1024 * 1024, 0x5EED))
-- a user chip file for case e: the BL616 with write_window = 2
assert(sys.mkdirs(dir .. "/config/ncpflash/chips"))
writefile(dir .. "/config/ncpflash/chips/bl616_window2.lua", [[
local c = {}
for k, v in pairs(require("ncpflash.chips.bl616")) do c[k] = v end
c.write_window = 2
return c
]])
local sync_bytes = handshake.sync_count(require("ncpflash.chips.bl616"), 500000)

print(("ncpflash bench: ncpsim --realtime, 2 Mbaud load speed, images: %s"):format(set.source))
print(("bound = wire bytes (10 bits each at the baud in effect) + ncpsim's modelled device time"
  .. " (adapter latency + flash work); ratio = time / bound"))
local results, failures, checks = {}, {}, {}
local function fail(msg) failures[#failures + 1] = msg end
-- every target check, printed at the end: what, the value, the limit, met?
local function check(what, value, limit, fmt)
  local met = value <= limit
  checks[#checks + 1] = ("  %-4s %-44s %s (limit %s)"):format(met and "ok" or "MISS", what, fmt:format(value),
    fmt:format(limit))
  return met
end

for _, lat in ipairs(latencies) do
  local main_sim <close> = helpers.ncpsim({ "--realtime", "--latency-ms", tostring(lat) })
  local per = {}
  local vendor = vendor_rec and model.vendor(vendor_rec.log, vendor_rec.trace,
    { latency = lat / 1000, sync_bytes = sync_bytes })
  print(("\n-- adapter latency %g ms --"):format(lat))
  print(("%-36s %-8s %9s %9s %7s"):format("case", "phase", "time_s", "bound_s", "ratio"))
  for _, c in ipairs(CASES) do
    if only:find(c.id, 1, true) then
      if c.id == "c" and not per.b and not per.a then                 -- (c) needs the set on the chip
        run_case(main_sim, dir, CASES[2].argv(set))
      end
      local sim, own = main_sim, nil
      if c.state then                                     -- a module of its own
        local sdir = helpers.tmpdir()
        if c.state == "seed" then writefile(sdir .. "/flash.bin", set.seed()) end
        own = helpers.ncpsim({ "--realtime", "--latency-ms", tostring(lat), "--state", sdir })
        sim = own
      end
      local before = #read_lines(sim.log)
      local run = run_case(sim, dir, c.argv(set), c.env and ("XDG_CONFIG_HOME=" .. dir .. "/config") or nil)
      sys.sleep(0.05)                                        -- let ncpsim flush its log
      local events = model.parse_log(read_lines(sim.log), before)
      local b = model.bound(events, { sync_bytes = sync_bytes, latency = lat / 1000 })
      local secs = run.result.seconds or {}
      local rec = { case = c.id, name = c.name, latency_ms = lat, phases = {}, total_s = r3(run.wall),
        bound_s = r3(b.total.bound), ratio = r3(run.wall / b.total.bound),
        cpu_s = r3(run.ru.utime + run.ru.stime), rss_kib = run.ru.hwm_kib, rss_kib_rusage = run.ru.maxrss_kib,
        bytes_written = run.result.bytes_written, bytes_sent = run.result.bytes_sent,
        wire_bytes = b.total.rx + b.total.tx, reset_to_first_command_s = r3(model.reset_to_first_command(events)) }
      local label = ("%s  %s"):format(c.id, c.name)
      for _, p in ipairs(model.phases) do
        local t = secs[p] or 0
        local ph = { time_s = r3(t), bound_s = r3(b[p].bound), wire_s = r3(b[p].wire), device_s = r3(b[p].device),
          ratio = b[p].bound > 0 and r3(t / b[p].bound) or nil, commands = b[p].commands }
        rec.phases[p] = ph
        print(("%-36s %-8s %9.3f %9.3f %7s"):format(label, p, t, b[p].bound,
          ph.ratio and ("%.2f"):format(ph.ratio) or "-"))
        label = ""
      end
      print(("%-36s %-8s %9.3f %9.3f %7.2f   cpu %.2f s, rss %.1f MiB, reset->first command %s"):format("", "total",
        run.wall, b.total.bound, run.wall / b.total.bound, rec.cpu_s, rec.rss_kib / 1024,
        rec.reset_to_first_command_s and ("%.3f s"):format(rec.reset_to_first_command_s) or "-"))
      if c.state then
        if vendor then
          rec.vendor_s, rec.vendor_waits_s = r3(vendor.total), r3(vendor.waits)
          rec.vs_vendor, rec.bound_vs_vendor = r3(run.wall / vendor.total), r3(b.total.bound / vendor.total)
          print(("%-36s %-8s %9.3f %9s %7.2f   vendor modelled: bound %.3f s of its %d commands + its waits %.3f s;"
            .. " this run's bound / vendor = %.2f"):format("", "vendor", vendor.total, "", rec.vs_vendor, vendor.bound,
            vendor.commands, vendor.waits, rec.bound_vs_vendor))
          local at = ("(%s) at %g ms: "):format(c.id, lat)
          if not check(at .. "total / vendor's modelled time", rec.vs_vendor, TARGET.vs_vendor[c.id], "%.3f") then
            fail(("(%s) at %g ms: %.3f x the vendor's modelled time > %.2f"):format(c.id, lat, rec.vs_vendor,
              TARGET.vs_vendor[c.id]))
          end
        else
          print("    (no vendor comparison: " .. VENDOR .. " is absent)")
        end
        own:stop()
      end
      per[c.id] = rec
      results[#results + 1] = rec
      -- targets
      local at = ("(%s) at %g ms: "):format(c.id, lat)
      if lat == 1 and (c.id == "a" or c.id == "b" or c.id == "d")
        and not check(at .. "total / bound", rec.ratio, TARGET.ratio, "%.3f") then
        fail(("(%s) at 1 ms: total %.2f x the bound > %.2f"):format(c.id, rec.ratio, TARGET.ratio))
      end
      if not check(at .. "peak RSS, MiB", rec.rss_kib / 1024, TARGET.rss_kib / 1024, "%.1f") then
        fail(("(%s) peak RSS %d KiB > 32 MiB"):format(c.id, rec.rss_kib))
      end
      if rec.reset_to_first_command_s
        and not check(at .. "reset to first command, s", rec.reset_to_first_command_s, TARGET.reset_to_cmd, "%.3f") then
        fail(("(%s) reset to first command %.3f s > 0.5 s"):format(c.id, rec.reset_to_first_command_s))
      end
      if c.id == "a" and lat == 1 and not check(at .. "host CPU, s", rec.cpu_s, TARGET.cpu_a, "%.2f") then
        fail(("(a) host CPU %.2f s > 1.5 s"):format(rec.cpu_s))
      end
    end
  end
  if per.a and per.c then
    local q = per.c.total_s / per.a.total_s
    per.c.vs_a = r3(q)
    print(("(c) / (a) = %.3f (target <= %.2f)"):format(q, TARGET.skip_vs_a))
    if not check(("(c) at %g ms: time / time of (a)"):format(lat), q, TARGET.skip_vs_a, "%.3f") then
      fail(("(c) at %g ms: %.3f x (a) > 0.10"):format(lat, q))
    end
  end
end

-- results.json
local function json(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local o = {}
      for i, x in ipairs(v) do o[i] = json(x) end
      return "[" .. table.concat(o, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local o = {}
    for _, k in ipairs(keys) do o[#o + 1] = ("%q:%s"):format(k, json(v[k])) end
    return "{" .. table.concat(o, ",") .. "}"
  elseif t == "string" then return (("%q"):format(v):gsub("\\\n", "\\n"))
  elseif t == "number" then return math.type(v) == "integer" and tostring(v) or ("%.6g"):format(v)
  elseif t == "boolean" then return tostring(v) end
  return "null"
end
local outdir = helpers.build .. "/bench"
assert(sys.mkdirs(outdir))
writefile(outdir .. "/results.json", json(results) .. "\n")
print(("\nwrote %s\ntargets (issue 8):"):format(outdir .. "/results.json"))
for _, c in ipairs(checks) do print(c) end
if #failures > 0 then
  print("targets missed:")
  for _, f in ipairs(failures) do print("  " .. f) end
  helpers.cleanup()
  os.exit(1)
end
print("all targets met")
helpers.cleanup()
