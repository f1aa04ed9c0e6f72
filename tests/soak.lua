-- tests/soak.lua - fault soak: `build/ncpflash run tests/soak.lua` (make soak)
--
-- SOAK_N (default 200) seeded runs against ncpsim (SOAK_SEED, default 1; run i uses seed
-- SOAK_SEED + i - 1), each with one or two random faults: byte drops and bit flips either way,
-- stalls, FL codes on erase/write/check/SHA, power loss (process exit or a dead device) after a
-- random byte count, ROM inactivity drops. Four kinds of run, in turn:
--
--   flash    three regions (compressible, random, small) by ADDR FILE pairs; every other run
--            with --erase 2 (issue 17: erased only where the chip's digests show data), where
--            exit 0 also implies that every byte outside the regions reads 0xFF
--   shared   a sector-sharing plan (--erase 1): two files in one 4 KiB sector, two small
--            records in another, a region at an unaligned address; or an ini with an unaligned
--            skip_mode inside its file, whose skipped bytes must keep their old content
--   resume   flash --erase 2 --resume with a power loss, then the journal edited (claims
--            everything verified, claims the chip erase, lost, garbage) and sometimes bytes
--            changed on the chip, then a second run: nothing the journal claims is taken on trust
--   efuse    efuse burn (plain or secure path) with a fault during the burn (stalls, FL codes,
--            drops, flips, ROM timeouts, the link lost while a write is unanswered); then a
--            connect without faults (the next session reads back a burn whose outcome was unknown)
--
-- Two invariants are checked on every run:
--   (1) exit 0 implies flash.bin holds every region (with skip_mode: the skipped bytes hold what
--       they held before)
--   (2) the eFuse audit matches efuse.bin: the last after-state recorded is efuse.bin, every
--       region the last record calls written has its bits, every region it calls not written has
--       none, nothing is left "outcome unknown"; no record, no change; exit 0 implies every
--       wanted bit is set
-- and every flash run must end identical (exit 0), failed naming the region, or no-contact
-- (exit 3/4 before any flash command reached the device); a fault-free resume must succeed.
-- Anything else is a violation: printed with its seed; the soak exits 1.
-- `SOAK_N=1 SOAK_SEED=17` replays one seed; SOAK_VERBOSE=1 prints every run.
local sys = require "ncpflash.core.sys"

local ROOT = dofile("tests/lib/init.lua")   -- test libraries (tests/lib/NAME.lua)
local N = math.tointeger(tonumber(sys.getenv("SOAK_N") or "200")) or 200
local SEED0 = math.tointeger(tonumber(sys.getenv("SOAK_SEED") or "1")) or 1
local VERBOSE = sys.getenv("SOAK_VERBOSE")
package.path = ROOT .. "/tests/lib/?.lua"
local helpers = require "helpers"
local json = require "ncpflash.json"
local codec = require "ncpflash.core.codec"
local efuse = require "ncpflash.efuse"

local SIZE = 4 * 1024 * 1024
local FLASH_CMDS = { "^0x30", "^0x31", "^0x3C", "^0x3F" }   -- commands that change flash

local function pick(rng, list) return list[rng(#list)] end

local function plus(a, b)
  local t = {}
  for _, v in ipairs(a) do t[#t + 1] = v end
  for _, v in ipairs(b) do t[#t + 1] = v end
  return t
end

local function fault_for(rng, total)
  local kind = rng(9)
  local dirn = pick(rng, { "rx", "tx", "both" })
  if kind == 1 then return { "drop:" .. pick(rng, { "0.0002", "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 2 then return { "flip:" .. pick(rng, { "0.0002", "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 3 then
    return { ("stall:%s:%s:%d"):format(pick(rng, { "30", "3F", "3E", "3A", "31" }),
      pick(rng, { "0.5", "3", "6" }), rng(0, 4)) }
  end
  if kind == 4 then
    local cmd = pick(rng, { "30", "3F", "3A", "3E", "31", "3C" })
    return { ("fl:%s:%s:%d"):format(cmd, pick(rng, { "0003", "0006", "000C", "0103", "FFFF" }), rng(1, 6)) }
  end
  if kind == 5 then return { ("powerloss:%d:exit"):format(rng(1, total)) } end
  if kind == 6 then return { ("powerloss:%d:dead"):format(rng(1, total)) } end
  if kind == 7 then return { ("romtimeout:%d"):format(rng(3, 60)) } end
  if kind == 8 then -- two faults at once
    return { "drop:0.0005:" .. dirn, ("fl:3F:000C:%d"):format(rng(1, 8)) }
  end
  return { "flip:0.0005:" .. dirn, ("stall:3E:1:%d"):format(rng(1, 3)) }
end

-- a fault during an eFuse burn; "KILL": the device goes away while a write is unanswered
local function efuse_fault(rng, secure)
  local w = secure and "80" or "40"
  local kind = rng(7)
  local dirn = pick(rng, { "rx", "tx", "both" })
  if kind == 1 then return { ("stall:%s:%s:%d"):format(w, pick(rng, { "0.5", "3", "7" }), rng(1, 3)) } end
  if kind == 2 then return { ("fl:%s:%s:%d"):format(w, pick(rng, { "0401", "0403", "FFFF" }), rng(1, 3)) } end
  if kind == 3 then return { "drop:" .. pick(rng, { "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 4 then return { "flip:" .. pick(rng, { "0.001", "0.005" }) .. ":" .. dirn } end
  if kind == 5 then return { ("romtimeout:%d"):format(rng(2, 12)) } end
  if kind == 6 then
    return { ("stall:%s:%s:%d"):format(secure and "81" or "41", pick(rng, { "3", "7" }), rng(1, 3)) }
  end
  return { ("stall:%s:30:%d"):format(w, rng(1, 3)), "KILL" }
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

local function names_region(ev, err, regions)
  if ev and ev.region ~= nil then return true end
  local text = (ev and ev.message or "") .. "\n" .. err
  for _, r in ipairs(regions) do
    if text:find(r.name, 1, true) or text:lower():find(("0x%x"):format(r.addr), 1, true) then return true end
  end
  return false
end

local function touched(sim)
  for _, l in ipairs(sim:log_lines()) do
    for _, p in ipairs(FLASH_CMDS) do if l:match(p) then return true end end
  end
  return false
end

local function fault_args(seed, faults)
  local args = { "--seed", tostring(seed) }
  for _, f in ipairs(faults) do
    if f ~= "KILL" then args[#args + 1] = "--fault"; args[#args + 1] = f end
  end
  return args
end

---------------------------------------------------------------------------------------------------
-- the plans

local PLANS = {
  flash = {
    { addr = 0x10000, name = "app.bin", data = helpers.compressible_bytes(150 * 1024, 3) },
    { addr = 0x80000, name = "rand.bin", data = helpers.random_bytes(40 * 1024 + 123, 5) },
    { addr = 0x3F0000, name = "small.bin", data = "config " .. ("\0\1\2"):rep(300) },
  },
  -- two files in one sector (a's tail and b's head share 0x11000..0x11FFF), two records in one
  -- sector, a region at an unaligned address
  shared = {
    { addr = 0x10000, name = "a.bin", data = helpers.random_bytes(6 * 1024, 11) },
    { addr = 0x11801, name = "b.bin", data = helpers.compressible_bytes(30 * 1024, 12) },
    { addr = 0x3FF000, name = "rec1.bin", data = "SERIAL-0001\0" },
    { addr = 0x3FF100, name = "rec2.bin", data = helpers.random_bytes(64, 13) },
    { addr = 0x200801, name = "odd.bin", data = helpers.random_bytes(9000, 14) },
  },
  -- an ini whose file has an unaligned skip_mode inside it
  ini = { { addr = 0x20000, name = "fw.bin", data = helpers.compressible_bytes(48 * 1024, 15) } },
}
local SKIP = { addr = 0x21800, len = 0x400 }

local function write_files(dir, plan)
  local argv = {}
  for _, r in ipairs(plan) do
    r.path = helpers.writefile(dir .. "/" .. r.name, r.data)
    argv[#argv + 1] = ("0x%X"):format(r.addr)
    argv[#argv + 1] = r.path
  end
  return argv
end

local function total_bytes(plan)
  local t = 0
  for _, r in ipairs(plan) do t = t + #r.data end
  return t
end

-- invariant (1): the regions of `plan` on the flash image; with `skip`, the pieces around it and
-- the skipped bytes as they were in `old`
local function identical(img, plan, skip, old)
  for _, r in ipairs(plan) do
    if skip and skip.addr >= r.addr and skip.addr < r.addr + #r.data then
      local a, b = skip.addr - r.addr, skip.addr + skip.len - r.addr
      if img:sub(r.addr + 1, skip.addr) ~= r.data:sub(1, a) then return false end
      if img:sub(skip.addr + skip.len + 1, r.addr + #r.data) ~= r.data:sub(b + 1) then return false end
      if img:sub(skip.addr + 1, skip.addr + skip.len) ~= old:sub(skip.addr + 1, skip.addr + skip.len) then
        return false
      end
    elseif img:sub(r.addr + 1, r.addr + #r.data) ~= r.data then
      return false
    end
  end
  return true
end

-- erase = 2's end state outside the regions: every byte 0xFF
local function rest_erased(img, plan)
  local sorted = {}
  for i, r in ipairs(plan) do sorted[i] = r end
  table.sort(sorted, function(a, b) return a.addr < b.addr end)
  local at = 0
  for _, r in ipairs(sorted) do
    if img:sub(at + 1, r.addr):find("[^\255]") then return false end
    at = r.addr + #r.data
  end
  return not img:sub(at + 1):find("[^\255]")
end

local function flash_outcome(res, sim, plan, ident)
  local ev = json_error(res.out)
  local outcome
  if res.code == 0 then
    outcome = ident and "identical" or "VIOLATION: exit 0, flash differs"
  elseif res.code == 130 then
    outcome = "VIOLATION: interrupted"
  elseif names_region(ev, res.err, plan) then
    outcome = "failed (region named)"
  elseif not touched(sim) and (res.code == 3 or res.code == 4) then
    outcome = "no-contact (nothing written)"
  else
    outcome = "VIOLATION: failed without naming a region"
  end
  return outcome, ev
end

---------------------------------------------------------------------------------------------------
-- run kinds

-- a state dir whose flash starts as random old content (a region never written cannot match)
local function new_state(dir, seed)
  local sdir = dir .. "/state"
  assert(sys.mkdirs(sdir))
  local old = helpers.random_bytes(SIZE, seed)
  helpers.writefile(sdir .. "/flash.bin", old)
  return sdir, old
end

local function run_flash(dir, seed, rng, kind)
  local plan = kind == "shared" and (rng(2) == 1 and PLANS.shared or PLANS.ini) or PLANS.flash
  local faults = fault_for(rng, total_bytes(plan))
  local sdir, old = new_state(dir, seed)
  local sim = helpers.ncpsim(plus(fault_args(seed, faults), { "--state", sdir }))
  local argv, skip, e2
  if plan == PLANS.ini then
    write_files(dir, plan)
    local ini = helpers.writefile(dir .. "/x.ini", table.concat({ "[cfg]", "erase = 1",
      ("skip_mode = 0x%X, 0x%X"):format(SKIP.addr, SKIP.len), "", "[FW]", "filedir = ./fw.bin",
      "address = 0x20000", "" }, "\n"))
    argv = { "--json", "--port", sim.url, "flash", "--config", ini }
    skip = SKIP
  else
    -- the sector-sharing plan with --erase 1 (erase each written range), the other as given or
    -- with --erase 2
    local erase = plan == PLANS.shared and { "--erase", "1" } or {}
    if plan == PLANS.flash and rng(2) == 1 then erase, e2 = { "--erase", "2" }, true end
    argv = plus(plus({ "--json", "--port", sim.url, "flash" }, erase), write_files(dir, plan))
  end
  local res = helpers.run(argv, { timeout = 300 })
  sim:stop()
  local img = helpers.readfile(sdir .. "/flash.bin")
  local ident = identical(img, plan, skip, old) and (not e2 or rest_erased(img, plan))
  local outcome, ev = flash_outcome(res, sim, plan, ident)
  return (plan == PLANS.ini and "shared-ini" or (e2 and "flash-erase2" or kind)) .. ": " .. outcome,
    table.concat(faults, " "), res, ev
end

-- the journal edits between the two runs of a resume
local EDITS = { "none", "all verified", "chip erased", "lost", "garbage", "rework" }

local function run_resume(dir, seed, rng)
  local plan = PLANS.flash
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local sdir = new_state(dir, seed)
  local files = write_files(dir, plan)
  local faults = { pick(rng, { "powerloss:%d:exit", "powerloss:%d:dead" }):format(rng(1, total_bytes(plan))) }
  local sim = helpers.ncpsim(plus(fault_args(seed, faults), { "--state", sdir }))
  local r1 = helpers.run(plus({ "--json", "--port", sim.url, "flash", "--erase", "2", "--resume" }, files),
    { env = env, timeout = 300 })
  sim:stop()
  local o1 = flash_outcome(r1, sim, plan, identical(helpers.readfile(sdir .. "/flash.bin"), plan))
  if o1:match("^VIOLATION") then return "resume run 1: " .. o1, table.concat(faults, " "), r1 end
  -- the journal lies, or is lost; or the chip changes behind its back
  local edit = pick(rng, EDITS)
  local jdir = dir .. "/xdg/ncpflash/journal"
  local jfile
  for _, n in ipairs(sys.listdir(jdir) or {}) do if n:match("%.json$") then jfile = jdir .. "/" .. n end end
  if jfile then
    local ok, j = pcall(json.decode, helpers.readfile(jfile))
    if edit == "all verified" and ok and type(j) == "table" then
      j.verified = j.verified or {}
      for k in pairs(j.started or {}) do j.verified[k] = true end
      helpers.writefile(jfile, json.encode(j))
    elseif edit == "chip erased" and ok and type(j) == "table" then
      j.chip_erased, j.started = true, {}
      helpers.writefile(jfile, json.encode(j))
    elseif edit == "lost" then
      os.remove(jfile)
    elseif edit == "garbage" then
      helpers.writefile(jfile, "{\"v\":1,\"plan\":")
    end
  end
  if edit == "rework" or rng(3) == 1 then
    local r = pick(rng, plan)
    local at = r.addr + rng(0, #r.data - 1)
    local img = helpers.readfile(sdir .. "/flash.bin")
    local junk = helpers.random_bytes(64, seed)
    helpers.writefile(sdir .. "/flash.bin", img:sub(1, at) .. junk .. img:sub(at + #junk + 1))
    edit = edit .. " + bytes changed"
  end
  local sim2 = helpers.ncpsim({ "--state", sdir })
  local r2 = helpers.run(plus({ "--json", "--port", sim2.url, "flash", "--erase", "2", "--resume" }, files),
    { env = env, timeout = 300 })
  sim2:stop()
  local outcome
  if r2.code == 0 then
    outcome = identical(helpers.readfile(sdir .. "/flash.bin"), plan) and "identical after the resume"
      or "VIOLATION: exit 0 after the resume, flash differs"
  else
    outcome = "VIOLATION: the fault-free resume failed (exit " .. r2.code .. ")"
  end
  return "resume (" .. edit .. "): " .. outcome, table.concat(faults, " "), r2, json_error(r2.out)
end

-- the eFuse data of the efuse runs: bits in all three regions, no field that needs
-- --allow-lockout, no secure boot (the guard would want signed images on flash)
local MAP = efuse.load_map("bl616", "st67w611m1")
local WANT
do
  local d = string.rep("\0", 512)
  local function put(off, s) d = d:sub(1, off) .. s .. d:sub(off + #s + 1) end
  put(0x00, string.pack("<I4", 0x0C000000))                 -- JTAG disabled (a lock-out: named, no flag)
  put(0xC0, "\x11\x22\x33\x44")                             -- trim-like bytes in 128..255
  put(0x100, "SOAKTEST\3")                                  -- part number in 256..511
  put(0x120, helpers.random_bytes(16, 99))
  WANT = d
end

local function audit_records(path)
  local out = {}
  local f = io.open(path, "rb")
  if not f then return out end
  for l in f:lines() do
    local ok, r = pcall(helpers.json_decode, l)
    if ok and type(r) == "table" then out[#out + 1] = r end
  end
  f:close()
  return out
end

-- invariant (2): the audit records against efuse.bin (`before`: the eFuse before the burn)
local function check_audit(recs, fuse, before, code)
  local plan = efuse.plan(before, WANT, nil, MAP)
  if #recs == 0 then
    if fuse ~= before then return "VIOLATION: no audit record, but efuse.bin changed" end
    if code == 0 and not plan.empty then return "VIOLATION: exit 0, no audit record, bits not set" end
    return nil
  end
  local last
  for _, r in ipairs(recs) do if r.after then last = r end end
  if not last then return "VIOLATION: no audit record has an after-state" end
  if last.after ~= codec.hex(fuse) then return "VIOLATION: the audit's after-state is not efuse.bin" end
  local final = recs[#recs]
  for _, rs in ipairs(final.regions or {}) do
    local a, b = rs.region:match("^(%d+)%.%.(%d+)$")
    a, b = tonumber(a), tonumber(b)
    local want, got = 0, 0
    for i = a, b do
      local w = plan.to_set:byte(i + 1)
      if w ~= 0 then
        want = want + 1
        if fuse:byte(i + 1) & w == w then got = got + 1 end
      end
    end
    if rs.status:match("^written") and got ~= want then
      return ("VIOLATION: the audit says %s %s, efuse.bin lacks its bits"):format(rs.region, rs.status)
    end
    if rs.status:match("^not written") and got > 0 then
      return ("VIOLATION: the audit says %s %s, efuse.bin has its bits"):format(rs.region, rs.status)
    end
    if rs.status:match("outcome unknown") then
      return "VIOLATION: still 'outcome unknown' after the next connect"
    end
  end
  if code == 0 then
    for i = 1, 512 do
      if fuse:byte(i) & WANT:byte(i) ~= WANT:byte(i) then return "VIOLATION: exit 0, a wanted bit is not set" end
    end
  end
  return nil
end

local TEST_KEY
local function run_efuse(dir, seed, rng)
  local secure = rng(2) == 1
  local faults = efuse_fault(rng, secure)
  local kill = faults[#faults] == "KILL"
  local sdir = new_state(dir, seed)
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local file = helpers.writefile(dir .. "/ef.bin", WANT)
  local audit = dir .. "/audit.jsonl"
  -- the chip's eFuse before the burn (ncpsim saves its state when it stops)
  helpers.ncpsim({ "--state", sdir }):stop()
  local before = helpers.readfile(sdir .. "/efuse.bin")
  local sim = helpers.ncpsim(plus(fault_args(seed, faults), { "--state", sdir }))
  local argv = { "--json", "--port", sim.url, "efuse", "burn", file, "--confirm-efuse-burn", "--yes",
    "--audit", audit }
  if secure then argv[#argv + 1] = "--root-key"; argv[#argv + 1] = TEST_KEY
  else argv[#argv + 1] = "--insecure-write" end
  local res
  if kill then
    -- the device goes away while a write is unanswered (its bits are set: ncpsim saves the state)
    local cmd = { "env", "XDG_STATE_HOME=" .. env.XDG_STATE_HOME, helpers.ncpflash }
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local p = helpers.spawn(cmd)
    local deadline = sys.now() + 20
    local seen = false
    while sys.now() < deadline and not seen do
      for _, l in ipairs(sim:log_lines()) do if l:match("^0x4[01] ") or l:match("^0x9[01] ") then seen = true end end
      sys.sleep(0.05)
    end
    sys.sleep(1.5)
    sim:stop()
    local code = sys.wait(p.pid, 60)
    if not code then sys.kill(p.pid, "KILL"); sys.wait(p.pid, 5) end
    res = { code = code or -1, out = helpers.readfile(p.out), err = helpers.readfile(p.err) }
  else
    res = helpers.run(argv, { env = env, timeout = 300 })
    sim:stop()
  end
  -- the next session on the chip, no fault: reads back a burn whose outcome was unknown
  local sim2 = helpers.ncpsim({ "--state", sdir })
  local r2 = helpers.run({ "--port", sim2.url, "info", "--no-images" }, { env = env, timeout = 120 })
  sim2:stop()
  local fuse = helpers.readfile(sdir .. "/efuse.bin")
  local recs = audit_records(audit)
  local v = check_audit(recs, fuse, before, res.code)
  if r2.code ~= 0 then v = v or ("VIOLATION: the fault-free connect after the burn failed (exit " .. r2.code .. ")") end
  local outcome = v or (res.code == 0 and "burnt, audit = efuse.bin" or
    (#recs > 0 and "failed, audit = efuse.bin" or "failed before any write, efuse.bin unchanged"))
  return "efuse (" .. (secure and "secure" or "plain") .. "): " .. outcome, table.concat(faults, " "), res,
    json_error(res.out)
end

---------------------------------------------------------------------------------------------------

local counts, violations, order = {}, {}, {}
local function count(k)
  if not counts[k] then counts[k] = 0; order[#order + 1] = k end
  counts[k] = counts[k] + 1
end

local KINDS = { "flash", "shared", "resume", "efuse" }
local t0 = sys.now()
-- ncpsim's challenge key, for the secure eFuse path
local key_pem
do
  local kdir = helpers.tmpdir()
  local pid = assert(sys.spawn({ helpers.build .. "/ncpsim", "--print-test-key" }, { stdout = kdir .. "/k.pem" }))
  assert(sys.wait(pid, 10) == 0, "ncpsim --print-test-key")
  key_pem = helpers.readfile(kdir .. "/k.pem")
  helpers.cleanup()
end
for i = 1, N do
  local seed = SEED0 + i - 1
  math.randomseed(seed)
  local g = math.random
  local function rng(a, b) if b then return g(a, b) end return g(a) end
  local kind = KINDS[(seed - 1) % #KINDS + 1]
  local dir = helpers.tmpdir()
  TEST_KEY = helpers.writefile(dir .. "/key.pem", key_pem)
  local outcome, faults, res, ev
  if kind == "resume" then outcome, faults, res, ev = run_resume(dir, seed, rng)
  elseif kind == "efuse" then outcome, faults, res, ev = run_efuse(dir, seed, rng)
  else outcome, faults, res, ev = run_flash(dir, seed, rng, kind) end
  count(outcome)
  local line = ("seed %d  %-40s exit %s  %s%s"):format(seed, faults, tostring(res.code), outcome,
    ev and ("  [" .. tostring(ev.code) .. "] " .. tostring(ev.message)) or "")
  if outcome:match("VIOLATION") then
    violations[#violations + 1] = line
    io.stdout:write(line, "\n", res.err:sub(-600), "\n")
  elseif VERBOSE then
    io.stdout:write(line, "\n")
  elseif i % 20 == 0 then
    io.stdout:write(("soak: %d/%d runs (%.0f s)\n"):format(i, N, sys.now() - t0))
  end
  io.stdout:flush()
  helpers.cleanup()
end

io.stdout:write(("\nsoak: %d runs, seeds %d..%d, %.0f s\n"):format(N, SEED0, SEED0 + N - 1, sys.now() - t0))
table.sort(order)
for _, k in ipairs(order) do io.stdout:write(("  %5d  %s\n"):format(counts[k], k)) end
if #violations > 0 then
  io.stdout:write("violations:\n")
  for _, v in ipairs(violations) do io.stdout:write("  ", v, "\n") end
  os.exit(1, true)
end
