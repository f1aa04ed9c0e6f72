-- Hostile inputs: each is refused with exit 7 and a clear message before anything reaches the
-- device (ncpsim's command log stays empty).  Complements test_flash_e2e / test_progcfg /
-- test_flash_plan, which cover missing/empty files, bad ini values, partition size limits and
-- overlapping or out-of-flash ADDR FILE pairs.
local partition = require "ncpflash.partition"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"
local codec = require "ncpflash.core.codec"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local PT = {
  { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
  { name = "FW", type = 0, address0 = 0x10000, size0 = 0x100000 },
}

local function ini_text(sections)
  local out = { "[cfg]\nerase = 1\n" }
  for _, s in ipairs(sections) do
    out[#out + 1] = ("[%s]\nfiledir = %s\naddress = %s\n"):format(s[1], s[2], s[3])
  end
  return table.concat(out, "\n")
end

-- dir/set/prog.ini with fw.bin and partition.bin next to it
local function release(sections, files)
  local dir = helpers.tmpdir()
  os.execute("mkdir -p '" .. dir .. "/set'")
  helpers.writefile(dir .. "/set/fw.bin", helpers.compressible_bytes(20000, 4))
  helpers.writefile(dir .. "/set/partition.bin", partition.build(PT))
  for name, data in pairs(files or {}) do helpers.writefile(dir .. "/set/" .. name, data) end
  return helpers.writefile(dir .. "/set/prog.ini", ini_text(sections)), dir
end

local function refused(sim, args, pattern)
  local argv = { "--port", sim.url }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = helpers.run(argv)
  eq(r.code, 7, "exit code; stderr: " .. r.err)
  match(r.err, "error: ")
  match(r.err, pattern)
  eq(#sim:log_lines(), 0, "nothing reached the device: " .. table.concat(sim:log_lines(), "\n"))
  return r
end

test("filedir escaping the ini's folder is refused; --allow-outside accepts it", function()
  local sim <close> = helpers.ncpsim{}
  local ini, dir = release{ { "FW", "./../secret.bin", "0x10000" } }
  helpers.writefile(dir .. "/secret.bin", "private key material")
  local r = refused(sim, { "flash", "--config", ini }, "%[FW%.filedir%] %./%.%./secret%.bin resolves to .*secret%.bin, "
    .. "outside the release folder")
  match(r.err, "%-%-allow%-outside")
  r = helpers.run{ "--port", sim.url, "flash", "--config", ini, "--allow-outside" }
  eq(r.code, 0, r.err)
end)

test("absolute filedir and a symlink leading out are refused", function()
  local sim <close> = helpers.ncpsim{}
  local outside = helpers.writefile(helpers.tmpdir() .. "/other.bin", "x")
  local ini = release{ { "FW", outside, "0x10000" } }
  refused(sim, { "flash", "--config", ini }, "outside the release folder")
  local ini2, dir2 = release{ { "FW", "./link.bin", "0x10000" } }
  os.execute(("ln -s '%s' '%s/set/link.bin'"):format(outside, dir2))
  refused(sim, { "flash", "--config", ini2 }, "link%.bin resolves to .*other%.bin, outside")
end)

test("ST's layout (Binaries/NCP_Binaries/x.ini naming ./../../LittleFS/...) is accepted", function()
  local sim <close> = helpers.ncpsim{}
  local dir = helpers.tmpdir()
  os.execute(("mkdir -p '%s/Scripts/Binaries/NCP_Binaries' '%s/Scripts/LittleFS/littlefs'"):format(dir, dir))
  local lfs = helpers.random_bytes(5000, 9)
  helpers.writefile(dir .. "/Scripts/LittleFS/littlefs/littlefs.bin", lfs)
  local ini = helpers.writefile(dir .. "/Scripts/Binaries/NCP_Binaries/t.ini",
    ini_text{ { "littlefs", "./../../LittleFS/littlefs/littlefs.bin", "0x378000" } })
  local r = helpers.run{ "--port", sim.url, "flash", "--config", ini }
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(0x378000 + 1, 0x378000 + #lfs), lfs)
  -- but not beyond the release folder
  helpers.writefile(dir .. "/outside.bin", "x")
  local sim2 <close> = helpers.ncpsim{}
  local ini2 = helpers.writefile(dir .. "/Scripts/Binaries/NCP_Binaries/t2.ini",
    ini_text{ { "x", "./../../../outside.bin", "0x378000" } })
  refused(sim2, { "flash", "--config", ini2 }, "outside the release folder .*/Scripts")
end)

test("partition table: truncated, wrong magic, bad header CRC, bad entries CRC", function()
  local sim <close> = helpers.ncpsim{}
  local pt = partition.build(PT)
  local cases = {
    { pt:sub(1, 20), "partition table: length" },
    { "XFPT" .. pt:sub(5), "partition table: magic" },
    { pt:sub(1, 12) .. "\0\0\0\0" .. pt:sub(17), "header CRC32" },
    { pt:sub(1, #pt - 1) .. string.char((pt:byte(#pt) + 1) % 256), "entries CRC32" },
  }
  for _, c in ipairs(cases) do
    local ini = release({ { "partition", "./pt.bin", "0xE000" }, { "FW", "./fw.bin", "@partition" } },
      { ["pt.bin"] = c[1] })
    refused(sim, { "flash", "--config", ini }, c[2])
  end
end)

test("boot image with a bad header CRC, a truncated boot header, an OTA file", function()
  local sim <close> = helpers.ncpsim{}
  local dir = helpers.tmpdir()
  local good = header.build(bl616, { image = helpers.compressible_bytes(5000, 1), offset = 0x1000 })
  local bad = helpers.writefile(dir .. "/bad.bin", good:sub(1, 252) .. "\1\2\3\4" .. good:sub(257))
  refused(sim, { "flash", "0x0", bad }, "bad%.bin @0x0: .*boot header: header CRC32 at offset 0xFC")
  local cfg = helpers.writefile(dir .. "/cfg.bin", good:sub(1, 20) .. "\xAA" .. good:sub(22))
  refused(sim, { "flash", "0x0", cfg }, "flash%-config CRC32")
  local short = helpers.writefile(dir .. "/short.bin", good:sub(1, 100))
  refused(sim, { "flash", "0x0", short }, "short%.bin @0x0: .*boot header: length")
  local payload = helpers.random_bytes(1000, 2)
  local head = "QCC74X_OTAVer1.0RAW " .. string.pack("<I4", #payload) .. "\1\2\3\4\5\6\7\8"
    .. ("\0"):rep(32) .. codec.sha256(payload)
  local ota = helpers.writefile(dir .. "/fw.bin.ota", head .. ("\xFF"):rep(512 - #head) .. payload)
  refused(sim, { "flash", "0x10000", ota }, "fw%.bin%.ota is an OTA file")
  -- a good image still goes through
  local ok_file = helpers.writefile(dir .. "/good.bin", good)
  eq(helpers.run{ "--port", sim.url, "flash", "0x0", ok_file }.code, 0)
end)

test("ini: wildcard matching 0 or 2 files, @partition name missing", function()
  local sim <close> = helpers.ncpsim{}
  local ini = release{ { "FW", "./app_v*.bin", "0x10000" } }
  refused(sim, { "flash", "--config", ini }, "matched 0")
  ini = release({ { "FW", "./app_v*.bin", "0x10000" } }, { ["app_v1.bin"] = "a", ["app_v2.bin"] = "b" })
  refused(sim, { "flash", "--config", ini }, "matched 2: app_v1%.bin, app_v2%.bin")
  ini = release{ { "partition", "./partition.bin", "0xE000" }, { "APP", "./fw.bin", "@partition" } }
  refused(sim, { "flash", "--config", ini }, "no entry \"APP\" in partition table")
end)

test("ini: a wildcard of many stars is answered at once (fuzz finding: pattern backtracking)", function()
  local sim <close> = helpers.ncpsim{}
  local ini = release({ { "FW", "./" .. ("*"):rep(60) .. "x.bin", "0x10000" } },
    { [("a"):rep(200) .. ".bin"] = "a" })
  local t0 = require("ncpflash.core.sys").now()
  refused(sim, { "flash", "--config", ini }, "matched 0")
  ok(require("ncpflash.core.sys").now() - t0 < 10, "took too long")
  local glob = require("ncpflash.progcfg").glob_match
  ok(glob("fw_v*.bin", "fw_v2.0.1.bin")); ok(glob("*", "")); ok(glob("a*b*c", "aXbYc"))
  ok(not glob("a*b", "aXbY")); ok(not glob("fw_v*.bin", "fw_v1.binx")); ok(glob("**.bin", ".bin"))
end)

test("ini: overlapping addresses, addresses beyond the flash or 32 bits", function()
  local sim <close> = helpers.ncpsim{}
  local ini = release({ { "FW", "./fw.bin", "0x10000" }, { "B", "./b.bin", "0x12000" } }, { ["b.bin"] = "b" })
  refused(sim, { "flash", "--config", ini }, "overlaps FW @0x10000")
  ini = release{ { "FW", "./fw.bin", "0x3FF000" } }
  refused(sim, { "flash", "--config", ini }, "beyond the 4194304%-byte flash")
  ini = release{ { "FW", "./fw.bin", "0x1FFFFFFFF" } }
  refused(sim, { "flash", "--config", ini }, "expected a hex address")
  local big = helpers.writefile(helpers.tmpdir() .. "/big.bin", ("\0"):rep(4 * 1024 * 1024 + 1))
  refused(sim, { "flash", "0x0", big }, "beyond the 4194304%-byte flash")
end)

test("soak regression (seed 4): power loss mid-write names the region and its state", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/app.bin", helpers.compressible_bytes(150 * 1024, 3))
  local sim <close> = helpers.ncpsim{ "--fault", "powerloss:20000:exit" }
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  ok(r.code ~= 0, "non-zero exit")
  match(r.err, "app%.bin @0x10000: .*region is now ")
end)
