-- End to end against ncpsim: flash (ini and ADDR FILE), erase policies, verify, read, info,
-- --skip-unchanged, and every error path with its exit code and message.
local partition = require "ncpflash.partition"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"

local SIZE = 4 * 1024 * 1024
local SECTOR = 4096

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

-- A synthetic release: boot2, partition table, firmware, "LittleFS", an ST-like ini.
local PT = {
  { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
  { name = "FW", type = 0, address0 = 0x10000, address1 = 0x1C4000, size0 = 0x1B4000, size1 = 0x1B4000 },
  { name = "mfg", type = 10, address0 = 0x1C4000, size0 = 0x1B4000 },
  { name = "media", type = 2, address0 = 0x378000, size0 = 0x6D000 },
  { name = "PSM", type = 3, address0 = 0x3E9000, size0 = 0x8000 },
}

local function synthetic(opts)
  opts = opts or {}
  local dir = helpers.tmpdir()
  local files = {
    boot2 = header.build(bl616, { image = helpers.compressible_bytes(30000, 1), offset = 0x2000, sign = 1 }),
    partition = partition.build(PT),
    fw = header.build(bl616, { image = helpers.compressible_bytes(opts.fw_size or 180000, 2), offset = 0x1000 }),
    lfs = helpers.random_bytes(3000, 5) .. string.rep("\xFF", 60000),
  }
  helpers.writefile(dir .. "/boot2.bin", files.boot2)
  helpers.writefile(dir .. "/partition.bin", files.partition)
  helpers.writefile(dir .. "/fw_v1.0.bin", files.fw)
  helpers.writefile(dir .. "/lfs.bin", files.lfs)
  local ini = ([[
[cfg]
erase = %d
skip_mode = 0x0, 0x0
boot2_isp_mode = 0

[boot2]
filedir = ./boot2.bin
address = 0x000000

[partition]
filedir = ./partition.bin
address = 0xE000

[littlefs]
filedir = ./lfs.bin
address = 0x378000

[FW]
filedir = ./fw_v*.bin
address = @partition
]]):format(opts.erase or 2)
  helpers.writefile(dir .. "/prog.ini", ini)
  local regions = {
    { 0, files.boot2 }, { 0xE000, files.partition }, { 0x378000, files.lfs }, { 0x10000, files.fw },
  }
  return dir .. "/prog.ini", regions, dir
end

-- What flash must look like: `base` (default all 0xFF) with the regions written; with
-- erase_ranges, the sector-rounded ranges are 0xFF first.
local function expected(regions, base, erase_ranges)
  local img = base or string.rep("\xFF", SIZE)
  local function put(addr, data)
    img = img:sub(1, addr) .. data .. img:sub(addr + #data + 1)
  end
  if erase_ranges then
    for _, r in ipairs(regions) do
      local a = r[1] // SECTOR * SECTOR
      local e = (r[1] + #r[2] + SECTOR - 1) // SECTOR * SECTOR
      put(a, string.rep("\xFF", e - a))
    end
  end
  for _, r in ipairs(regions) do put(r[1], r[2]) end
  return img
end

local same_flash = helpers.same_flash

local function count_writes(lines, from)
  local n = 0
  for i = (from or 0) + 1, #lines do
    if lines[i]:match("^0x3F ") or lines[i]:match("^0x31 ") then n = n + 1 end
  end
  return n
end

local function flash_run(sim, args)
  local argv = { "--port", sim.url }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return helpers.run(argv)
end

test("flash --config (synthetic, erase = 2) lands byte-exact, 0xFF elsewhere", function()
  local ini, regions = synthetic()
  local sim <close> = helpers.ncpsim{}
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 0, r.err)
  match(r.out, "flashed 4 of 4 regions")
  match(r.out, "bytes sent")
  sim:stop()
  same_flash(sim:flash(), expected(regions))
  local log = table.concat(sim:log_lines(), "\n")
  ok(not log:match("0x3C ") and not log:match("\n0x30 "), "a blank chip is not erased: erase = 2 checks it on chip")
  match(log, "0x3E flash_xip_read_sha plen=8 addr=0x00000000 len=4194304") -- the whole flash reads erased
  match(log, "0x3F ")          -- compressed writes
  match(log, "0x31 ")          -- the small partition table as a plain write
  match(log, "0x3E ")          -- on-chip SHA
end)

test("info after flashing reports the partition table and images", function()
  local ini = synthetic()
  local sim <close> = helpers.ncpsim{}
  eq(flash_run(sim, { "flash", "--config", ini }).code, 0)
  local r = flash_run(sim, { "info" })
  eq(r.code, 0, r.err)
  match(r.out, "ROM version%s+0x0616")
  match(r.out, "chip id%s+%x+")
  match(r.out, "MAC%s+%x%x:")
  match(r.out, "JEDEC %x+")
  match(r.out, "partition table copy 0 @0xE000: 5 entries")
  match(r.out, "FW%s+slot 0 @0x010000: unsigned image, %d+ bytes .* ok")
  match(r.out, "Boot2%s+slot 0 @0x000000: signed image")
  match(r.out, "FW%s+slot 1 @0x1C4000: empty")
  local j = flash_run(sim, { "--json", "info" })
  eq(j.code, 0)
  local res
  for _, e in ipairs(helpers.json_lines(j.out)) do if e.event == "result" then res = e end end
  ok(res, "a result event")
  eq(res.partitions[2].name, "FW")
  eq(res.images[2].sha_ok, true)
end)

test("--skip-unchanged re-flash sends no flash data", function()
  local ini = synthetic({ erase = 1 })
  local sim <close> = helpers.ncpsim{}
  eq(flash_run(sim, { "flash", "--config", ini }).code, 0)
  local before = #sim:log_lines()
  ok(count_writes(sim:log_lines()) > 0)
  local r = flash_run(sim, { "flash", "--config", ini, "--skip-unchanged" })
  eq(r.code, 0, r.err)
  match(r.out, "unchanged")
  match(r.out, "flashed 0 of 4 regions %(4 unchanged%)")
  eq(count_writes(sim:log_lines(), before), 0, "write frames on the second run")
  local log = sim:log_lines()
  for i = before + 1, #log do
    ok(not log[i]:match("^0x30 ") and not log[i]:match("^0x3C "), "no erase on an unchanged re-flash: " .. log[i])
  end
end)

test("erase = 1 leaves the other sectors as they were", function()
  local ini, regions = synthetic({ erase = 1 })
  local dir = helpers.tmpdir()
  local base = helpers.random_bytes(SIZE, 77)
  helpers.writefile(dir .. "/flash.bin", base)
  local sim <close> = helpers.ncpsim{ "--state", dir }
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 0, r.err)
  sim:stop()
  same_flash(sim:flash(), expected(regions, base, true))
end)

test("flash ADDR FILE pairs, verify, read back", function()
  local dir = helpers.tmpdir()
  local a = helpers.writefile(dir .. "/a.bin", helpers.compressible_bytes(50000, 3))
  local b = helpers.writefile(dir .. "/b.bin", helpers.random_bytes(3000, 4))
  local sim <close> = helpers.ncpsim{}
  local r = flash_run(sim, { "flash", "0x20000", a, "0x100000", b })
  eq(r.code, 0, r.err)
  r = flash_run(sim, { "verify", "0x20000", a, "0x100000", b })
  eq(r.code, 0, r.err)
  match(r.out, "2 of 2 regions match")
  r = flash_run(sim, { "verify", "0x20000", b })
  eq(r.code, 5)
  match(r.err, "differ")
  r = flash_run(sim, { "read", "0x20000", "50000", dir .. "/back.bin" })
  eq(r.code, 0, r.err)
  eq(helpers.readfile(dir .. "/back.bin"), helpers.readfile(a))
  r = flash_run(sim, { "erase", "0x20000", "4096" })
  eq(r.code, 0, r.err)
  r = flash_run(sim, { "read", "0x20000", "16", dir .. "/e.bin" })
  eq(r.code, 0, r.err)
  eq(helpers.readfile(dir .. "/e.bin"), string.rep("\xFF", 16))
  r = flash_run(sim, { "erase", "--all" })
  eq(r.code, 0, r.err)
end)

test("--reset leaves the ROM: BOOT low while CHIP_EN rises", function()
  local f = helpers.writefile(helpers.tmpdir() .. "/a.bin", helpers.random_bytes(5000, 8))
  local sim <close> = helpers.ncpsim{}
  local r = flash_run(sim, { "flash", "0x10000", f, "--reset" })
  eq(r.code, 0, r.err)
  match(r.out, "reset: the chip runs from flash")
  local log = table.concat(sim:log_lines(), "\n")
  match(log, "0x61 xip_read_finish[^\n]*\nlines dtr=1 rts=1\nlines dtr=1 rts=0")
end)

test("no answer: exit 3 with a hint", function()
  local sim <close> = helpers.ncpsim{ "--fault", "silent" }
  local r = flash_run(sim, { "info" })
  eq(r.code, 3)
  match(r.err, "handshake failed")
  match(r.err, "no answer from the chip")
end)

test("application talking instead of the ROM: exit 3, 'not the boot ROM'", function()
  local sim <close> = helpers.ncpsim{ "--fault", "app-baud" }
  local r = flash_run(sim, { "info" })
  eq(r.code, 3)
  match(r.err, "not the boot ROM")
end)

test("TX looped back to RX: exit 3, 'looped back'", function()
  local sim <close> = helpers.ncpsim{ "--fault", "echo" }
  local r = flash_run(sim, { "info" })
  eq(r.code, 3)
  match(r.err, "looped")
end)

test("FL code once: the region is retried and the flash succeeds", function()
  local ini, regions = synthetic()
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3F:000C:3" }
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 0, r.err)
  match(r.err, "retrying once")
  sim:stop()
  same_flash(sim:flash(), expected(regions))
end)

test("FL code every time: exit 4 naming the region, its state and the code", function()
  local ini = synthetic()
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3F:0006:0" }
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 4)
  match(r.err, "boot2 @0x0 failed twice")
  match(r.err, "FL 0x0006")
  match(r.err, "region is now")
end)

test("write-check failure: exit 4", function()
  local ini = synthetic()
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3A:0006:0" }
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 4)
  match(r.err, "flash_write_check")
end)

test("verify mismatch (unerased flash, --erase 0): exit 5", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/flash.bin", string.rep("\0", SIZE))
  local f = helpers.writefile(helpers.tmpdir() .. "/x.bin", helpers.random_bytes(10000, 9))
  local sim <close> = helpers.ncpsim{ "--state", dir }
  local r = flash_run(sim, { "flash", "--erase", "0", "0x10000", f })
  eq(r.code, 5)
  match(r.err, "on%-chip SHA%-256 %x+ differs from the file's")
  match(r.err, "x%.bin @0x10000 failed twice")
end)

test("ROM timeout mid-session: transparent re-handshake", function()
  local ini, regions = synthetic()
  local sim <close> = helpers.ncpsim{ "--fault", "romtimeout:12" }
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 0, r.err)
  sim:stop()
  same_flash(sim:flash(), expected(regions))
end)

test("input errors are found before anything is sent (exit 7)", function()
  local ini, _, dir = synthetic()
  local sim <close> = helpers.ncpsim{}
  -- missing file
  os.remove(dir .. "/lfs.bin")
  local r = flash_run(sim, { "flash", "--config", ini })
  eq(r.code, 7)
  match(r.err, "prog%.ini:15: %[littlefs%.filedir%] file .*lfs%.bin: missing")
  -- bad ini
  local bad = helpers.writefile(dir .. "/bad.ini", "[cfg]\nerase = 5\n")
  r = flash_run(sim, { "flash", "--config", bad })
  eq(r.code, 7)
  match(r.err, "bad%.ini:2: %[cfg%.erase%]")
  -- image bigger than its partition
  local ini2 = synthetic({ fw_size = 0x1B4000 })
  r = flash_run(sim, { "flash", "--config", ini2 })
  eq(r.code, 7)
  match(r.err, "larger than partition entry FW")
  -- overlapping regions, beyond the flash, empty file
  local f = helpers.writefile(dir .. "/f.bin", string.rep("a", 9000))
  local e = helpers.writefile(dir .. "/e.bin", "")
  r = flash_run(sim, { "flash", "0x1000", f, "0x2000", f })
  eq(r.code, 7)
  match(r.err, "overlaps")
  r = flash_run(sim, { "flash", "0x3FF000", f })
  eq(r.code, 7)
  match(r.err, "beyond the 4194304%-byte flash")
  r = flash_run(sim, { "flash", "0x1000", e })
  eq(r.code, 7)
  match(r.err, "e%.bin @0x1000: .*empty")
  eq(#sim:log_lines(), 0, "nothing reached the device")
end)

test("--efuse with a missing file fails before anything is sent (exit 7)", function()
  local ini = synthetic()
  local r = helpers.run{ "--port", "socket://127.0.0.1:1", "flash", "--config", ini, "--efuse", "nope.bin" }
  eq(r.code, 7)
  match(r.err, "nope%.bin")
end)

test("image info on synthetic files", function()
  local ini, _, dir = synthetic()
  local r = helpers.run{ "image", "info", dir .. "/partition.bin" }
  eq(r.code, 0, r.err)
  match(r.out, "partition table: 5 entries")
  r = helpers.run{ "image", "info", dir .. "/boot2.bin" }
  eq(r.code, 0, r.err)
  match(r.out, "signed %(ECDSA%)")
  r = helpers.run{ "image", "info", ini }
  eq(r.code, 7)
  match(r.err, "not a partition table")
end)

-- ST's real release files ------------------------------------------------------------------

local function st_ini(name)
  return helpers.ncp_binaries .. "/" .. name .. "_flash_prog_cfg_v2.0.89.ini"
end

local function st_regions(ini)
  local c = require("ncpflash.progcfg").load(ini)
  local out = {}
  for _, r in ipairs(c.regions) do out[#out + 1] = { r.address, helpers.readfile(r.file) } end
  return out
end

test("ST mission_t02 ini: byte-identical at the addresses, 0xFF elsewhere; info reports them", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local sim <close> = helpers.ncpsim{}
  local r = flash_run(sim, { "flash", "--config", st_ini("mission_t02") })
  eq(r.code, 0, r.err)
  match(r.out, "flashed 4 of 4 regions")
  local info = flash_run(sim, { "info" })
  eq(info.code, 0, info.err)
  match(info.out, "FW%s+slot 0 @0x010000: signed image, 1267264 bytes .* ok")
  match(info.out, "Boot2%s+slot 0 @0x000000: signed image, 52544 bytes .* ok")
  sim:stop()
  same_flash(sim:flash(), expected(st_regions(st_ini("mission_t02"))))
end)

test("ST mission_t01 through the board recipe and the release folder", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local sim <close> = helpers.ncpsim{}
  local r = flash_run(sim, { "st67w611m1/mission_t01", helpers.fixtures })
  eq(r.code, 0, r.err)
  match(r.out, "mission_t01_flash_prog_cfg_v2%.0%.89%.ini")
  sim:stop()
  same_flash(sim:flash(), expected(st_regions(st_ini("mission_t01"))))
end)

test("ST mfg (erase = 1) leaves other sectors as they were", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local dir = helpers.tmpdir()
  local base = helpers.random_bytes(SIZE, 4242)
  helpers.writefile(dir .. "/flash.bin", base)
  local sim <close> = helpers.ncpsim{ "--state", dir }
  local r = flash_run(sim, { "st67w611m1/mfg", helpers.ncp_binaries })
  eq(r.code, 0, r.err)
  sim:stop()
  same_flash(sim:flash(), expected(st_regions(st_ini("mfg")), base, true))
end)

test("ST t02 --skip-unchanged re-flash sends no flash data", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local sim <close> = helpers.ncpsim{}
  eq(flash_run(sim, { "flash", "--config", st_ini("mission_t02") }).code, 0)
  local before = #sim:log_lines()
  local r = flash_run(sim, { "flash", "--config", st_ini("mission_t02"), "--erase", "1", "--skip-unchanged" })
  eq(r.code, 0, r.err)
  eq(count_writes(sim:log_lines(), before), 0)
end)
