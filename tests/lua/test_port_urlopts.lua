-- rfc2217:// URL options (?ign_set_control&timeout=S), the form labgrid's SerialDriver builds for
-- ser2net; docs/api/port.md "RFC 2217 notes".
local port = require "ncpflash.core.port"
local sys = require "ncpflash.core.sys"

if sys.stat(helpers.ncppeer) == nil then
  skip_if(true, "build/tests/ncppeer not built")
end

local function rfc_url(p) return (p.url:gsub("^socket://", "rfc2217://")) end

local function peer_has(p, want)
  local deadline = sys.now() + 3
  repeat
    if ("\n" .. helpers.readfile(p.log)):find("\n" .. want .. "\n", 1, true) then return true end
    sys.sleep(0.02)
  until sys.now() > deadline
  return false
end

test("?ign_set_control: a server that never answers SET-CONTROL still gets the lines, without a wait", function()
  local pr <close> = helpers.peer{ "--rfc2217", "0", "--no-control-ack", "--echo" }
  local p <close> = port.open(rfc_url(pr) .. "?ign_set_control&timeout=3.0")
  local t0 = sys.now()
  eq(p:set_dtr(true), true)
  eq(p:set_lines{ rts = true }, true)
  ok(sys.now() - t0 < 0.1, "no wait for the answer: " .. (sys.now() - t0))
  eq(p:info().lines, true, "lines still count as usable")
  ok(peer_has(pr, "dtr 1"), "DTR reached the server")
  ok(peer_has(pr, "rts 1"), "RTS reached the server")
  p:write("abc")
  eq(p:read(3, 2), "abc")
end)

test("without the option the same server costs one short wait and marks the lines unusable", function()
  local pr <close> = helpers.peer{ "--rfc2217", "0", "--no-control-ack" }
  local p <close> = port.open(rfc_url(pr))
  eq((p:set_dtr(true)), false)
  eq(p:info().lines, false)
end)

test("bad URL options are usage errors naming the option and the ones that exist", function()
  for _, q in ipairs{ "?bogus", "?timeout=abc", "?timeout=", "?timeout=0", "?ign_set_control&poll" } do
    local e = raises(function() port.open("rfc2217://127.0.0.1:9" .. q) end, "usage")
    eq(e.reason, "url", q)
    match(e.message, "ign_set_control and timeout=SECONDS", q)
  end
end)

test("flash through rfc2217://HOST:PORT?ign_set_control&timeout=3.0 lands the bytes", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(12 * 1024, 19)
  helpers.writefile(dir .. "/fw.bin", fw)
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url .. "?ign_set_control&timeout=3.0", "flash", "0x20000", dir .. "/fw.bin" }
  eq(r.code, 0, r.err)
  nomatch(r.err, "reset lines", "the reset ran on the lines")
  sim:stop()
  eq(sim:flash():sub(0x20000 + 1, 0x20000 + #fw), fw)
end)
