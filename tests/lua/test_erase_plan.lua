-- erase = 2 with the least erasing (issue 17, ncpflash.eraseplan): on any old content the flash
-- ends byte-identical to a chip erase followed by the writes; what is already as planned is not
-- erased or written; a chip erase where it is cheaper or the flash may be encrypted; an
-- interrupted run never reports success and says what it left.
local eraseplan = require "ncpflash.eraseplan"
local sys = require "ncpflash.core.sys"

local SIZE = 4 * 1024 * 1024
local BLOCK = 65536

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

-- xorshift for test choices (positions, sizes)
local function rng(seed)
  local x = seed
  return function(n)
    x = x ~ (x << 13) & 0xFFFFFFFF
    x = x ~ (x >> 17)
    x = x ~ (x << 5) & 0xFFFFFFFF
    return x % n
  end
end

-- Replace [addr, addr + #data) of img.
local function put(img, addr, data)
  return img:sub(1, addr) .. data .. img:sub(addr + #data + 1)
end

-- What a chip erase followed by the writes leaves: 0xFF with the regions in place.
local function expected(regions)
  local img = string.rep("\xFF", SIZE)
  for _, r in ipairs(regions) do img = put(img, r[1], r[2]) end
  return img
end

-- Old contents: "dense" = random bytes everywhere; "sparse" = erased flash with a few random
-- sectors, single bytes and bytes right at 64 KiB block edges (and in the regions' pad bytes).
local function old_contents(kind, seed, regions)
  if kind == "dense" then return helpers.random_bytes(SIZE, seed) end
  local pick = rng(seed)
  local img = string.rep("\xFF", SIZE)
  for i = 1, 6 do img = put(img, pick(SIZE // 4096) * 4096, helpers.random_bytes(4096, seed + i)) end
  for _ = 1, 6 do
    local b = (1 + pick(SIZE // BLOCK - 1)) * BLOCK
    img = put(img, b - 1, "\x00")                     -- the last byte of a block
    img = put(img, b, "\x5A")                         -- the first byte of the next
  end
  for _ = 1, 4 do img = put(img, pick(SIZE), string.char(pick(255))) end
  for _, r in ipairs(regions) do                      -- a byte after each region, in its last sector
    local e = r[1] + #r[2]
    if e % 4096 ~= 0 then img = put(img, e, "\x00") end
  end
  return img
end

-- A plan of three files: one at a 64 KiB block edge, one unaligned, one small in a shared block.
local function plan_files(dir, seed)
  local pick = rng(seed + 100)
  local regions = {
    { 0x10000, helpers.random_bytes(70000 + pick(5000), seed + 1) },                 -- from a block edge
    { 0x123400 + pick(16) * 16, helpers.compressible_bytes(90000 + pick(40000), seed + 2) },  -- unaligned
    { 0x3F0000 - 3000, helpers.random_bytes(3000, seed + 3) },                        -- ends at a block edge
  }
  local argv = {}
  for i, r in ipairs(regions) do
    argv[#argv + 1] = ("0x%X"):format(r[1])
    argv[#argv + 1] = helpers.writefile(("%s/f%d.bin"):format(dir, i), r[2])
  end
  return regions, argv
end

local function flash_on(old, argv, extra, simargs)
  local dir = helpers.tmpdir()
  if old then helpers.writefile(dir .. "/flash.bin", old) end
  local args = { "--state", dir }
  for _, a in ipairs(simargs or {}) do args[#args + 1] = a end
  local sim = helpers.ncpsim(args)
  local cmd = { "--port", sim.url, "--json", "flash", "--erase", "2" }
  for _, a in ipairs(extra or {}) do cmd[#cmd + 1] = a end
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r = helpers.run(cmd)
  sim:stop()
  return r, sim
end

local function count(sim, pattern)
  local n = 0
  for _, l in ipairs(sim:log_lines()) do if l:match(pattern) then n = n + 1 end end
  return n
end

test("target digest and blank digest (host side) agree with the bytes", function()
  local regions = { { address = 0x1000, size = 5, data = "hello" }, { address = 0x20000, size = 3, data = "abc" } }
  local img = string.rep("\xFF", 0x1000) .. "hello" .. string.rep("\xFF", 0x20000 - 0x1005) .. "abc"
    .. string.rep("\xFF", 0x30000 - 0x20003)
  local codec = require "ncpflash.core.codec"
  for _, r in ipairs({ { 0, 0x30000 }, { 0x1002, 0x20001 }, { 0x20003, 0x30000 }, { 0x1000, 0x1005 } }) do
    eq(eraseplan.target_sha(regions, r[1], r[2]), codec.sha256(img:sub(r[1] + 1, r[2])),
      ("0x%X..0x%X"):format(r[1], r[2]))
  end
  eq(eraseplan.blank_sha(100000), codec.sha256(string.rep("\xFF", 100000)))
end)

test("cover: whole 64 KiB blocks where nothing is kept, else 32 KiB halves or sectors", function()
  local t = eraseplan.typical({}, SIZE)
  local c = eraseplan.cover({ { lo = 0x11000, hi = 0x12000 } }, {}, SIZE, 4096, t)
  eq(#c, 1); eq(c[1].lo, 0x10000); eq(c[1].hi, 0x20000)
  -- a kept unit (already as planned) at 0x18000: the other half is erased as 32 KiB when that is
  -- cheaper than its sectors (4 x 45 ms >= 120 ms), else sector by sector
  c = eraseplan.cover({ { lo = 0x10000, hi = 0x14000 } }, { { lo = 0x18000, hi = 0x19000 } }, SIZE, 4096, t)
  eq(#c, 1); eq(c[1].lo, 0x10000); eq(c[1].hi, 0x18000)
  c = eraseplan.cover({ { lo = 0x10000, hi = 0x12000 }, { lo = 0x1A000, hi = 0x1B000 } },
    { { lo = 0x18000, hi = 0x19000 } }, SIZE, 4096, t)
  eq(#c, 2); eq(c[1].hi, 0x12000); eq(c[2].lo, 0x1A000); eq(c[2].hi, 0x1B000)
end)

for _, kind in ipairs({ "sparse", "dense" }) do
  for _, seed in ipairs({ 3, 11, 29 }) do
    test(("%s old contents (seed %d): byte-identical to a chip erase + the writes"):format(kind, seed), function()
      local dir = helpers.tmpdir()
      local regions, argv = plan_files(dir, seed)
      local r, sim = flash_on(old_contents(kind, seed, regions), argv)
      eq(r.code, 0, r.err)
      helpers.same_flash(sim:flash(), expected(regions))
      eq(count(sim, "^0x3C "), 0, "no chip erase")
      if kind == "sparse" then ok(count(sim, "^0x30 ") >= 1, "the old data was erased") end
    end)
  end
end

test("a blank module: one check, nothing erased; an already flashed one: nothing erased or written", function()
  local dir = helpers.tmpdir()
  local regions, argv = plan_files(dir, 5)
  local r, sim = flash_on(nil, argv)
  eq(r.code, 0, r.err)
  helpers.same_flash(sim:flash(), expected(regions))
  eq(count(sim, "^0x30 ") + count(sim, "^0x3C "), 0)
  eq(count(sim, "^0x3E flash_xip_read_sha plen=8 addr=0x00000000 len=4194304"), 1)
  -- the same plan again: already on chip with 0xFF around it
  local r2, sim2 = flash_on(expected(regions), argv)
  eq(r2.code, 0, r2.err)
  match(r2.out, "already on chip")
  eq(count(sim2, "^0x30 ") + count(sim2, "^0x3C ") + count(sim2, "^0x3F ") + count(sim2, "^0x31 "), 0,
    "no erase, no write")
  helpers.same_flash(sim2:flash(), expected(regions))
  -- one byte off after the last region's end (in its last sector): that unit is erased again
  local e = regions[2][1] + #regions[2][2]
  local r3, sim3 = flash_on(put(expected(regions), e, "\x00"), argv)
  eq(r3.code, 0, r3.err)
  helpers.same_flash(sim3:flash(), expected(regions))
  eq(count(sim3, "^0x30 "), 1, "one erase")
  ok(count(sim3, "^0x3F ") + count(sim3, "^0x31 ") > 0, "the unit rewritten")
end)

test("--chip-erase, an encrypted module, a chip erase cheaper by the part's times: 0x3C", function()
  local dir = helpers.tmpdir()
  local regions, argv = plan_files(dir, 7)
  local old = old_contents("sparse", 7, regions)
  local r, sim = flash_on(old, argv, { "--chip-erase" })
  eq(r.code, 0, r.err)
  eq(count(sim, "^0x3C "), 1)
  helpers.same_flash(sim:flash(), expected(regions))
  -- the boot info's encrypt flag (byte 5)
  local bi = helpers.boot_info(1):sub(1, 10) .. "01" .. helpers.boot_info(1):sub(13)
  r, sim = flash_on(old, argv, nil, { "--boot-info", bi })
  eq(r.code, 0, r.err)
  match(r.out, "encrypted")
  eq(count(sim, "^0x3C "), 1)
  helpers.same_flash(sim:flash(), expected(regions))
  -- a part whose chip erase is cheap: a chip file with its typical times
  local xdg = helpers.tmpdir()
  assert(require("ncpflash.core.sys").mkdirs(xdg .. "/ncpflash/chips"))
  helpers.writefile(xdg .. "/ncpflash/chips/bl616_fastce.lua", [[
local c = {}
for k, v in pairs(require("ncpflash.chips.bl616")) do c[k] = v end
c.erase_cost_ms = { sector = 45, blk32 = 120, blk64 = 150, chip = 100 }
return c
]])
  local d2 = helpers.tmpdir()
  helpers.writefile(d2 .. "/flash.bin", old)
  local sim3 <close> = helpers.ncpsim{ "--state", d2 }
  local cmd = { "--port", sim3.url, "--chip", "bl616_fastce", "flash", "--erase", "2" }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  local r3 = helpers.run(cmd, { env = { XDG_CONFIG_HOME = xdg } })
  eq(r3.code, 0, r3.err)
  match(r3.out, "chip erase %(erasing what holds data would take about")
  sim3:stop()
  eq(count(sim3, "^0x3C "), 1)
  helpers.same_flash(sim3:flash(), expected(regions))
end)

test("a power loss while erasing or writing: no success, the state said; a run again lands byte-exact", function()
  local dir = helpers.tmpdir()
  local regions, argv = plan_files(dir, 13)
  local old = old_contents("dense", 13, regions)
  for _, at in ipairs({ 1000, 120000 }) do
    local sdir = helpers.tmpdir()
    helpers.writefile(sdir .. "/flash.bin", old)
    local sim <close> = helpers.ncpsim{ "--state", sdir, "--fault", ("powerloss:%d:exit"):format(at) }
    local cmd = { "--port", sim.url, "flash", "--erase", "2" }
    for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
    local r = helpers.run(cmd)
    ok(r.code ~= 0, "an interrupted run does not report success")
    ok(not r.out:match("flashed %d+ of %d+ regions"), "no summary")
    match(r.err, "partially written")
    sim:stop()
    -- the chip as the power loss left it, then the same flash again
    local sim2 <close> = helpers.ncpsim{ "--state", sdir }
    local again = { "--port", sim2.url, "flash", "--erase", "2" }
    for _, a in ipairs(argv) do again[#again + 1] = a end
    local r2 = helpers.run(again)
    eq(r2.code, 0, r2.err)
    sim2:stop()
    helpers.same_flash(sim2:flash(), expected(regions))
  end
end)

test("an erase that fails every time: exit 4, nothing claimed", function()
  local dir = helpers.tmpdir()
  local regions, argv = plan_files(dir, 17)
  local r, sim = flash_on(old_contents("dense", 17, regions), argv, nil, { "--fault", "fl:30:0005:0" })
  eq(r.code, 4, r.err)
  match(r.out .. r.err, "before any region was written")
  eq(count(sim, "^0x3F ") + count(sim, "^0x31 "), 0, "nothing written after the failed erase")
end)

-- erase = 1 is never slower than a chip erase: 250 scattered regions, each in its own sector
-- that holds old data (250 x 45 ms typical > the 10 s chip erase), everything else erased
local function scattered(dir, gap_data)
  local regions, args = {}, {}
  local img = string.rep("\xFF", SIZE)
  for i = 0, 249 do
    local addr = 0x10000 + i * 0x3000
    local data = helpers.random_bytes(16, 100 + i)
    regions[#regions + 1] = { addr, data }
    img = put(img, addr - addr % 4096, helpers.random_bytes(4096, 400 + i))   -- old data in its sector
    args[#args + 1] = ("0x%X"):format(addr)
    args[#args + 1] = helpers.writefile(("%s/r%03d.bin"):format(dir, i), data)
  end
  if gap_data then img = put(img, 0x11000, gap_data) end   -- between the first two units
  sys.mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/flash.bin", img)
  return regions, args, img
end

test("erase = 1: a chip erase where the units to erase cost more and everything else reads erased", function()
  local dir = helpers.tmpdir()
  local regions, args = scattered(dir)
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local argv = { "--port", sim.url, "flash", "--erase", "1" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = helpers.run(argv, { timeout = 300 })
  eq(r.code, 0, r.err)
  match(r.out .. r.err, "erase = 1: erasing the 250 units that hold data would take about 11%.%d s, the chip erase "
    .. "10%.0 s, and everything else reads erased: chip erase")
  sim:stop()
  local want = expected(regions)
  eq(sim:flash() == want, true, "byte-identical to a chip erase + the writes (= the sector erases here)")
  local n30, n3c = 0, 0
  for _, l in ipairs(sim:log_lines()) do
    if l:match("^0x30 ") then n30 = n30 + 1 elseif l:match("^0x3C ") then n3c = n3c + 1 end
  end
  eq({ n30, n3c }, { 0, 1 }, "one chip erase, no sector erases")
end)

test("erase = 1: data outside the regions keeps the per-unit erases (a chip erase would wipe it)", function()
  local dir = helpers.tmpdir()
  local keep = helpers.random_bytes(4096, 7)
  local regions, args = scattered(dir, keep)
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local argv = { "--port", sim.url, "flash", "--erase", "1" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = helpers.run(argv, { timeout = 300 })
  eq(r.code, 0, r.err)
  nomatch(r.out .. r.err, "chip erase")
  sim:stop()
  local img = sim:flash()
  eq(img:sub(0x11001, 0x12000), keep, "the data between the regions is still there")
  for _, rg in ipairs(regions) do eq(img:sub(rg[1] + 1, rg[1] + #rg[2]), rg[2]) end
end)
