-- contrib/ser2net/ser2net.yaml under Debian's ser2net 4, in front of a port without modem lines
-- (a pty from ncpsim --pty: ser2net cannot set DTR/RTS on it and never answers SET-CONTROL).
-- README "Labs and CI" (ser2net) describes what this checks.  `make test` installs ser2net
-- through tools/deps.sh lab.
local ser2net = require "ser2net"

skip_if(not ser2net.available(), "ser2net is not installed (run 'sh tools/deps.sh lab' as root)")

local function flash_via(url, sim_args, addr, seed)
  local dir = helpers.tmpdir()
  local data = helpers.random_bytes(16 * 1024, seed)
  local fw = helpers.writefile(dir .. "/fw.bin", data)
  local sim <close> = helpers.ncpsim{ "--pty", dir .. "/pty", table.unpack(sim_args or {}) }
  local s <close> = ser2net.start(sim.url)
  local r = helpers.run{ "--json", "--port", url(s.port), "flash", ("0x%x"):format(addr), fw }
  s:stop()
  sim:stop()
  return r, sim:flash():sub(addr + 1, addr + #data) == data
end

local function warnings(r)
  local out = {}
  for _, e in ipairs(helpers.json_lines(r.out)) do
    if e.event == "warn" then out[#out + 1] = e.message end
  end
  return table.concat(out, "\n")
end

test("ser2net without modem lines: rfc2217:// flashes, with one warning that the lines did not move", function()
  local r, landed = flash_via(function(p) return "rfc2217://127.0.0.1:" .. p end, nil, 0x10000, 41)
  eq(r.code, 0, r.out .. r.err)
  ok(landed, "the image is in flash")
  match(warnings(r), "did not acknowledge SET%-CONTROL")
  match(warnings(r), "put the chip in download mode by hand")
end)

test("ser2net without modem lines: ?ign_set_control skips the wait and the warning", function()
  local r, landed = flash_via(function(p) return "rfc2217://127.0.0.1:" .. p .. "?ign_set_control" end, nil,
    0x20000, 42)
  eq(r.code, 0, r.out .. r.err)
  ok(landed, "the image is in flash")
  eq(warnings(r), "", "no warning")
end)

test("ser2net: a chip that is not in download mode fails the handshake (exit 3), not a hang", function()
  -- the strap says flash and no line can change it: what a user without modem lines meets
  local r, landed = flash_via(function(p) return "rfc2217://127.0.0.1:" .. p .. "?ign_set_control" end,
    { "--strap", "flash", "--app-baud", "115200" }, 0x30000, 43)
  eq(r.code, 3, r.out .. r.err)
  ok(not landed)
  local last = helpers.json_lines(r.out)
  eq(last[#last].event, "error")
  eq(last[#last].code, "handshake")
end)
