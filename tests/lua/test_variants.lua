-- Issue 10: the rest of the Bouffalo family as data. Every variant flashes and verifies against
-- its ncpsim profile (BL808, BL702L by the ROM; BL602, BL702 through a RAM eflash_loader the
-- user supplies), the chip is detected from the boot info, an unknown ROM says how to write a
-- chip file, and `image create` wraps raw applications for every header layout.
local codec = require "ncpflash.core.codec"
local header = require "ncpflash.header"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local VARIANTS = {
  bl808 = { addr = 0x0, chunk = 4096, mac_len = 6, rom = 0x08080001, flash = 16 },
  bl702l = { addr = 0x10000, chunk = 2048, mac_len = 8, rom = 0x07020101, flash = 2 },
  bl602 = { addr = 0x10000, chunk = 2048, mac_len = 6, rom = 0x06020001, loader = true, flash = 4 },
  bl702 = { addr = 0x10000, chunk = 2048, mac_len = 8, rom = 0x07020001, loader = true, no_xz = true, flash = 2 },
}
local ORDER = { "bl808", "bl702l", "bl602", "bl702" }

local function chip(name)
  package.loaded["ncpflash.chips." .. name] = nil
  return require("ncpflash.chip").load(name)
end

-- A stand-in eflash_loader: any well-formed RAM image is accepted by ncpsim's ROM.
local function loader_file(name, dir)
  local path = dir .. "/eflash_loader_" .. name .. ".bin"
  helpers.writefile(path, header.build_ram(chip(name), { { dest = 0x22010000, data = helpers.random_bytes(9000, 3) } }))
  return path
end

local function max_write_payload(sim)
  local max, ops = 0, {}
  for _, l in ipairs(sim:log_lines()) do
    local op, plen = l:match("^0x(3[1F]) %S+ plen=(%d+)")
    if op then
      ops[op] = true
      if tonumber(plen) > max then max = tonumber(plen) end
    end
  end
  return max, ops
end

local function grep(sim, pat)
  for _, l in ipairs(sim:log_lines()) do if l:find(pat) then return l end end
end

for _, name in ipairs(ORDER) do
  local V = VARIANTS[name]
  test(name .. ": detected from the boot info, raw app wrapped by `image create`, flashed and verified", function()
    local dir = helpers.tmpdir()
    -- old (zero) content: the region's sectors must be erased (erased flash is left as it is)
    require("ncpflash.core.sys").mkdirs(dir .. "/state")
    helpers.writefile(dir .. "/state/flash.bin", string.rep("\0", V.flash * 1024 * 1024))
    local sim <close> = helpers.ncpsim({ "--profile", name, "--state", dir .. "/state" })
    local app = helpers.random_bytes(20000, 7) .. helpers.compressible_bytes(60000, 8)
    helpers.writefile(dir .. "/app.bin", app)
    local r = helpers.run({ "--chip", name, "image", "create", dir .. "/app.bin", dir .. "/app_hdr.bin" })
    eq(r.code, 0, r.err)
    local img = helpers.readfile(dir .. "/app_hdr.bin")
    local h = header.parse(chip(name), img)
    eq(#h.problems, 0, "image create: header problems")
    eq(h.image_sha_ok, true)
    local argv = { "--port", sim.url, "--json" }
    if V.loader then table.move({ "--loader", loader_file(name, dir) }, 1, 2, #argv + 1, argv) end
    table.move({ "flash", string.format("0x%X", V.addr), dir .. "/app_hdr.bin" }, 1, 3, #argv + 1, argv)
    r = helpers.run(argv)
    eq(r.code, 0, r.err .. r.out)
    match(r.out, '"chip":"' .. name .. '"', "detection event")
    sim:stop()
    local flash = sim:flash()
    eq(flash:sub(V.addr + 1, V.addr + #img), img, "flash content")
    -- data-driven details on the wire
    local max, ops = max_write_payload(sim)
    ok(max <= V.chunk + 4, "frame payload " .. max .. " > " .. (V.chunk + 4))
    if not V.no_xz then ok(ops["3F"], "decompress-write used") else ok(not ops["3F"], "no 0x3F on this chip") end
    if name == "bl808" then
      ok(grep(sim, "^0x50 memory_write .*addr=0x2000f038 value=0x18000000"), "BL808 post-sync write")
      eq(max, 4100, "BL808: 4 + 4096 per frame")
      ok(not grep(sim, "^0x23 "), "no 0x23 on the BL808 ROM")
    end
    if V.loader then
      ok(grep(sim, "^0x11 load_boot_header plen=176 .* %-> OK"), "boot header loaded")
      ok(grep(sim, "^0x19 check_image .* %-> OK"), "image checked")
      ok(grep(sim, "^run: eflash_loader started"), "loader started")
      ok(grep(sim, "^0x30 flash_erase"), "erase through the loader")
    end
    if name == "bl702" then
      ok(not grep(sim, "^0x1A "), "BL702 runs by memory writes, not 0x1A")
      ok(grep(sim, "^0x50 memory_write .*run: 0x40000018 <%- 2 %-> %(no reply%)"), "BL702 run write, not acknowledged")
    end
  end)

  test(name .. ": info shows the variant's MAC length and chip id; chip erase " ..
    (V.loader and "with PD keep-alives" or "by the ROM"), function()
    local sim <close> = helpers.ncpsim({ "--profile", name })
    local dir = helpers.tmpdir()
    local pre = { "--port", sim.url }
    if V.loader then table.move({ "--loader", loader_file(name, dir) }, 1, 2, #pre + 1, pre) end
    local r = helpers.run(table.move({ "--json", "info", "--no-images" }, 1, 3, #pre + 1, { table.unpack(pre) }))
    eq(r.code, 0, r.err)
    local mac = r.out:match('"mac":"([%x:]+)"')
    ok(mac, "mac in the result")
    eq(select(2, mac:gsub("%x%x", "")), V.mac_len, "MAC length")
    match(r.out, string.format('"rom_version":%d', V.rom))
    r = helpers.run(table.move({ "erase", "--all" }, 1, 2, #pre + 1, { table.unpack(pre) }))
    eq(r.code, 0, r.err)
  end)
end

test("BL602: no --loader is a usage error naming the option; nothing is flashed", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl602" })
  local r = helpers.run({ "--port", sim.url, "erase", "--all" })
  eq(r.code, 2, r.err)
  match(r.err, "%-%-loader FILE")
  ok(not grep(sim, "^0x3C"), "no chip erase reached the ROM")
end)

test("BL602: a corrupt loader image is refused before the upload (exit 7); the ROM refuses flash commands", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl602" })
  local dir = helpers.tmpdir()
  local good = helpers.readfile(loader_file("bl602", dir))
  helpers.writefile(dir .. "/bad.bin", good:sub(1, 180) .. "X" .. good:sub(182))
  local r = helpers.run({ "--port", sim.url, "--loader", dir .. "/bad.bin", "erase", "--all" })
  eq(r.code, 7, r.err)
  match(r.err, "segment 1 header CRC32")
  ok(not grep(sim, "^0x11 "), "nothing uploaded")
  -- the BL602 ROM itself knows only the RAM-image commands
  r = helpers.run({ "--port", sim.url, "--chip", "bl616", "--no-reset", "erase", "--all" })
  ok(r.code ~= 0, "BL616 flow against the BL602 ROM fails")
end)

test("an eflash_loader that is already running is used as is (no second upload)", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl602", "--wiring", "rts=none,dtr=none" })
  local dir = helpers.tmpdir()
  local ld = loader_file("bl602", dir)
  local r = helpers.run({ "--port", sim.url, "--loader", ld, "info", "--no-images" })
  eq(r.code, 0, r.err)
  r = helpers.run({ "--port", sim.url, "--no-reset", "info", "--no-images" })   -- detected by its loader
  eq(r.code, 0, r.err)
  match(r.err .. r.out, "already running")
  local n = 0
  for _, l in ipairs(sim:log_lines()) do if l:match("^0x11 ") then n = n + 1 end end
  eq(n, 1, "one upload")
end)

test("unknown ROM: exit 2, the boot info and how to write a chip file; a user chip file teaches detection", function()
  local bi = "785634120000000000000000a1b2c3d4e5f6000000000000"
  local sim <close> = helpers.ncpsim({ "--profile", "bl808", "--boot-info", bi })
  local r = helpers.run({ "--port", sim.url, "info", "--no-images" })
  eq(r.code, 2, r.err)
  match(r.err, "unknown boot ROM: version 0x12345678")
  match(r.err, bi, "the boot info in hex")
  match(r.err, "chips[/\\]NAME%.lua")
  match(r.err, "%-%-chip")
  -- --chip overrides the detection
  r = helpers.run({ "--port", sim.url, "--chip", "bl808", "info", "--no-images" })
  eq(r.code, 0, r.err)
  -- a chip file in XDG_CONFIG_HOME, no rebuild
  local xdg = helpers.tmpdir()
  require("ncpflash.core.sys").mkdirs(xdg .. "/ncpflash/chips")
  helpers.writefile(xdg .. "/ncpflash/chips/bl808x.lua", [[
local c = {}
for k, v in pairs(require("ncpflash.chips.bl808")) do c[k] = v end
c.name = "bl808x"
c.description = "BL808 with a new ROM revision"
c.rom_versions = { [0x12345678] = "BL808 rev X" }
return c
]])
  r = helpers.run({ "--port", sim.url, "info", "--no-images" }, { env = { XDG_CONFIG_HOME = xdg } })
  eq(r.code, 0, r.err)
  match(r.err .. r.out, "detected BL808 with a new ROM revision")
end)

test("a board naming another chip than the ROM reports is refused (exit 6)", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl808" })
  local r = helpers.run({ "--port", sim.url, "--board", "st67w611m1", "info", "--no-images" })
  eq(r.code, 6, r.err)
  match(r.err, "board st67w611m1 has a bl616")
end)

test("BL616 is still detected as itself (default board, no message)", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl616" })
  local r = helpers.run({ "--port", sim.url, "info", "--no-images" })
  eq(r.code, 0, r.err)
  ok(not r.err:find("detected"), "no detection message for the board's own chip")
end)

test("image create/info round trip for every header layout; --ram images; bad inputs", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/app.bin", helpers.random_bytes(5001, 9))
  for _, name in ipairs({ "bl616", "bl808", "bl702l", "bl602", "bl702" }) do
    local out = dir .. "/" .. name .. ".bin"
    local r = helpers.run({ "--chip", name, "image", "create", dir .. "/app.bin", out })
    eq(r.code, 0, r.err)
    local c = chip(name)
    local img = helpers.readfile(out)
    eq(img:sub(1, 4), "BFNP")
    eq(#img, 0x1000 + 5008, name .. ": padded to 16 bytes behind a 0x1000 offset")
    eq(img:sub(0x1001, 0x1000 + 5001), helpers.readfile(dir .. "/app.bin"))
    local h = header.parse(c, img)
    eq(h.image_len, 5008)
    eq(h.sha256, codec.sha256(img:sub(0x1001)))
    r = helpers.run({ "--chip", name, "image", "info", out })
    eq(r.code, 0, r.err .. r.out)
    match(r.out, "ok")
    ok(not r.out:find("BAD") and not r.out:find("PROBLEM"), r.out)
    -- one flipped byte in the application: image info exits 7
    helpers.writefile(dir .. "/bad.bin", img:sub(1, 0x1000 + 10) .. "\0" .. img:sub(0x1000 + 12))
    r = helpers.run({ "--chip", name, "image", "info", dir .. "/bad.bin" })
    if img:byte(0x1000 + 11) ~= 0 then eq(r.code, 7, name .. ": corrupted image") end
  end
  local r = helpers.run({ "--chip", "bl702", "image", "create", "--ram", "0x22020000", dir .. "/app.bin",
    dir .. "/ram.bin" })
  eq(r.code, 0, r.err)
  match(helpers.run({ "--chip", "bl702", "image", "info", dir .. "/ram.bin" }).out, "RAM image: 1 segment")
  r = helpers.run({ "--chip", "bl808", "image", "create", dir .. "/bl808.bin", dir .. "/again.bin" })
  eq(r.code, 7, "a file that already has a header")
  r = helpers.run({ "--chip", "bl808", "image", "create", dir .. "/app.bin" })
  eq(r.code, 2, "no output file")
end)

test("BL808 beyond 4 MiB: --chip bl808 (generic board) or --board generic: flash size from the JEDEC id", function()
  local sim <close> = helpers.ncpsim({ "--profile", "bl808" })
  local dir = helpers.tmpdir()
  local data = helpers.random_bytes(8192, 21)
  helpers.writefile(dir .. "/d.bin", data)
  local r = helpers.run({ "--port", sim.url, "--chip", "bl808", "flash", "0xA00000", dir .. "/d.bin" })
  eq(r.code, 0, r.err)
  r = helpers.run({ "--port", sim.url, "--board", "generic", "verify", "0xA00000", dir .. "/d.bin" })
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(0xA00001, 0xA00000 + #data), data)
end)
