-- The Windows build end to end (make test-win): ncpflash.exe under wine, flashing ncpsim that
-- runs natively, over Winsock (rfc2217://) and over a COM port wine maps to ncpsim's
-- pseudo-terminal; and the Windows-only C primitives inside the .exe.
local sys = require "ncpflash.core.sys"

skip_if(not helpers.windows, "runs under make test-win only (the ncpflash under test is not the .exe)")
skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local SIZE = 4 * 1024 * 1024
local same_flash = helpers.same_flash

-- the image ncpsim's flash should hold: 0xFF with each {address, bytes} region in place
local function expected(regions)
  local img = string.rep("\xFF", SIZE)
  for _, r in ipairs(regions) do img = img:sub(1, r[1]) .. r[2] .. img:sub(r[1] + #r[2] + 1) end
  return img
end

local function t02_ini()
  return helpers.ncp_binaries .. "/mission_t02_flash_prog_cfg_v2.0.89.ini"
end

local function t02_regions()
  local out = {}
  for _, r in ipairs(require("ncpflash.progcfg").load(t02_ini()).regions) do
    out[#out + 1] = { r.address, helpers.readfile(r.file) }
  end
  return out
end

test("ST's t02 set through rfc2217:// (Winsock) to ncpsim: byte-exact", function()
  if not helpers.have_fixtures() then skip("fixtures absent (../shared/fixtures/st67w611m1)") end
  local sim <close> = helpers.ncpsim{}
  ok(sim.url:match("^rfc2217://"), sim.url)
  local r = helpers.run{ "--port", sim.url, "flash", "--config", t02_ini() }
  eq(r.code, 0, r.err)
  match(r.out, "flashed 4 of 4 regions")
  sim:stop()
  same_flash(sim:flash(), expected(t02_regions()))
end)

test("rfc2217:// and socket:// to a closed port: refused at once, naming host:port", function()
  local sim = helpers.ncpsim{}
  local url = sim.url
  sim:stop()   -- nothing listens on that port any more
  for _, u in ipairs{ url, (url:gsub("^rfc2217://", "socket://")) } do
    local t0 = sys.now()
    local r = helpers.run{ "--port", u, "--retries", "1", "info" }
    eq(r.code, 3, r.err)
    match(r.err, "cannot connect to 127%.0%.0%.1:%d+: connection refused")
    ok(sys.now() - t0 < 2.5, "refused promptly, not after the connect timeout")
  end
end)

-- A COM port name in the prefix's dosdevices pointing at ncpsim's pseudo-terminal.
local function com_port(name, pty)
  local prefix = sys.getenv("WINEPREFIX")
  if not prefix or prefix == "" then skip("WINEPREFIX unset (tools/test-win.sh sets it)") end
  local link = prefix .. "/dosdevices/" .. name:lower()
  os.remove(link)
  local target = sys.realpath(pty)
  eq(os.execute(("ln -s '%s' '%s'"):format(target, link)), true, "ln -s " .. target)
  return setmetatable({ link = link }, { __close = function(c) os.remove(c.link) end })
end

test("COM38 mapped to ncpsim --pty: a synthetic set flashed byte-exact, lines warned once", function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--pty", dir .. "/tty" }
  local _com <close> = com_port("COM38", sim.url) -- luacheck: ignore 211 (held for its __close)
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(96 * 1024, 38))
  local r = helpers.run{ "--port", "COM38", "--load-baud", "500000", "flash", "0x10000", fw }
  eq(r.code, 0, r.err)
  match(r.out, "flashed 1 of 1 regions")
  -- wine's serial driver refuses DTR/RTS on a pty (ERROR_NOT_SUPPORTED): said, not fatal
  match(r.err, "DTR")
  sim:stop()
  same_flash(sim:flash(), expected{ { 0x10000, helpers.readfile(fw) } })
  -- the long name form reaches the same port
  local sim2 <close> = helpers.ncpsim{ "--pty", dir .. "/tty2" }
  local _com2 <close> = com_port("COM38", sim2.url) -- luacheck: ignore 211 (held for its __close)
  local r2 = helpers.run{ "--port", "\\\\.\\COM38", "--load-baud", "500000", "info", "--no-images" }
  eq(r2.code, 0, r2.err)
end)

test("ST's t02 set through COM38: byte-exact", function()
  if not helpers.have_fixtures() then skip("fixtures absent (../shared/fixtures/st67w611m1)") end
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--pty", dir .. "/tty" }
  local _com <close> = com_port("COM38", sim.url) -- luacheck: ignore 211 (held for its __close)
  local r = helpers.run({ "--port", "COM38", "--load-baud", "500000", "flash", "--config", t02_ini() },
    { timeout = 300 })
  eq(r.code, 0, r.err)
  match(r.out, "flashed 4 of 4 regions")
  sim:stop()
  same_flash(sim:flash(), expected(t02_regions()))
end)

test("an ini written on Windows: .\\ and ..\\ paths and a drive letter, flashed byte-exact", function()
  local dir = helpers.tmpdir() .. "/Binaries"
  assert(sys.mkdirs(dir .. "/NCP/bin"))
  assert(sys.mkdirs(dir .. "/fs"))
  local boot2 = helpers.writefile(dir .. "/NCP/bin/boot2.bin", helpers.random_bytes(9000, 21))
  local fw = helpers.writefile(dir .. "/NCP/bin/fw.bin", helpers.random_bytes(70000, 22))
  local fs = helpers.writefile(dir .. "/fs/lfs.bin", helpers.random_bytes(5000, 23))
  local drive = "Z:" .. fw:gsub("/", "\\")   -- wine's Z: is the Linux root
  local ini = helpers.writefile(dir .. "/NCP/prog.ini", table.concat({
    "[cfg]", "erase = 1", "",
    "[boot2]", "filedir = .\\bin\\boot2.bin", "address = 0x0", "",
    "[FW]", "filedir = " .. drive, "address = 0x10000", "",
    "[media]", "filedir = .\\..\\fs\\lfs.bin", "address = 0x100000", "" }, "\r\n"))
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "--config", ini }
  eq(r.code, 0, r.err)
  match(r.out, "flashed 3 of 3 regions")
  sim:stop()
  same_flash(sim:flash(), expected{ { 0, helpers.readfile(boot2) }, { 0x10000, helpers.readfile(fw) },
    { 0x100000, helpers.readfile(fs) } })
end)

test("a missing COM port names the ports that exist; ports lists what Windows knows", function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--pty", dir .. "/tty" }
  local _com <close> = com_port("COM38", sim.url) -- luacheck: ignore 211 (held for its __close)
  local r = helpers.run{ "--port", "COM97", "info" }
  eq(r.code, 3)
  match(r.err, "no such port COM97")
  -- wine's SetupAPI lists no ports and its DOS device list leaves out the dosdevices links, so
  -- only SERIALCOMM's COM1 shows here; descriptions, VID:PID and serial numbers are untestable
  local l = helpers.run{ "--json", "ports" }
  eq(l.code, 0, l.err)
  match(l.out, '"ports":%[')
  local bad = helpers.run{ "--port", "/dev/ttyUSB0", "info" }
  eq(bad.code, 3)
  match(bad.err, "Windows names serial ports COM3")
end)

test("a second open of a busy COM port", function()
  skip("wine allows a second exclusive open of a COM port (ERROR_ACCESS_DENIED -> 'busy' is untestable here)")
end)

test("DTR/RTS on a real COM port", function()
  skip("wine cannot give modem lines on a COM port (EscapeCommFunction -> ERROR_NOT_SUPPORTED on a pty)")
end)

-- in-process: these run inside ncpflash.exe (the runner defers them there)

test("sys.replace replaces an existing file atomically (MoveFileEx)", function()
  local dir = helpers.tmpdir()
  local a, b = helpers.writefile(dir .. "/new", "new\n"), helpers.writefile(dir .. "/old", "old\n")
  ok(sys.replace(a, b))
  eq(helpers.readfile(b), "new\n")
  eq(io.open(a), nil, "the source is gone")
  local okr, err = sys.replace(dir .. "/absent", b)
  eq(okr, nil)
  match(err, "absent")
  eq(helpers.readfile(b), "new\n", "a failed replace leaves the target")
end)

test("files are written in binary mode: \\n stays one byte", function()
  local dir = helpers.tmpdir()
  local f = assert(io.open(dir .. "/t", "w"))
  f:write("a\nb\n")
  f:close()
  eq(#helpers.readfile(dir .. "/t"), 4)
end)

test("sys.platform, path_sep, mkdirs with backslashes and a drive letter", function()
  if not helpers.in_windows then return end -- the native pass: the runner runs it in the .exe
  eq(sys.platform, "windows")
  eq(sys.path_sep, "\\")
  local dir = sys.realpath(helpers.tmpdir())
  match(dir, "^%a:\\")
  ok(sys.mkdirs(dir .. "\\a\\b/c"))
  eq(sys.stat(dir .. "/a/b/c").type, "dir")
end)

test("sys.spawn runs a program and a cmd.exe command line; wait reports the exit status", function()
  if not helpers.in_windows then return end -- the native pass: the runner runs it in the .exe
  local dir = helpers.tmpdir()
  local pid = assert(sys.spawn("exit 7", { stdout = "null" }))
  eq(sys.wait(pid, 10), 7)
  local out = dir .. "/o"
  pid = assert(sys.spawn({ "cmd.exe", "/c", "echo", "a b" }, { stdout = out }))
  eq(sys.wait(pid, 10), 0)
  match(helpers.readfile(out), "a b")
  local none, err = sys.spawn({ "no-such-program-here.exe" })
  eq(none, nil)
  match(err, "no%-such%-program%-here%.exe")
end)
