-- Issue 13 (integrity): bad input changes nothing, and the tests themselves can fail.
-- Items 8-12, 14, 15 and the small ones of 17; each test names its item.
local util = require "ncpflash.util"
local errors = require "ncpflash.errors"
local testlib = require "testlib"

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
