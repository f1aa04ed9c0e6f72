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
