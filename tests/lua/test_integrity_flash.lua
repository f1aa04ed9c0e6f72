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
