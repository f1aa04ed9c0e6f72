-- Issue 13 (integrity): exit 0 means ncpsim's flash.bin holds every region; the errors of a
-- failed flash say what the unit holds now. Items 1, 5, 6, 7 (each test names its item).
local sys = require "ncpflash.core.sys"

local SIZE = 4 * 1024 * 1024

-- ncpsim whose flash starts as old random content (so an erase or a missed write shows).
local function sim_with_old_flash(dir, extra, seed)
  local state = dir .. "/state"
  assert(sys.mkdirs(state))
  local old = helpers.random_bytes(SIZE, seed or 77)
  helpers.writefile(state .. "/flash.bin", old)
  local args = { "--state", state }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return helpers.ncpsim(args), old
end

local function holds(img, addr, data)
  return img:sub(addr + 1, addr + #data) == data
end

-- wait (up to 20 s) until ncpsim's log shows command CMD (hex); true when it did
local function wait_for_cmd(sim, cmd)
  local deadline = sys.now() + 20
  repeat
    for _, l in ipairs(sim:log_lines()) do if l:match("^0x" .. cmd .. " ") then return true end end
    sys.sleep(0.05)
  until sys.now() > deadline
  return false
end

-- the ncpsim log lines of commands matching `pat`, with their index
local function log_index(sim, pat)
  local out = {}
  for i, l in ipairs(sim:log_lines()) do if l:match(pat) then out[#out + 1] = i end end
  return out
end

test("1: regions sharing a sector under --erase 1: both land byte-exact", function()
  local dir = helpers.tmpdir()
  local a = helpers.random_bytes(6 * 1024, 1)
  local b = helpers.random_bytes(3000, 2)
  local fa = helpers.writefile(dir .. "/a.bin", a)
  local fb = helpers.writefile(dir .. "/b.bin", b)
  local sim <close> = sim_with_old_flash(dir)
  local r = helpers.run{ "--port", sim.url, "flash", "--erase", "1", "0x10000", fa, "0x11801", fb }
  eq(r.code, 0, r.err)
  sim:stop()
  local img = sim:flash()
  ok(holds(img, 0x10000, a), "a.bin intact (b's sector erase must not wipe a's tail)")
  ok(holds(img, 0x11801, b), "b.bin in place")
  -- every erase came before the first write
  local erases, writes = log_index(sim, "^0x30 "), log_index(sim, "^0x3[1F] ")
  ok(#erases > 0 and #writes > 0)
  ok(erases[#erases] < writes[1], "the plan's erases all come before the first write")
end)

test("1: every flash ends with a whole-plan verify after the last write", function()
  local dir = helpers.tmpdir()
  local fa = helpers.writefile(dir .. "/a.bin", helpers.random_bytes(5000, 3))
  local fb = helpers.writefile(dir .. "/b.bin", helpers.random_bytes(7000, 4))
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--json", "--port", sim.url, "flash", "0x10000", fa, "0x20000", fb }
  eq(r.code, 0, r.err)
  local res
  for _, e in ipairs(helpers.json_lines(r.out)) do if e.event == "result" then res = e end end
  eq(res.verified_regions, 2, "the result says both regions were verified after the last write")
  match(table.concat(res.summary, "\n"), "verified 2 of 2 regions on chip after the last write")
  sim:stop()
  -- after the last program command, one SHA-256 per region
  local lines = sim:log_lines()
  local last_write = 0
  for i, l in ipairs(lines) do if l:match("^0x3[1F] ") then last_write = i end end
  local after = {}
  for i = last_write + 1, #lines do
    local addr, len = lines[i]:match("^0x3[DE] .-addr=0x(%x+) len=(%d+)")
    if addr then after[("%X:%s"):format(tonumber(addr, 16), len)] = true end
  end
  eq(after, { ["10000:5000"] = true, ["20000:7000"] = true }, "both regions hashed after the last write")
end)

test("1: two --provision records in one sector: both land byte-exact", function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(8192, 5))
  local prov = helpers.writefile(dir .. "/p.lua", [[
return function(dev)
  return { { address = 0x3FF000, data = "SERIAL-0001", name = "serial" },
           { address = 0x3FF100, data = "MAC " .. dev.mac, name = "mac" } }
end
]])
  local sim <close> = sim_with_old_flash(dir)
  local r = helpers.run{ "--port", sim.url, "flash", "--provision", prov, "0x10000", fw }
  eq(r.code, 0, r.err)
  sim:stop()
  local img = sim:flash()
  ok(holds(img, 0x3FF000, "SERIAL-0001"), "first record intact")
  match(img:sub(0x3FF101, 0x3FF120), "^MAC %x%x:")
  ok(holds(img, 0x10000, helpers.readfile(fw)))
end)

test("1: an unaligned skip_mode: both pieces land, the skipped bytes keep their old content", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(16 * 1024, 6)
  helpers.writefile(dir .. "/fw.bin", fw)
  helpers.writefile(dir .. "/x.ini", table.concat({ "[cfg]", "erase = 1", "skip_mode = 0x11800, 0x400", "",
    "[FW]", "filedir = ./fw.bin", "address = 0x10000", "" }, "\n"))
  local sim <close>, old = sim_with_old_flash(dir)
  local r = helpers.run{ "--port", sim.url, "flash", "--config", dir .. "/x.ini" }
  eq(r.code, 0, r.err)
  sim:stop()
  local img = sim:flash()
  ok(holds(img, 0x10000, fw:sub(1, 0x1800)), "the piece before the skip")
  ok(holds(img, 0x11C00, fw:sub(0x1C01)), "the piece after the skip")
  eq(img:sub(0x11801, 0x11C00) == old:sub(0x11801, 0x11C00), true, "the skipped range keeps its content")
  -- and `verify` agrees
  local v = helpers.run{ "--port", helpers.ncpsim({ "--state", dir .. "/state" }).url, "verify",
    "0x10000", helpers.writefile(dir .. "/p1.bin", fw:sub(1, 0x1800)) }
  eq(v.code, 0, v.err)
end)

test("1: a retried region that shares a sector is rewritten with its neighbour", function()
  local dir = helpers.tmpdir()
  local a = helpers.random_bytes(6 * 1024, 7)
  local b = helpers.random_bytes(3000, 8)
  local fa = helpers.writefile(dir .. "/a.bin", a)
  local fb = helpers.writefile(dir .. "/b.bin", b)
  -- the write check of b (the second 0x3A) fails once: b is retried, its sector erased again
  local sim <close> = sim_with_old_flash(dir, { "--fault", "fl:3A:0003:2" })
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", fa, "0x11801", fb }
  eq(r.code, 0, r.err)
  match(r.err, "retrying once")
  sim:stop()
  local img = sim:flash()
  ok(holds(img, 0x10000, a), "a.bin intact after b's retry")
  ok(holds(img, 0x11801, b), "b.bin in place")
end)

-- item 5: --resume re-checks on chip what the journal claims
local function interrupted_run(dir, set, env, at)
  local state = dir .. "/state"
  local sim1 <close> = helpers.ncpsim{ "--state", state, "--fault", ("powerloss:%d:exit"):format(at or 200000) }
  local r1 = helpers.run({ "--port", sim1.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  ok(r1.code ~= 0, "the interrupted run fails")
  sim1:stop()
  -- (ncpsim gives each state dir a chip id of its own: the journal is the one file there)
  local jdir = dir .. "/xdg/ncpflash/journal"
  local names = {}
  for _, n in ipairs(sys.listdir(jdir) or {}) do if n:match("%.json$") then names[#names + 1] = n end end
  eq(#names, 1, "one journal in " .. jdir)
  return state, jdir .. "/" .. names[1]
end

local function patch_flash(state, addr, data)
  local img = helpers.readfile(state .. "/flash.bin")
  helpers.writefile(state .. "/flash.bin", img:sub(1, addr) .. data .. img:sub(addr + #data + 1))
end

for _, no_verify in ipairs({ false, true }) do
  test("5: --resume" .. (no_verify and " --no-verify" or "") .. " after bytes changed behind its back: "
    .. "blank checks and hashes on chip, the result byte-exact", function()
    local dir = helpers.tmpdir()
    local set = require("synth").release(dir, {})   -- boot2, partition, FW, littlefs; erase = 2
    local env = { XDG_STATE_HOME = dir .. "/xdg" }
    local state = interrupted_run(dir, set, env)
    -- rework between the runs: garbage where littlefs goes (never started: "erased" says the
    -- journal) and in boot2 (verified before the interruption)
    patch_flash(state, 0x378000 + 0x1000, helpers.random_bytes(8192, 11))
    patch_flash(state, 0x100, "rework")
    local sim2 <close> = helpers.ncpsim{ "--state", state }
    local argv = { "--port", sim2.url, "flash", "--config", set.ini, "--resume" }
    if no_verify then argv[#argv + 1] = "--no-verify" end
    local r2 = helpers.run(argv, { env = env })
    eq(r2.code, 0, r2.out .. r2.err)
    match(r2.out .. r2.err, "littlefs @0x378000: .*not blank")
    match(r2.out .. r2.err, "boot2 @0x0: .*no longer matches")
    sim2:stop()
    local img = sim2:flash()
    for _, f in ipairs(set.files) do
      ok(holds(img, f.address, f.data), f.name .. " byte-exact after the resume")
    end
  end)
end

test("5: a journal that lies (everything verified, chip erased) over a random flash", function()
  local dir = helpers.tmpdir()
  local set = require("synth").release(dir, { fw_size = 128 * 1024 })
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local state, journal = interrupted_run(dir, set, env, 100000)
  local j = require("ncpflash.json").decode(helpers.readfile(journal))
  j.chip_erased = true
  for k in pairs(j.started) do j.verified[k] = true end
  helpers.writefile(journal, require("ncpflash.json").encode(j))
  helpers.writefile(state .. "/flash.bin", helpers.random_bytes(SIZE, 12))
  local sim2 <close> = helpers.ncpsim{ "--state", state }
  local r2 = helpers.run({ "--port", sim2.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  eq(r2.code, 0, r2.out .. r2.err)
  sim2:stop()
  local img = sim2:flash()
  for _, f in ipairs(set.files) do ok(holds(img, f.address, f.data), f.name .. " byte-exact") end
end)

-- item 6: the state line counts what the device acknowledged
test("6: FL on every 0x3F: the region is reported erased, not 'N of N bytes written'", function()
  local dir = helpers.tmpdir()
  local data = helpers.compressible_bytes(52544, 9)
  local f = helpers.writefile(dir .. "/c.bin", data)
  local sim <close> = sim_with_old_flash(dir, { "--fault", "fl:3F:000C:0" })
  local r = helpers.run{ "--port", sim.url, "flash", "0x378000", f }
  eq(r.code, 4, r.err)
  match(r.err, "c%.bin @0x378000 failed twice, region is now erased %(no write acknowledged")
  nomatch(r.err, "52544 of 52544")
  sim:stop()
  eq(sim:flash():sub(0x378001, 0x378000 + #data), string.rep("\255", #data), "the region reads erased")
end)

test("6: SIGTERM during a write: the state counts acknowledged frames only", function()
  helpers.skip_on_windows("SIGTERM to wine does not reach the program as Ctrl-C")
  local dir = helpers.tmpdir()
  -- compressible at the start (so XZ is used), random behind: many 0x3F frames
  local data = helpers.compressible_bytes(65536, 10) .. helpers.random_bytes(380928, 10)
  local f = helpers.writefile(dir .. "/lfs.bin", data)
  -- the third 0x3F reply is held back 5 s: two frames are acknowledged when the signal comes
  local sim <close> = sim_with_old_flash(dir, { "--fault", "stall:3F:5:3" })
  local p <close> = helpers.spawn(helpers.ncpflash_argv{ "--port", sim.url, "flash", "0x378000", f })
  ok(wait_for_cmd(sim, "3F"), "the write started")
  sys.sleep(0.8)
  sys.kill(p.pid, "TERM")
  eq(sys.wait(p.pid, 20), 130)
  local err = helpers.readfile(p.err)
  local first, size = err:match("at most the first (%d+) of (%d+) bytes")
  ok(first, "the state names an upper bound of programmed bytes: " .. err)
  ok(tonumber(first) < tonumber(size), "not all bytes: " .. err)
  match(err, "the device acknowledged %d+ compressed bytes")
  nomatch(err, "446464 of 446464")
end)

-- item 7: a connection lost mid-write is a device failure (exit 4) on a partly written unit
test("7: the connection lost mid-write: exit 4, the region named, the never-written regions listed", function()
  local dir = helpers.tmpdir()
  local set = require("synth").release(dir, {})   -- erase = 2: chip erase first
  local sim <close> = helpers.ncpsim{ "--fault", "powerloss:200000:exit" }
  local r = helpers.run{ "--port", sim.url, "flash", "--config", set.ini }
  eq(r.code, 4, r.err)
  match(r.err, "FW @0x10000")
  match(r.err, "the unit is partially written")
  match(r.err, "never written since the erase: littlefs @0x378000")
  nomatch(r.err, "could not reach the ROM")
end)

test("7: the device gone mid-write (no more answers): exit 4 and the unit is partially written", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(200000, 13))
  local sim <close> = helpers.ncpsim{ "--fault", "powerloss:100000:dead" }
  local r = helpers.run({ "--port", sim.url, "flash", "0x10000", f }, { timeout = 200 })
  eq(r.code, 4, r.err)
  match(r.err, "fw%.bin @0x10000")
  match(r.err, "the unit is partially written")
end)

-- Found by a hostile review after the integrity merge (each failed before its fix).

test("verify: a garbled SHA-256 reply is asked again, not reported as a mismatch", function()
  local Session = require("ncpflash.session").Session
  ok(Session and Session.verify_sha, "Session.verify_sha")
  local want = string.rep("A", 32)
  local function fake(replies)
    local i = 0
    return setmetatable({}, { __index = { xip_sha = function(_, fn)
      return fn(function() i = i + 1; return replies[i] end)
    end, calls = function() return i end } })
  end
  local s = fake({ "garbled" .. string.rep("x", 25), want })
  eq(Session.verify_sha(s, { { addr = 0, len = 4, want = want } })[1], want, "the second reply matches")
  local wrong = string.rep("B", 32)
  s = fake({ wrong, wrong })
  eq(Session.verify_sha(s, { { addr = 0, len = 4, want = want } })[1], wrong, "two replies agree: a real mismatch")
  s = fake({ wrong, string.rep("C", 32), string.rep("D", 32), string.rep("E", 32) })
  raises(function() Session.verify_sha(s, { { addr = 0, len = 4, want = want } }) end, "protocol", "no two agree")
end)

test("state: a power loss mid-frame after acknowledged frames says the frame in flight may have programmed", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(65536, 14))
  local sim <close> = sim_with_old_flash(dir, { "--fault", "powerloss:20000:dead" })
  local r = helpers.run({ "--port", sim.url, "flash", "0x10000", f }, { timeout = 200 })
  eq(r.code, 4, r.err)
  match(r.err, "partly written up to offset")
  match(r.err, "except what the unacknowledged frame after it may have programmed")
end)

test("interrupted erases: nothing written, the region's state unknown; a chip erase names the whole flash", function()
  helpers.skip_on_windows("SIGINT to wine does not reach the program as Ctrl-C")
  for _, mode in ipairs({ "1", "2" }) do
    local dir = helpers.tmpdir()
    local a = helpers.writefile(dir .. "/a.bin", helpers.random_bytes(200000, 15))
    local cmd = mode == "1" and "30" or "3C"
    local sim <close> = sim_with_old_flash(dir, { "--fault", "stall:" .. cmd .. ":8" })
    local argv = { "--port", sim.url, "flash", "--erase", mode, "0x10000", a }
    if mode == "2" then argv[#argv + 1] = "--chip-erase" end   -- (else erase = 2 may erase less)
    local p <close> = helpers.spawn(helpers.ncpflash_argv(argv))
    ok(wait_for_cmd(sim, cmd), "the erase was sent")
    sys.sleep(0.5)
    sys.kill(p.pid, "INT")
    eq(sys.wait(p.pid, 20), 130)
    local err = helpers.readfile(p.err)
    nomatch(err, "partially written")
    if mode == "1" then
      match(err, "nothing was written; a%.bin @0x10000 is now unknown: an erase of its sectors was sent")
    else
      match(err, "the chip erase was sent and did not complete: the whole flash is in an unknown state")
    end
  end
end)

test("skip_mode bytes lost with a failed unit: the error says so and saves them; the file restores them", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(8192, 16))
  helpers.writefile(dir .. "/x.ini", table.concat({ "[cfg]", "erase = 1", "skip_mode = 0x20800, 0x100", "",
    "[FW]", "filedir = ./fw.bin", "address = 0x20000", "" }, "\n"))
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local sim <close>, old = sim_with_old_flash(dir, { "--fault", "fl:31:0003:0" })
  local r = helpers.run({ "--port", sim.url, "flash", "--config", dir .. "/x.ini" }, { env = env })
  eq(r.code, 4, r.err)
  local saved = r.err:match("the 256 skip_mode bytes at 0x20800 %(kept across the erase%) may be lost: their old "
    .. "content is saved in (%S+) %(restore")
  ok(saved, "the lost bytes are named and saved: " .. r.err)
  eq(helpers.readfile(saved), old:sub(0x20801, 0x20900), "the saved file holds the old bytes")
  sim:stop()
  eq(sim:flash():sub(0x20801, 0x20900), string.rep("\255", 256), "(they are erased on the chip)")
  local sim2 <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  eq(helpers.run({ "--port", sim2.url, "flash", "--erase", "0", "0x20800", saved }, { env = env }).code, 0)
  sim2:stop()
  eq(sim2:flash():sub(0x20801, 0x20900), old:sub(0x20801, 0x20900), "restored from the saved file")
end)

test("recover --config refuses an ini with skip_mode before touching the chip (its chip erase would wipe them)",
  function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(8192, 17))
  helpers.writefile(dir .. "/x.ini", table.concat({ "[cfg]", "erase = 1", "skip_mode = 0x20800, 0x100", "",
    "[FW]", "filedir = ./fw.bin", "address = 0x20000", "" }, "\n"))
  local sim <close> = sim_with_old_flash(dir)
  local r = helpers.run{ "--port", sim.url, "recover", "--config", dir .. "/x.ini" }
  eq(r.code, 7, r.err)
  match(r.err, "skip_mode ranges %(0x20800, 256 bytes%)")
  match(r.err, "recover %-%-no%-erase")
  sim:stop()
  eq(#log_index(sim, "^0x"), 0, "nothing sent")
end)

test("a region wholly inside skip_mode is not flashed, and the run says so", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/a.bin", helpers.random_bytes(4096, 18))
  helpers.writefile(dir .. "/x.ini", table.concat({ "[cfg]", "erase = 1", "skip_mode = 0x20000, 0x1000", "",
    "[A]", "filedir = ./a.bin", "address = 0x20000", "" }, "\n"))
  local sim <close>, old = sim_with_old_flash(dir)
  local r = helpers.run{ "--port", sim.url, "flash", "--config", dir .. "/x.ini" }
  eq(r.code, 0, r.err)
  match(r.err, "A @0x20000 %(4096 bytes%) lies wholly inside skip_mode: not flashed")
  sim:stop()
  eq(sim:flash():sub(0x20001, 0x21000), old:sub(0x20001, 0x21000), "left alone")
end)

test("5: --resume after the recorded chip erase: data written outside the regions between the runs is erased",
  function()
  local dir = helpers.tmpdir()
  local set = require("synth").release(dir, {})   -- erase = 2
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local state = interrupted_run(dir, set, env)
  patch_flash(state, 0x200000, helpers.random_bytes(8192, 19))   -- another job, between the runs
  local sim2 <close> = helpers.ncpsim{ "--state", state }
  local r2 = helpers.run({ "--port", sim2.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  eq(r2.code, 0, r2.out .. r2.err)
  match(r2.err, "the journal records the chip erase, but 0x%x+%.%.0x%x+ %(outside the regions%) is not blank")
  sim2:stop()
  local img = sim2:flash()
  eq(img:sub(0x200001, 0x202000), string.rep("\255", 8192), "0xFF outside the regions, as erase = 2 promises")
  for _, f in ipairs(set.files) do ok(holds(img, f.address, f.data), f.name .. " byte-exact") end
end)
