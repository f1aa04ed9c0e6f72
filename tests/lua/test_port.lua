-- ncpflash.core.port: the transports against build/tests/ncppeer (a raw TCP
-- and RFC 2217 peer written for these tests) and a socat pty pair.
local port = require "ncpflash.core.port"
local sys = require "ncpflash.core.sys"

local PEER = helpers.ncppeer
local spawn, peer = helpers.spawn, helpers.peer

-- The peer's log lines, once `want` (a plain line) is there or 3 s passed.
local function log_lines(p, want)
  local deadline = sys.now() + 3
  local text
  repeat
    text = helpers.readfile(p.log)
    if not want or ("\n" .. text):find("\n" .. want .. "\n", 1, true) then break end
    sys.sleep(0.02)
  until sys.now() > deadline
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  return lines, text
end

local function has_line(p, want)
  local _, text = log_lines(p, want)
  return ("\n" .. text):find("\n" .. want .. "\n", 1, true) ~= nil
end

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

local ALL = {}
for i = 0, 255 do ALL[#ALL + 1] = string.char(i) end
ALL = table.concat(ALL)

if sys.stat(PEER) == nil then
  skip_if(true, "build/tests/ncppeer not built")
end

for _, kind in ipairs{ "rfc2217", "raw" } do
  test(kind .. ": bytes both ways, including 0xFF", function()
    local pr <close> = peer{ "--" .. kind, "0", "--echo" }
    local p <close> = port.open(pr.url)
    eq(p:info().kind, kind == "raw" and "socket" or "rfc2217")
    p:write(ALL)
    eq(p:read(256, 3), ALL)
    p:write("\255\255\255")
    eq(p:read(3, 3), "\255\255\255")
    p:close()
    ok(has_line(pr, "data " .. hex("\255\255\255")), "peer saw the 0xFF bytes once each")
    local _, text = log_lines(pr, "disconnect")
    local got = {}
    for h in text:gmatch("data (%x+)") do got[#got + 1] = h end
    eq(table.concat(got), hex(ALL) .. "ffffff")
  end)

  test(kind .. ": 256 KiB of random bytes (many 0xFF) round-trip intact", function()
    local pr <close> = peer{ "--" .. kind, "0", "--echo" }
    local p <close> = port.open(pr.url, { baud = 2000000 })
    local data = helpers.random_bytes(256 * 1024, 99):gsub("[\0-\31]", "\255")
    local back = {}
    for i = 1, #data, 16384 do
      local chunk = data:sub(i, i + 16383)
      p:write(chunk)
      back[#back + 1] = p:read(#chunk, 5)
    end
    eq(table.concat(back), data)
  end)

  test(kind .. ": read timeout returns a short string", function()
    local pr <close> = peer{ "--" .. kind, "0", "--send", "414243" }
    local p <close> = port.open(pr.url)
    local t0 = sys.now()
    eq(p:read(10, 0.3), "ABC")
    local dt = sys.now() - t0
    ok(dt >= 0.25 and dt < 1.5, "waited about the timeout: " .. dt)
    eq(p:read(1, 0), "")
  end)

  test(kind .. ": peer disconnect mid-read is a clean port error", function()
    local pr <close> = peer{ "--" .. kind, "0", "--close-after", "2" }
    local p <close> = port.open(pr.url)
    p:write("hi")
    local t0 = sys.now()
    local e = raises(function() p:read(10, 5) end, "port")
    ok(sys.now() - t0 < 3, "did not wait for the whole timeout")
    match(e.message, "closed")
    eq(e.url, pr.url)
  end)

  test(kind .. ": expect consumes up to the match and keeps the rest", function()
    local pr <close> = peer{ "--" .. kind, "0", "--send", hex("boot>OK\255tail") }
    local p <close> = port.open(pr.url)
    local found, seen = p:expect("OK", 2)
    eq(found, true)
    eq(seen, "boot>OK")
    eq(p:read(5, 1), "\255tail")
    local f2, seen2 = p:expect("never", 0.2)
    eq(f2, false)
    eq(seen2, "")
  end)
end

test("rfc2217: baud, lines, purge and break reach the peer", function()
  local pr <close> = peer{ "--rfc2217", "0" }
  local p <close> = port.open(pr.url, { baud = 115200 })
  eq(p:baud(), 115200)
  eq(p:set_baud(2000000), true)
  eq(p:baud(), 2000000)
  eq(p:set_dtr(true), true)
  eq(p:set_rts(false), true)
  eq(p:set_lines{ dtr = false, rts = true }, true)
  p:flush_input()
  eq(p:send_break(0.01), true)
  eq(p:info().lines, true)
  p:close()
  local lines = log_lines(pr, "disconnect")
  local want = { "baud 115200", "datasize 8", "parity 1", "stopsize 1", "baud 2000000",
    "dtr 1", "rts 0", "dtr 0", "rts 1", "purge 1", "break 1", "break 0" }
  local got = {}
  for _, l in ipairs(lines) do
    if not l:match("^option") and l ~= "connect" and l ~= "disconnect" then got[#got + 1] = l end
  end
  eq(got, want)
  ok(has_line(pr, "option WILL 44"), "client offered COM-PORT-OPTION")
end)

test("rfc2217: notifications interleaved with data are not data", function()
  local pr <close> = peer{ "--rfc2217", "0", "--notify", "--echo" }
  local p <close> = port.open(pr.url)
  p:write("0123456789\255")
  eq(p:read(11, 2), "0123456789\255")
  eq(p:read(1, 0.1), "")
end)

test("rfc2217: a server that never acknowledges SET-CONTROL gives a warning, not a hang", function()
  local pr <close> = peer{ "--rfc2217", "0", "--no-control-ack", "--echo" }
  local p <close> = port.open(pr.url)
  local t0 = sys.now()
  local okv, why = p:set_dtr(true)
  local dt = sys.now() - t0
  eq(okv, false)
  match(why, "SET%-CONTROL")
  ok(dt < 0.6, "waited briefly: " .. dt)
  t0 = sys.now()
  local ok2, why2 = p:set_lines{ dtr = false, rts = false }
  eq(ok2, false)
  ok(why2 ~= nil)
  ok(sys.now() - t0 < 0.1, "second time does not wait")
  eq(p:info().lines, false)
  p:write("still works")
  eq(p:read(11, 2), "still works")
  ok(has_line(pr, "rts 0"), "commands were still sent")
end)

test("socket://: baud and lines are reported unsupported", function()
  local pr <close> = peer{ "--raw", "0" }
  local p <close> = port.open(pr.url)
  local okv, why = p:set_dtr(true)
  eq(okv, false)
  match(why, "modem lines")
  okv, why = p:set_baud(921600)
  eq(okv, false)
  ok(why)
  eq(p:info().lines, false)
end)

test("rfc2217:// to a raw TCP port fails clearly", function()
  local pr <close> = peer{ "--raw", "0" }
  local url = pr.url:gsub("^socket", "rfc2217")
  local e = raises(function() port.open(url, { connect_timeout = 0.3 }) end, "port")
  eq(e.reason, "protocol")
  match(e.message, "socket://")
end)

test("connection refused names host:port", function()
  -- a port that was just free: bind, learn it, stop the peer
  local pr = peer{ "--raw", "0" }
  pr:stop()
  local hostport = pr.url:match("//(.*)$")
  local e = raises(function() port.open("rfc2217://" .. hostport) end, "port")
  eq(e.reason, "refused")
  match(e.message, hostport:gsub("%p", "%%%0"))
  e = raises(function() port.open("socket://" .. hostport) end, "port")
  eq(e.reason, "refused")
end)

test("malformed URLs are usage errors", function()
  eq(raises(function() port.open("rfc2217://nohost") end, "usage").reason, "url")
  eq(raises(function() port.open("socket://h:99999") end, "usage").reason, "url")
  eq(raises(function() port.open("ftp://x:1") end, "usage").reason, "url")
end)

test("opening a missing port names it and lists the ports that exist", function()
  local e = raises(function() port.open("/dev/ttyNOPE42") end, "port")
  eq(e.reason, "missing")
  match(e.message, "/dev/ttyNOPE42")
  local names = {}
  for _, d in ipairs(port.list()) do names[#names + 1] = d.name end
  if #names > 0 then
    match(e.message, names[1]:gsub("%p", "%%%0"))
  else
    match(e.message, "none found")
  end
end)

test("port.list() returns a table of ports", function()
  local list = port.list()
  eq(type(list), "table")
  for i, d in ipairs(list) do
    eq(type(d.name), "string")
    if i > 1 then ok(list[i - 1].name <= d.name, "sorted by name") end
    if d.vid then eq(math.type(d.vid), "integer") end
  end
end)

test("close contract: double close, use after close, <close>, gc", function()
  local pr <close> = peer{ "--raw", "0", "--serve", "3" }
  local p = port.open(pr.url)
  eq(getmetatable(p), "ncpflash.port")
  p:close()
  p:close()
  raises(function() p:read(1, 0) end, "closed port")
  raises(function() p:write("x") end, "closed port")
  raises(function() p:info() end, "closed port")
  match(tostring(p), "closed")
  local kept
  do
    local q <close> = port.open(pr.url)
    kept = q
    eq(q:info().kind, "socket")
  end
  raises(function() kept:read(1, 0) end, "closed port")
  do port.open(pr.url) end -- dropped without close: __gc releases it
  collectgarbage(); collectgarbage()
  ok(has_line(pr, "disconnect"))
end)

test("trace: hex with timestamps and direction, plus notes", function()
  local pr <close> = peer{ "--rfc2217", "0", "--echo" }
  local file = helpers.tmpdir() .. "/trace.txt"
  do
    local p <close> = port.open(pr.url, { trace = file, trace_label = "dut" })
    p:write("\1\255")
    eq(p:read(2, 2), "\1\255")
    p:set_baud(460800)
    p:set_dtr(true)
  end
  local t = helpers.readfile(file)
  match(t, "^%s*%d+%.%d%d%d %[dut%] %-%- open rfc2217://")
  match(t, "\n%s*%d+%.%d%d%d %[dut%] TX 2: 01 ff\n")
  match(t, "\n%s*%d+%.%d%d%d %[dut%] RX 2: 01 ff\n")
  match(t, "%-%- baud 460800")
  match(t, "%-%- lines dtr=1")
  match(t, "%-%- close\n$")
end)

test("pty pair (socat): data both ways, baud accepted, lines unsupported", function()
  local s <close> = helpers.pty_pair() or skip("socat not installed")
  local a, b = s.a, s.b
  ok(sys.stat(a) and sys.stat(b), "socat made the pty links")
  local pa <close> = port.open(a, { baud = 115200 })
  local pb <close> = port.open(b)
  eq(pa:info().kind, "pty")
  pa:write(ALL)
  eq(pb:read(256, 3), ALL)
  pb:write("pong\255")
  eq(pa:read(5, 3), "pong\255")
  eq(pa:set_baud(2000000), true)
  eq(pa:baud(), 2000000)
  local okv, why = pa:set_dtr(true)
  eq(okv, false)
  match(why, "modem lines")
  eq(pa:info().lines, false)
  eq(pa:drain(1), true)
  eq(pa:read(1, 0.05), "")
  -- busy: a second open of the same pty is refused
  local e = raises(function() port.open(a) end, "port")
  eq(e.reason, "busy")
  -- the other side going away is a clean error
  s:stop()
  local e2 = raises(function() pa:read(1, 2) end, "port")
  match(e2.message, "closed")
end)

test("SIGINT during a long read ends it promptly with exit 130", function()
  local pr <close> = peer{ "--raw", "0" }
  local dir = helpers.tmpdir()
  local script = helpers.writefile(dir .. "/wait.lua", ([[
    local p <close> = require("ncpflash.core.port").open(%q)
    io.stdout:write("open\n"); io.stdout:flush()
    p:read(1, 20)
  ]]):format(pr.url))
  local child <close> = spawn(helpers.ncpflash_argv{ "run", script })
  local deadline = sys.now() + 5
  while sys.now() < deadline and not helpers.readfile(child.out):find("open") do sys.sleep(0.02) end
  sys.sleep(0.1)
  local t0 = sys.now()
  sys.kill(child.pid, "INT")
  local status = sys.wait(child.pid, 5)
  child.status = status
  eq(status, 130)
  ok(sys.now() - t0 < 1, "stopped within a read slice")
end)
