-- Issue 13 (integrity), item 16: getting unstuck. recover on a port without modem lines, its
-- failure hint, byte loss during writes (against ncpsim's baud-dependent "fussy" adapter),
-- a failing reset command, probe --tune's margin and the user board file in effect.
local sys = require "ncpflash.core.sys"

-- a flash whose offset 0 holds an application (BFNP): it boots and talks when the strap fails
local function app_state(dir)
  sys.mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/flash.bin", "BFNP" .. string.rep("\255", 4 * 1024 * 1024 - 4))
  return dir .. "/state"
end

test("16: recover on a port without modem lines asks for a manual or command reset", function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--state", app_state(dir), "--strap", "flash" }
  local r = helpers.run({ "--port", sim.url, "recover" }, { timeout = 90 })
  eq(r.code, 2, r.err)
  match(r.err, "cannot drive BOOT/CHIP_EN")
  match(r.err, "%-%-reset manual")
  match(r.err, "%-%-reset cmd:")
  nomatch(r.out, "strap entry: BOOT high first", "no strap steps it cannot perform")
  local warnings = select(2, r.err:gsub("cannot drive the reset lines", ""))
  ok(warnings <= 1, "warned " .. warnings .. " times")
end)

test("16: when recover fails, its hint does not suggest recover", function()
  local dir = helpers.tmpdir()
  -- BOOT unwired and the strap at flash: the application runs whatever the lines do
  local sim <close> = helpers.ncpsim{ "--state", app_state(dir), "--wiring", "rts=en,dtr=none", "--strap", "flash" }
  local r = helpers.run({ "--port", sim.url, "recover", "--no-erase" }, { timeout = 120 })
  eq(r.code, 3, r.err)
  match(r.err, "recover: the ROM never answered")
  local hint = r.err:match("\nhint: ([^\n]*)") or r.err:match("^hint: ([^\n]*)")
  ok(hint, "a hint: " .. r.err)
  nomatch(hint, "recover", "the hint after recover failed")
end)

test("16: byte loss during writes advises a lower --load-baud, and the advice works (fussy adapter)", function()
  local dir = helpers.tmpdir()
  local data = helpers.random_bytes(160 * 1024, 21)
  local f = helpers.writefile(dir .. "/fw.bin", data)
  local fussy = { "--fault", "fussy:1000000:0.0005", "--seed", "5" }
  local sim <close> = helpers.ncpsim(fussy)
  local r = helpers.run({ "--port", sim.url, "flash", "0x10000", f }, { timeout = 200 })
  eq(r.code, 4, r.err)
  match(r.err, "hint: .*%-%-load%-baud 1000000")
  sim:stop()
  local sim2 <close> = helpers.ncpsim(fussy)
  r = helpers.run({ "--port", sim2.url, "--load-baud", "1000000", "flash", "0x10000", f }, { timeout = 200 })
  eq(r.code, 0, r.err)
  sim2:stop()
  eq(sim2:flash():sub(0x10001, 0x10000 + #data), data, "flashed byte-exact at the lower baud")
end)

test("16: a reset command that fails is reported, even when the ROM answers anyway", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "--reset", "cmd:exit 1", "info" }   -- sh and cmd.exe alike
  eq(r.code, 0, r.err)
  match(r.err, "the reset command failed %(reset command exited with status 1%)")
end)

test("16: probe --tune keeps a margin; connect and info say a user board file is in effect", function()
  local xdg = helpers.tmpdir()
  local env = { env = { XDG_CONFIG_HOME = xdg } }
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run({ "--json", "--port", sim.url, "probe", "--tune", "--trials", "1" }, env)
  eq(r.code, 0, r.err)
  local res
  for _, e in ipairs(helpers.json_lines(r.out)) do if e.event == "result" then res = e end end
  local t, saved = res.tuned, res.saved
  ok(saved, "the saved values are reported")
  ok(saved.hold >= 2 * t.hold - 1e-9 and saved.delay >= 2 * t.delay - 1e-9 and saved.sync >= 1.5 * t.sync - 1e-9,
    ("margin: found hold %g delay %g sync %g, saved %g %g %g"):format(t.hold, t.delay, t.sync, saved.hold,
      saved.delay, saved.sync))
  local file = helpers.readfile(xdg .. "/ncpflash/boards/st67w611m1.lua")
  local b = load(file, "board", "t", {})()
  eq(b.sync.seconds, saved.sync)
  local waits = {}
  for _, st in ipairs(b.reset.enter) do if st.wait then waits[#waits + 1] = st.wait end end
  eq(waits, { saved.hold, saved.delay })
  r = helpers.run({ "--port", sim.url, "info" }, env)
  eq(r.code, 0, r.err)
  match(r.out, "board st67w611m1: the user board file .*/ncpflash/boards/st67w611m1%.lua is in effect %(written by "
    .. "probe %-%-tune")
end)
