-- Issue 13 (integrity): bad input changes nothing, and the tests themselves can fail.
-- Items 8-12, 14, 15 and the small ones of 17; each test names its item.
local util = require "ncpflash.util"
local errors = require "ncpflash.errors"
local testlib = require "testlib"
local sys = require "ncpflash.core.sys"

-- item 15: raises() matches an error code exactly; a pattern only matches the message
test("15: raises() with a code needs exactly that code, not the word anywhere in the message", function()
  local function port_text() errors.raise("input", "cannot open serial port /dev/x: no such file") end
  local ok, why = pcall(testlib.raises, port_text, "port")
  ok = ok and false or true
  eq(ok, true, "raises(fn, 'port') must fail on an input error whose text says 'port'")
  match(tostring(why), 'expected error code "port", got %[input%]')
  local e = testlib.raises(port_text, "input")
  eq(e.code, "input")
  -- a code and a message pattern together
  testlib.raises(port_text, "input", "no such file")
  local ok2 = pcall(testlib.raises, port_text, "input", "permission denied")
  eq(ok2, false, "the pattern must match as well")
  -- plain string errors (misuse) are matched by pattern
  testlib.raises(function() error("isp.frame: command 0..255") end, "0..255")
  local ok3 = pcall(testlib.raises, function() error("timeout waiting") end, "timeout")
  eq(ok3, false, "a code never matches a plain string error")
end)

test("15: util.dirname keeps the root", function()
  eq(util.dirname("/x"), "/")
  eq(util.dirname("/a/b"), "/a")
  eq(util.dirname("b"), ".")
  eq(util.dirname("a/b/"), "a/b")
end)

-- item 8: ini files are read as the vendor tool reads them, and nothing silently wins
local function ini_set(dir, lines)
  helpers.writefile(dir .. "/a.bin", helpers.random_bytes(5000, 1))
  helpers.writefile(dir .. "/b.bin", helpers.random_bytes(6000, 2))
  return helpers.writefile(dir .. "/x.ini", table.concat(lines, "\n") .. "\n")
end

test("8: a duplicate key in a section is refused (exit 7), both lines named", function()
  local dir = helpers.tmpdir()
  local ini = ini_set(dir, { "[cfg]", "erase = 1", "", "[mfg]", "filedir = ./a.bin", "address = 0x1C4000",
    "address = 0x378000", "" })
  local r = helpers.run{ "--port", "socket://127.0.0.1:1", "flash", "--config", ini }
  eq(r.code, 7, r.err)
  match(r.err, "x%.ini:7: %[mfg%] duplicate key address %(first at line 6%)")
  -- in [cfg] too
  ini = ini_set(dir, { "[cfg]", "erase = 1", "erase = 2", "[A]", "filedir = ./a.bin", "address = 0x10000" })
  r = helpers.run{ "--port", "socket://127.0.0.1:1", "flash", "--config", ini }
  eq(r.code, 7, r.err)
  match(r.err, "x%.ini:3: %[cfg%] duplicate key erase %(first at line 2%)")
end)

test("8: numbers as the vendor tool reads them: a decimal-looking address is hex, and ncpflash says so", function()
  local dir = helpers.tmpdir()
  local ini = ini_set(dir, { "[cfg]", "erase = 1", "[A]", "filedir = ./a.bin", "address = 65536" })
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "--config", ini }
  match(r.err, "x%.ini:5: %[A%.address%] \"65536\" is read as hex 0x65536, as the vendor tool reads addresses")
  match(r.err, "0x65536 is not 4 KiB%-aligned")
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(0x65536 + 1, 0x65536 + 5000), helpers.readfile(dir .. "/a.bin"), "flashed at 0x65536")
end)

test("8: a partition table at an address boot2 does not read is refused (exit 7)", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/partition.bin", require("synth").partition_table())
  local ini = ini_set(dir, { "[cfg]", "erase = 1", "[partition]", "filedir = ./partition.bin", "address = 0xE100" })
  local r = helpers.run{ "--port", "socket://127.0.0.1:1", "flash", "--config", ini }
  eq(r.code, 7, r.err)
  match(r.err, "x%.ini:5: %[partition%.address%] 0xE100: the partition table goes at 0xE000 or 0xF000")
end)

-- item 9: usage errors before any connection; print what was erased
local NOWHERE = "socket://127.0.0.1:1"   -- any connection attempt fails with exit 3

test("9: usage errors are found before any connection (exit 2, no traceback)", function()
  local dir = helpers.tmpdir()
  for _, argv in ipairs({ { "erase" }, { "erase", "0", "0" }, { "erase", "0x1000" }, { "--baud", "0", "info" },
      { "--load-baud", "-5", "info" }, { "--baud", "99999999", "info" } }) do
    local full = { "--port", NOWHERE }
    table.move(argv, 1, #argv, #full + 1, full)
    local r = helpers.run(full)
    eq(r.code, 2, table.concat(argv, " ") .. ": " .. r.err)
    nomatch(r.err, "traceback")
    nomatch(r.err, "cannot connect")
  end
  -- a directory where a file is wanted: a bad input file, before connecting
  local r = helpers.run{ "--port", NOWHERE, "flash", "--config", dir }
  eq(r.code, 7, r.err)
  match(r.err, "is a directory")
end)

test("9: erase prints the sectors it erased, not the bytes asked for", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "erase", "0x1001", "10" }
  eq(r.code, 0, r.err)
  match(r.out, "erased 0x1000%.%.0x1FFF %(4096 bytes, whole 4 KiB sectors; asked 0x1001%.%.0x100A%)")
end)

-- item 10: --json is valid UTF-8, binary junk never reaches the terminal raw
local function valid_utf8(s) return utf8.len(s) ~= nil end

test("10: a binary file named as an ini: exit 7, valid JSON, no raw bytes on the terminal", function()
  local dir = helpers.tmpdir()
  local junk = helpers.writefile(dir .. "/junk.ini",
    "\255\254\0[cfg\128\1\2 = \200\201\n" .. helpers.random_bytes(300, 4))
  local r = helpers.run{ "--json", "--port", NOWHERE, "flash", "--config", junk }
  eq(r.code, 7)
  for line in r.out:gmatch("[^\n]+") do
    ok(valid_utf8(line), "valid UTF-8: " .. line:sub(1, 80))
    helpers.json_decode(line)
  end
  r = helpers.run{ "--port", NOWHERE, "flash", "--config", junk }
  eq(r.code, 7)
  match(r.err, "junk%.ini: not a text file")
  ok(not r.err:find("[^\n\t\32-\126]"), "only printable ASCII on stderr: " .. r.err)
end)

test("10: json.encode escapes bytes that are not UTF-8", function()
  local json = require "ncpflash.json"
  local s = json.encode({ m = "caf\xC3\xA9 \xFF\x80 ok" })
  ok(valid_utf8(s), s)
  eq(json.decode(s).m, "caf\xC3\xA9 \xC3\xBF\xC2\x80 ok", "invalid bytes become their Latin-1 characters")
end)

-- item 11: sizes are checked before anything is read
local function run_measured(argv)
  local dir = helpers.tmpdir()
  local cmd = helpers.ncpflash_argv(argv)
  local t0 = sys.now()
  local pid = assert(sys.spawn(cmd, { stdout = dir .. "/out", stderr = dir .. "/err", stdin = "null" }))
  local code, ru = sys.wait(pid, 60)
  if not code then sys.kill(pid, "KILL"); sys.wait(pid, 5) end
  return { code = code, err = helpers.readfile(dir .. "/err"), seconds = sys.now() - t0,
    rss = ru and ru.maxrss_kib }
end

test("11: /dev/zero, a sparse 8 GB file and a 200 MB ini are refused without reading them", function()
  local dir = helpers.tmpdir()
  -- a child's peak RSS includes what it shared with this (large) process before exec: compare
  -- with a run that reads nothing
  local base = run_measured{ "--version" }.rss or 0
  -- a wine process's peak memory says nothing about ncpflash.exe's; /dev/zero is a Linux device
  local linux = not helpers.windows
  local r
  if linux then
    r = run_measured{ "--port", NOWHERE, "flash", "0x0", "/dev/zero" }
    eq(r.code, 7, r.err)
    match(r.err, "/dev/zero: not a regular file")
  end
  local big = dir .. "/sparse.bin"
  local f = assert(io.open(big, "wb"))
  f:seek("set", 8 * 1024 * 1024 * 1024)
  f:write("x")
  f:close()
  r = run_measured{ "--port", NOWHERE, "flash", "0x0", big }
  eq(r.code, 7, r.err)
  match(r.err, "sparse%.bin is 8589934593 bytes")
  ok(r.seconds < 10, ("refused in %.1f s"):format(r.seconds))
  ok(not linux or r.rss and r.rss < base + 64 * 1024, ("peak memory %s KiB (a run reading nothing: %d)")
    :format(tostring(r.rss), base))
  local ini = dir .. "/huge.ini"
  f = assert(io.open(ini, "wb"))
  f:write("[cfg]\n")
  f:seek("set", 200 * 1024 * 1024)
  f:write("\n")
  f:close()
  r = run_measured{ "--port", NOWHERE, "flash", "--config", ini }
  eq(r.code, 7, r.err)
  match(r.err, "huge%.ini is 209715201 bytes, more than an ini file can be")
  ok(not linux or r.rss and r.rss < base + 64 * 1024, ("peak memory %s KiB (a run reading nothing: %d)")
    :format(tostring(r.rss), base))
end)

-- item 12: --log-dir never overwrites a log
test("12: --log-dir: runs in the same second never overwrite each other's logs", function()
  local dir = helpers.tmpdir()
  local logs = dir .. "/logs"
  sys.mkdirs(logs)
  -- decoys where the names of this second and the next ones would go
  local now = os.time()
  local decoys = {}
  for k = 0, 10 do
    local st = os.date("!%Y%m%dT%H%M%SZ", now + k)
    for _, n in ipairs({ "40827b03d2dc_" .. st .. ".log", "40827b03d2dc_" .. st .. "_1.log",
        "40827b03d2dc_" .. st .. ".trace", st .. "_1_127.0.0.1.log" }) do
      decoys[#decoys + 1] = helpers.writefile(logs .. "/" .. n, "DECOY " .. n)
    end
  end
  local sim <close> = helpers.ncpsim{}
  for _ = 1, 3 do
    local r = helpers.run{ "--port", sim.url, "--log-dir", logs, "info" }
    eq(r.code, 0, r.err .. r.out)
  end
  for _, p in ipairs(decoys) do
    match(helpers.readfile(p), "^DECOY", p .. " kept")
  end
  local n = 0
  for _, name in ipairs(sys.listdir(logs)) do
    if name:match("%.log$") and not helpers.readfile(logs .. "/" .. name):match("^DECOY") then n = n + 1 end
  end
  eq(n, 3, "three runs, three logs")
end)

-- item 14: only the documented folders of the config dir shadow library modules
test("14: a stray $XDG_CONFIG_HOME/ncpflash/NAME.lua does not shadow ncpflash.NAME", function()
  local xdg = helpers.tmpdir()
  sys.mkdirs(xdg .. "/ncpflash/ncpflash")
  for _, p in ipairs({ "/ncpflash/flash.lua", "/ncpflash/util.lua", "/ncpflash/ncpflash/header.lua" }) do
    helpers.writefile(xdg .. p, 'error("stray file ' .. p .. ' was loaded")\n')
  end
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/d.bin", helpers.random_bytes(5000, 3))
  local sim <close> = helpers.ncpsim{}
  local env = { env = { XDG_CONFIG_HOME = xdg } }
  eq(helpers.run({ "--port", sim.url, "flash", "0x10000", f }, env).code, 0)
  local r = helpers.run({ "--port", sim.url, "verify", "0x10000", f }, env)
  eq(r.code, 0, r.err)
  -- the documented folders still work: a user board
  sys.mkdirs(xdg .. "/ncpflash/boards")
  helpers.writefile(xdg .. "/ncpflash/boards/myb.lua", 'local b = {}\n'
    .. 'for k, v in pairs(require("ncpflash.boards.st67w611m1")) do b[k] = v end\n'
    .. 'b.name, b.description = "myb", "a user board"\nreturn b\n')
  r = helpers.run({ "--port", sim.url, "--board", "myb", "verify", "0x10000", f }, env)
  eq(r.code, 0, r.err)
end)

-- item 17: the small ones
test("17: a mistyped global option gets a suggestion; a bad --reset value says what is wrong", function()
  local r = helpers.run{ "--prot", NOWHERE, "info" }
  eq(r.code, 2, r.err)
  match(r.err, "unknown option %-%-prot %(did you mean %-%-port%?%)")
  r = helpers.run{ "--reset", "bogus", "--port", NOWHERE, "info" }
  eq(r.code, 2, r.err)
  nomatch(r.err, "needs a value")
  match(r.err, "%-%-reset: \"bogus\" is not a reset strategy")
end)

test("17: a regular file as the port, and a --lua-path that is not a directory, are named as such", function()
  local r = helpers.run{ "--port", "/etc/passwd", "info" }
  eq(r.code, 3, r.err)
  match(r.err, "/etc/passwd is a regular file, not a serial port")
  r = helpers.run{ "--lua-path", "/nonexistent", "--port", NOWHERE, "info" }
  eq(r.code, 2, r.err)
  match(r.err, "%-%-lua%-path /nonexistent: not a directory")
end)

test("17: a --provision script that raises is a bad input file (exit 7)", function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(5000, 1))
  local prov = helpers.writefile(dir .. "/p.lua", 'return function(dev) error("no row for " .. dev.mac) end\n')
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "--provision", prov, "0x10000", fw }
  eq(r.code, 7, r.err)
  match(r.err, "p%.lua: .*no row for")
end)

test("17: --chip bl808 on a BL616 names the mismatch", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "--chip", "bl808", "info" }
  eq(r.code, 2, r.err)
  nomatch(r.err, "unexpected reply length")
  match(r.err, "%-%-chip bl808: the chip sent a 28%-byte boot info, a bl808 sends 24")
  match(r.err, "bl616")
end)

test("17: probe prints each attempt once", function()
  -- an application in flash that the reset lines cannot get past (BOOT unwired, strap flash)
  local dir = helpers.tmpdir()
  sys.mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/flash.bin", "BFNP" .. string.rep("\255", 4 * 1024 * 1024 - 4))
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state", "--wiring", "rts=en,dtr=none", "--strap", "flash" }
  local r = helpers.run({ "--port", sim.url, "probe", "--no-ladder" }, { timeout = 60 })
  ok(r.code ~= 0)
  local seen = {}
  for line in r.out:gmatch("[^\n]+") do
    local n = line:match("^attempt (%d+) ")
    if n then
      ok(not seen[n], "attempt " .. n .. " printed twice:\n" .. r.out)
      seen[n] = true
    end
  end
  ok(seen["1"], r.out)
end)

test("17: progress without a terminal comes in 25 % steps", function()
  local dir = helpers.tmpdir()
  local data = helpers.compressible_bytes(200000, 3) .. string.rep("\255", 65536) .. helpers.random_bytes(90000, 4)
  local f = helpers.writefile(dir .. "/p.bin", data)
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  eq(r.code, 0, r.err)
  local n = 0
  for pct in r.out:gmatch("\n    p%.bin (%d+)%% ") do
    n = n + 1
    eq(tonumber(pct) % 25, 0, "progress line at " .. pct .. "%:\n" .. r.out)
  end
  ok(n >= 2, r.out)
end)

test("17: docs/api/ncpsim.md lists each fault once, and every fault ncpsim knows", function()
  local doc = helpers.readfile(helpers.root .. "/docs/api/ncpsim.md")
  local faults = doc:match("\n## Faults\n(.-)\n## ")
  local seen = {}
  for spec in faults:gmatch("\n| `([%w%-]+)") do
    ok(not seen[spec], "fault " .. spec .. " has two rows")
    seen[spec] = true
  end
  local dir = helpers.tmpdir()
  local pid = sys.spawn({ helpers.build .. "/ncpsim", "--help" }, { stdout = dir .. "/h", stderr = dir .. "/h2" })
  sys.wait(pid, 10)
  local help = helpers.readfile(dir .. "/h") .. helpers.readfile(dir .. "/h2")
  for spec in help:match("Faults %(%-%-fault SPEC.-\n(.*)$"):gmatch("\n  ([%w%-]+)[%[:%s]") do
    ok(seen[spec], "fault " .. spec .. " (ncpsim --help) is not in docs/api/ncpsim.md")
  end
end)
