-- QConn flash_prog_cfg.ini: sections, @partition through the parsed table, wildcards,
-- $(CHIPNAME), CRLF, size limits, errors naming file/line/key (exit 7).
local progcfg = require "ncpflash.progcfg"
local partition = require "ncpflash.partition"

local PT = {
  { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
  { name = "FW", type = 0, address0 = 0x10000, address1 = 0x90000, size0 = 0x80000, size1 = 0x80000 },
  { name = "media", type = 2, address0 = 0x100000, size0 = 0x10000 },
}

-- a release-like folder: bin/ with the ini, pt and images; fs/ one level up; both in a Binaries/
-- tree as in ST's release (an ini may reach up to the folder holding Binaries/, see progcfg)
local function release(ini_text, opts)
  opts = opts or {}
  local dir = helpers.tmpdir() .. "/Binaries"
  assert(require("ncpflash.core.sys").mkdirs(dir .. "/bin"))
  assert(require("ncpflash.core.sys").mkdirs(dir .. "/fs"))
  helpers.writefile(dir .. "/bin/partition.bin", opts.pt or partition.build(PT))
  helpers.writefile(dir .. "/bin/boot2_v1.bin", helpers.random_bytes(9000, 1))
  helpers.writefile(dir .. "/bin/fw_v2.0.1.bin", helpers.random_bytes(opts.fw_size or 70000, 2))
  helpers.writefile(dir .. "/fs/lfs.bin", helpers.random_bytes(opts.lfs_size or 5000, 3))
  return helpers.writefile(dir .. "/bin/prog.ini", ini_text), dir
end

local INI = [[
[cfg]
# 0: none, 1: programmed sections, 2: chip
erase = 2
skip_mode = 0x0, 0x0
boot2_isp_mode = 0

[boot2]
filedir = ./boot2_v1.bin
address = 0x000000

[partition]
filedir = ./partition.bin
address = 0xE000

[media]
filedir = ./../fs/lfs.bin
address = 0x100000

[FW]
filedir = ./fw_v*.bin
address = @partition
]]

test("ST-style ini resolves files, addresses and limits", function()
  local ini, dir = release(INI)
  local c = progcfg.load(ini)
  eq(c.erase, 2)
  eq(#c.skip, 0)
  eq(c.boot2_isp_mode, 0)
  eq(#c.regions, 4)
  eq(c.regions[1].address, 0)
  eq(c.regions[1].max_size, 0xE000)          -- inherited from the Boot2 entry
  eq(c.regions[2].address, 0xE000)
  eq(c.regions[3].file, dir .. "/fs/lfs.bin")
  eq(c.regions[3].max_size, 0x10000)
  eq(c.regions[4].name, "FW")
  eq(c.regions[4].address, 0x10000)
  eq(c.regions[4].max_size, 0x80000)
  eq(c.regions[4].file, dir .. "/bin/fw_v2.0.1.bin")
end)

test("CRLF line endings and $(CHIPNAME)", function()
  local text = INI:gsub("fw_v%*%.bin", "fw_$(CHIPNAME).bin"):gsub("\n", "\r\n")
  local ini, dir = release(text)
  helpers.writefile(dir .. "/bin/fw_qcc743.bin", "abc")
  local c = progcfg.load(ini)
  eq(c.regions[4].file, dir .. "/bin/fw_qcc743.bin")
  local e = raises(function() progcfg.load(ini, { chipname = "bl616" }) end, "input")
  match(e.message, "fw_bl616%.bin: missing")
end)

test("an ini written on Windows: backslashes separate, .\\ and ..\\ resolve as with /", function()
  local text = INI:gsub("filedir = %./", "filedir = .\\"):gsub("%.%./fs/", "..\\fs\\")
  match(text, "filedir = %.\\%.%.\\fs\\lfs%.bin")
  local ini, dir = release(text)
  local c = progcfg.load(ini)
  eq(#c.regions, 4)
  eq(c.regions[3].file, dir .. "/fs/lfs.bin")
  eq(c.regions[4].file, dir .. "/bin/fw_v2.0.1.bin")
end)

test("addresses are hex with or without 0x", function()
  local ini = release((INI:gsub("0x100000", "100000"):gsub("address = 0xE000", "address = E000")))
  local c = progcfg.load(ini)
  eq(c.regions[2].address, 0xE000)
  eq(c.regions[3].address, 0x100000)
end)

test("skip_mode pairs", function()
  local ini = release((INI:gsub("erase = 2", "erase = 1"):gsub("0x0, 0x0", "0x1000, 0x2000; 0x20000,0x100")))
  local c = progcfg.load(ini)
  eq(c.erase, 1)
  eq(c.skip, { { address = 0x1000, length = 0x2000 }, { address = 0x20000, length = 0x100 } })
end)

test("skip_mode with chip erase is refused", function()
  local ini = release((INI:gsub("0x0, 0x0", "0x1000, 0x2000")))
  local e = raises(function() progcfg.load(ini) end, "input")
  match(e.message, "skip_mode conflicts with erase = 2")
end)

local function err_of(text, opts)
  local ini = release(text, opts)
  local e = raises(function() progcfg.load(ini) end, "input")
  return e, ini
end

test("wildcard matching two files names both", function()
  local ini, dir = release(INI)
  helpers.writefile(dir .. "/bin/fw_v2.0.2.bin", "x")
  local e = raises(function() progcfg.load(ini) end, "input")
  match(e.message, "prog%.ini:20: %[FW%.filedir%]")
  match(e.message, "matched 2")
end)

test("wildcard matching nothing", function()
  local e = err_of((INI:gsub("fw_v%*", "nope_*")))
  match(e.message, "matched 0")
  eq(e.line, 20)
  eq(e.key, "FW.filedir")
end)

test("missing file names ini, line and key", function()
  local e = err_of((INI:gsub("boot2_v1", "boot2_v9")))
  match(e.message, "prog%.ini:8: %[boot2%.filedir%] file .*boot2_v9%.bin: missing")
end)

test("bad erase value", function()
  local e = err_of((INI:gsub("erase = 2", "erase = 3")))
  match(e.message, "prog%.ini:3: %[cfg%.erase%] expected 0, 1 or 2")
end)

test("bad address", function()
  local e = err_of((INI:gsub("0xE000", "0xZZ")))
  match(e.message, "prog%.ini:13: %[partition%.address%]")
end)

test("@partition before [partition] is refused", function()
  local text = INI:gsub("%[FW%].*$", "")
  text = text:gsub("%[boot2%]", "[FW]\nfiledir = ./fw_v*.bin\naddress = @partition\n\n[boot2]")
  local e = err_of(text)
  match(e.message, "@partition needs a %[partition%] section before it")
end)

test("@partition name absent from the table", function()
  local e = err_of((INI:gsub("%[FW%]", "[APP]")))
  match(e.message, 'no entry "APP" in partition table')
end)

test("@partition with a corrupt table (entries CRC)", function()
  local pt = partition.build(PT)
  pt = pt:sub(1, 19) .. "X" .. pt:sub(21)          -- first entry's name
  local e = err_of(INI, { pt = pt })
  match(e.message, "prog%.ini:12: %[partition%.filedir%]")
  match(e.message, "entries CRC32")
end)

test("image bigger than its partition entry", function()
  local e = err_of(INI, { fw_size = 0x80001 })
  match(e.message, "%[FW%.filedir%] file .* is 524289 bytes, larger than partition entry FW %(524288 bytes")
  e = err_of(INI, { lfs_size = 0x10001 })
  match(e.message, "larger than partition entry media")
end)

test("empty file", function()
  local ini, dir = release(INI)
  helpers.writefile(dir .. "/bin/boot2_v1.bin", "")
  local e = raises(function() progcfg.load(ini) end, "input")
  match(e.message, "is empty")
end)

test("malformed lines", function()
  local e = err_of(INI .. "\njunk line\n")
  match(e.message, "expected key = value")
  e = err_of("key = 1\n" .. INI)
  match(e.message, "prog%.ini:1: %[key%] key outside any section")
  e = err_of(INI .. "\n[FW]\nfiledir=x\naddress=0\n")
  match(e.message, "duplicate section")
end)

test("ST ini files (fixtures)", function()
  if not helpers.have_fixtures() then skip("fixtures absent") end
  local c = progcfg.load(helpers.ncp_binaries .. "/mission_t02_flash_prog_cfg_v2.0.89.ini")
  eq(c.erase, 2)
  local want = { boot2 = 0, partition = 0xE000, littlefs = 0x378000, FW = 0x10000 }
  eq(#c.regions, 4)
  for _, r in ipairs(c.regions) do eq(r.address, want[r.name], r.name) end
  eq(c.regions[4].max_size, 1785856)
  match(c.regions[3].file, "LittleFS/littlefs/littlefs%.bin$")
  c = progcfg.load(helpers.ncp_binaries .. "/mfg_flash_prog_cfg_v2.0.89.ini")
  eq(c.erase, 1)
  eq(#c.regions, 3)
  match(c.regions[3].file, "st67w611m_mfg_v2%.0%.89%.bin$")
end)

test("template substitution (ST v1.3.0 '_vxxx' names) only when the file is absent", function()
  local ini, dir = release((INI:gsub("fw_v%*%.bin", "fw_vxxx.bin")))
  raises(function() progcfg.load(ini) end, "input")
  local c = progcfg.load(ini, { template = { vxxx = "v*" } })
  eq(c.regions[4].file, dir .. "/bin/fw_v2.0.1.bin")
  helpers.writefile(dir .. "/bin/fw_vxxx.bin", "literal")
  c = progcfg.load(ini, { template = { vxxx = "v*" } })
  eq(c.regions[4].file, dir .. "/bin/fw_vxxx.bin")
end)

test("board recipe finds exactly one profile ini", function()
  local flash = require "ncpflash.flash"
  local dir = helpers.tmpdir()
  assert(require("ncpflash.core.sys").mkdirs(dir .. "/Binaries/NCP_Binaries"))
  helpers.writefile(dir .. "/Binaries/NCP_Binaries/mfg_flash_prog_cfg_v2.0.89.ini", "")
  local subdirs = { "", "Binaries/NCP_Binaries" }
  eq(flash.find_file(dir, "^mfg_flash_prog_cfg.*%.ini$", subdirs),
    dir .. "/Binaries/NCP_Binaries/mfg_flash_prog_cfg_v2.0.89.ini")
  helpers.writefile(dir .. "/Binaries/NCP_Binaries/mfg_flash_prog_cfg_v2.0.97.ini", "")
  local e = raises(function() flash.find_file(dir, "^mfg_flash_prog_cfg.*%.ini$", subdirs) end, "input")
  match(e.message, "2 files match")
  e = raises(function() flash.find_file(dir, "^mission_t01_flash.*%.ini$", subdirs) end, "input")
  match(e.message, "no file matching")
end)
