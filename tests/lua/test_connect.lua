-- Getting into the ROM (issue 6): reset strategies as validated data, --reset parsing, the GPIO
-- strategy on the fake line backend (recorded timings), the connect ladder's classification
-- against ncpsim's faults through `probe`, `recover` on a t01-like module, `shell` on stdin,
-- `probe --tune` writing a user board file.
local reset = require "ncpflash.reset"
local handshake = require "ncpflash.handshake"
local gpio = require "ncpflash.core.gpio"
local sys = require "ncpflash.core.sys"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"

local function close_to(got, want, tol, what)
  ok(math.abs(got - want) <= tol, string.format("%s: %.4f s, expected %.4f +- %.4f", what, got, want, tol))
end

test("classification: the adjacent OK pair only; partial for a lone O or K", function()
  eq(handshake.classify("OK"), "ok")
  eq(handshake.classify("\0OK"), "ok")
  eq(handshake.classify(""), "nothing")
  eq(handshake.classify("O"), "partial")
  eq(handshake.classify("\0K"), "partial")
  eq(handshake.classify("O\0K"), "garbage")
  eq(handshake.classify(string.rep("\x55", 300)), "echo")
  eq(handshake.classify("\xc1\x27\xbd" .. string.rep("\x41", 30)), "garbage")
end)

test("--reset string: steps, grouping, durations, wiring", function()
  local board = require("ncpflash.boards.st67w611m1")
  local l = reset.parse_spec("boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0", board)
  eq(#l, 1)
  eq(l[1].kind, "lines")
  eq(l[1].lines.en, "rts")
  eq(l[1].lines.boot, "dtr")
  local e = l[1].enter
  eq(#e, 5)
  eq(e[1].boot, 1); eq(e[1].en, 0)          -- adjacent settings: one step
  close_to(e[2].wait, 0.1, 1e-9, "wait=100ms")
  eq(e[3].en, 1); eq(e[5].boot, 0)
  local g = reset.parse_spec("gpio:en=gpiochip0:17,boot=gpiochip1:4;boot=1,en=0,wait=0.05s,en=1|manual:20|none")
  eq(#g, 3)
  eq(g[1].kind, "gpio"); eq(g[1].lines.boot, "gpiochip1:4"); eq(g[1].active.en, "high")
  close_to(g[1].enter[2].wait, 0.05, 1e-9, "0.05s")
  eq(g[2].kind, "manual"); eq(g[2].timeout, 20)
  eq(g[3].kind, "none")
  local c = reset.parse_spec("cmd:st-flash reset")
  eq(c[1].kind, "command"); eq(c[1].enter, "st-flash reset")   -- a string: the platform's shell runs it
end)

test("strategies are validated, naming the field", function()
  raises(function() reset.parse_spec("boot=2,en=1") end, "use 0 or 1")
  raises(function() reset.parse_spec("boot=1,en=0,wait=1h") end, "unknown unit")
  raises(function() reset.parse_spec("boot=1,wait=10ms,boot=0") end, "never rises")
  raises(function() reset.parse_spec("gpio:en=/sys/class/gpio/gpio17;en=0,en=1") end, "not a GPIO line")
  raises(function() reset.validate({ kind = "lines", lines = { en = "cts" }, enter = { { en = 1 } } }, "board x") end,
    "board x.lines.en")
  raises(function() reset.validate({ kind = "teleport" }) end, "unknown kind")
  raises(function() reset.validate({ kind = "lines", lines = { en = "rts", boot = "dtr" },
    enter = { { en = 0, wait = 0.1 }, { en = 1 } } }) end, "either waits or sets")
end)

test("bad --reset on the command line: exit 2 before the port is opened", function()
  local r = helpers.run{ "--port", "/dev/nonexistent-port", "--reset", "boot=1,en=0,wait=5parsecs,en=1", "probe" }
  eq(r.code, 2, r.err)
  match(r.err, "wait=5parsecs")
  nomatch(r.err, "nonexistent")
  local r2 = helpers.run{ "--port", "/dev/nonexistent-port", "--reset" }
  eq(r2.code, 2)
  match(r2.err, "option %-%-reset needs a value")
end)

test("gpio fake backend: the recorded line changes keep the sequence's timings", function()
  local st = reset.validate({ kind = "gpio", lines = { en = "gpiochip0:17", boot = "gpiochip0:27" }, fake = true,
    enter = { { boot = 1, en = 0 }, { wait = 0.1 }, { en = 1 }, { wait = 0.05 }, { boot = 0 } } }, "t")
  local d = reset.driver(st, { ev = { info = function() end } })
  ok(d:sequence("enter"))
  local log = d:gpio_log()
  d:close()
  -- request with the first step's levels (en low, boot high), then en up, then boot down
  eq(log[1].signal, "en"); eq(log[1].value, false)
  eq(log[2].signal, "boot"); eq(log[2].value, true)
  eq(log[3].signal, "en"); eq(log[3].value, true)
  eq(log[3].line, "gpiochip0:17")
  eq(log[4].signal, "boot"); eq(log[4].value, false)
  close_to(log[3].t - log[1].t, 0.1, 0.03, "CHIP_EN low")
  close_to(log[4].t - log[3].t, 0.05, 0.03, "BOOT hold after CHIP_EN rises")
  -- an inverting driver (active low) flips every pin level
  local inv = reset.validate({ kind = "gpio", lines = { en = "gpiochip2:3" }, active = "low", fake = true,
    enter = { { en = 0 }, { en = 1 } } }, "t")
  local d2 = reset.driver(inv, {})
  d2:sequence("enter")
  local l2 = d2:gpio_log()
  eq(l2[1].value, true); eq(l2[2].value, false)
  d2:close()
end)

test("gpio: a missing chip is a port error naming it", function()
  local e = raises(function() gpio.request("gpiochip99", { 1 }, { true }) end, "port")
  if helpers.in_windows then   -- no GPIO character devices: the kernel backend says so
    match(e.message, "need the Linux GPIO character devices")
  else
    match(e.message, "/dev/gpiochip99")
  end
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local function probe(sim, extra, env)
  local argv = { "--port", sim.url }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = "probe"
  return helpers.run(argv, { env = env })
end

test("probe, no fault: ok, first attempt, ready", function()
  local sim <close> = helpers.ncpsim{}
  local r = probe(sim)
  eq(r.code, 0, r.err)
  match(r.out, "attempt 1 +lines +500000 baud +ok")
  match(r.out, "result +ok %- the ROM answered")
  match(r.out, "next +ready")
end)

test("probe, silent module: 'nothing' at every baud of the ladder, exit 3, check power/BOOT", function()
  local sim <close> = helpers.ncpsim{ "--fault", "silent" }
  local r = probe(sim, { "--retries", "1" })
  eq(r.code, 3, r.err)
  match(r.out, "attempt 1 +lines +500000 baud +nothing")
  match(r.out, "115200 baud +nothing")
  match(r.out, "result +nothing %- no answer from the chip")
  match(r.out, "next +check power and that BOOT is high while CHIP_EN rises")
end)

test("probe, TX looped to RX: 'echo', remove the loopback", function()
  local sim <close> = helpers.ncpsim{ "--fault", "echo" }
  local r = probe(sim)
  eq(r.code, 3, r.err)
  match(r.out, "result +echo")
  match(r.out, "next +TX is looped back to RX")
end)

test("probe, application at another baud: names it, shows its first line, suggests recover", function()
  local sim <close> = helpers.ncpsim{ "--fault", "app-baud" }
  local r = probe(sim, { "--retries", "1", "--json" })
  eq(r.code, 3, r.err)
  local res
  for _, e in ipairs(helpers.json_lines(r.out)) do if e.event == "result" then res = e end end
  ok(res, "a result event")
  eq(res.classification, "application")
  eq(res.app.baud, 2000000)
  match(res.app.line, "ncp: ")
  match(res.next_step, "recover")
  eq(res.attempts[1].kind, "application")
end)

test("probe, flaky first attempt: ok on attempt 2, says it is common", function()
  local sim <close> = helpers.ncpsim{ "--fault", "flaky" }
  local r = probe(sim)
  eq(r.code, 0, r.err)
  match(r.out, "attempt 1 +lines +500000 baud +nothing")
  match(r.out, "attempt 2 +lines +500000 baud +ok")
  match(r.out, "answered on attempt 2 %(before: nothing%)")
end)

test("--no-reset and --retries: the chip in flash mode is never reset", function()
  local sim <close> = helpers.ncpsim{ "--power-on", "flash" }
  local r = helpers.run{ "--port", sim.url, "--no-reset", "--retries", "1", "info" }
  eq(r.code, 3)
  match(r.err, "after 1 attempt")
  nomatch(table.concat(sim:log_lines(), "\n"), "lines dtr")
end)

test("--reset on modem lines: the given order reaches the module", function()
  local sim <close> = helpers.ncpsim{ "--power-on", "flash" }
  local r = helpers.run{ "--port", sim.url, "--reset", "boot=0,en=0,wait=20ms,boot=1,wait=60ms,en=1,wait=20ms,boot=0",
    "info", "--no-images" }
  eq(r.code, 0, r.err)
  local log = table.concat(sim:log_lines(), "\n")
  match(log, "lines dtr=1 rts=1\nlines dtr=0 rts=1\nlines dtr=0 rts=0\nlines dtr=1 rts=0\nhandshake")
  -- flash --reset (the recipe's own flag) still means "run from flash afterwards"
  local f = helpers.writefile(helpers.tmpdir() .. "/a.bin", string.rep("A", 5000))
  local r2 = helpers.run{ "--port", sim.url, "flash", "0x10000", f, "--reset" }
  eq(r2.code, 0, r2.err)
  match(r2.out, "reset: the chip runs from flash")
end)

test("--reset gpio:... end to end with the fake backend: timings recorded", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local logf = helpers.tmpdir() .. "/gpio.log"
  local r = helpers.run({ "--port", sim.url, "--load-baud", "500000", "--reset",
    "gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,en=0,wait=120ms,en=1,wait=30ms,boot=0", "probe" },
    { env = { NCPFLASH_GPIO_FAKE = logf } })
  eq(r.code, 0, r.err)
  match(r.out, "GPIO lines %(CHIP_EN gpiochip0:17, BOOT gpiochip0:27%)")
  local ev = {}
  for l in helpers.readfile(logf):gmatch("[^\n]+") do
    local t, line, sig, v = l:match("^(%S+) (%S+) (%S+) (%d)$")
    ev[#ev + 1] = { t = tonumber(t), line = line, sig = sig, v = v }
  end
  eq(#ev, 4)
  eq(ev[3].sig .. ev[3].v, "en1")
  close_to(ev[3].t - ev[1].t, 0.12, 0.04, "CHIP_EN low")
  close_to(ev[4].t - ev[3].t, 0.03, 0.03, "BOOT held after CHIP_EN rose")
end)

test("--reset cmd:...: an external program does the reset; its failure is reported", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local mark = helpers.tmpdir() .. "/ran"
  local r = helpers.run{ "--port", sim.url, "--load-baud", "500000", "--reset", "cmd:" .. helpers.touch_command(mark),
    "info", "--no-images" }
  eq(r.code, 0, r.err)
  ok(sys.stat(mark), "the command ran")
  local sim2 <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "silent" }
  local r2 = helpers.run{ "--port", sim2.url, "--retries", "1", "--reset", "cmd:exit 3", "info" }
  eq(r2.code, 3)
  match(r2.err, "reset command exited with status 3")
end)

test("--reset manual: prompts, then catches the ROM the moment it answers", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "flaky:4" }
  local t0 = sys.now()
  local r = helpers.run{ "--port", sim.url, "--load-baud", "500000", "--reset", "manual:10", "info", "--no-images" }
  eq(r.code, 0, r.err)
  match(r.out, "hold BOOT high")
  ok(sys.now() - t0 < 5, "well before the timeout")
  local sim2 <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "silent" }
  local r2 = helpers.run{ "--port", sim2.url, "--reset", "manual:1", "info" }
  eq(r2.code, 3)
  match(r2.err, "no answer")
end)

-- a t01-like module: an application in flash, BOOT honoured only on a proper strap sequence
local function t01_sim(extra)
  local dir = helpers.tmpdir()
  assert(sys.mkdirs(dir .. "/state"))
  local app = header.build(bl616, { image = helpers.compressible_bytes(20000, 7), offset = 0x1000 })
  helpers.writefile(dir .. "/state/flash.bin", app .. string.rep("\xFF", 4 * 1024 * 1024 - #app))
  local args = { "--state", dir .. "/state", "--power-on", "flash", "--fault", "strap-hold:200" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return helpers.ncpsim(args)
end

test("t01-like module: flash fails naming the application; recover --config erases and flashes it", function()
  local sim <close> = t01_sim()
  local dir = helpers.tmpdir()
  local fw = header.build(bl616, { image = helpers.compressible_bytes(60000, 9), offset = 0x1000 })
  helpers.writefile(dir .. "/fw.bin", fw)
  helpers.writefile(dir .. "/prog.ini", "[cfg]\nerase = 2\nskip_mode = 0x0, 0x0\nboot2_isp_mode = 0\n\n"
    .. "[FW]\nfiledir = ./fw.bin\naddress = 0x10000\n")
  local r = helpers.run{ "--port", sim.url, "flash", "--config", dir .. "/prog.ini" }
  eq(r.code, 3)
  match(r.err, "an application is running")
  local rr = helpers.run{ "--port", sim.url, "recover", "--config", dir .. "/prog.ini" }
  eq(rr.code, 0, rr.err)
  match(rr.out, "step 2/6: application")
  match(rr.out, "step 3/6: the ROM answered")
  match(rr.out, "chip erased")
  match(rr.out, "recovered: the release is flashed and verified")
  sim:stop()
  local flash = sim:flash()
  eq(flash:sub(0x10000 + 1, 0x10000 + #fw), fw, "firmware in place")
  eq(flash:sub(1, 4096), string.rep("\xFF", 4096), "the old application is gone")
  local log = table.concat(sim:log_lines(), "\n")
  match(log, "0x3C flash_chip_erase")
end)

test("recover without a working strap: exit 3 after every step, each logged", function()
  local sim <close> = helpers.ncpsim{ "--fault", "silent" }
  local r = helpers.run{ "--port", sim.url, "--retries", "1", "recover" }
  eq(r.code, 3)
  match(r.out, "step 1/6: probe")
  match(r.out, "step 6/6: strap entry at a lower handshake baud")
  match(r.err, "recover: the ROM never answered")
end)

test("shell: commands fed on stdin, values printed, history kept, failures counted", function()
  local sim <close> = helpers.ncpsim{}
  local state = helpers.tmpdir()
  local r = helpers.run({ "--port", sim.url, "shell" }, { env = { XDG_STATE_HOME = state },
    stdin = "boot_info().chip_id\nhex(efuse(0x14, 6))\nn = 0\nfor i = 1, 3 do\n  n = n + i\nend\n"
      .. "#read(0x0, 64)\nraw(isp.frame(op.GET_BOOT_INFO, '', false), 4, 0.3)\n" })
  eq(r.code, 0, r.err)
  match(r.out, '"' .. sim.chip_id .. '"', "the unit's own chip id")
  local codec = require "ncpflash.core.codec"
  match(r.out, '"' .. codec.hex(codec.unhex(sim.chip_id):reverse()) .. '"', "eFuse stores the MAC reversed")
  match(r.out, "\n64\n")
  match(r.out, "hex:4f4b1c00")
  match(helpers.readfile(state .. "/ncpflash/shell_history"), "boot_info%(%)%.chip_id\n")
  local r2 = helpers.run({ "--port", sim.url, "shell", "--no-history" }, { stdin = "cmd('NOPE')\n1+1\n" })
  eq(r2.code, 1)
  match(r2.out, "\n2\n")
  match(r2.err, "1 of 2 lines failed")
end)

test("probe --tune: sweeps, saves a user board file that later runs use", function()
  local sim <close> = helpers.ncpsim{}
  local xdg = helpers.tmpdir()
  local r = helpers.run({ "--port", sim.url, "probe", "--tune", "--trials", "2", "--save", "tuned67" },
    { env = { XDG_CONFIG_HOME = xdg } })
  eq(r.code, 0, r.err)
  -- ncpsim needs 5 ms of 0x55 (docs/api/ncpsim.md): of the candidates 2/4/6/10 ms, 6 ms is the shortest
  match(r.out, "tuned +reset hold 5 ms, handshake delay 5 ms, sync burst 6%.0 ms")
  local f = xdg .. "/ncpflash/boards/tuned67.lua"
  match(helpers.readfile(f), "probe %-%-tune")
  local fresh <close> = helpers.ncpsim{}
  local r2 = helpers.run({ "--port", fresh.url, "--board", "tuned67", "probe" }, { env = { XDG_CONFIG_HOME = xdg } })
  eq(r2.code, 0, r2.err)
  match(r2.out, "attempt 1 +lines +500000 baud +ok")
end)

test("--reset boot2: asks the application's shell to reboot, waits for 'Boot2 ISP Ready'", function()
  helpers.skip_on_windows("the device stand-in talks over a socat pseudo-terminal, which the .exe cannot open")
  local socat <close> = helpers.pty_pair() or skip("socat not installed")
  local dir, a, b = socat.dir, socat.a, socat.b
  -- a boot2 stand-in on the other end: "ispboot if / reboot", then 0x55 -> "Boot2 ISP Ready"
  local dev = helpers.writefile(dir .. "/boot2.lua", ([[
    local p <close> = require("ncpflash.core.port").open(%q)
    local seen, t0 = "", require("ncpflash.core.sys").now()
    while require("ncpflash.core.sys").now() - t0 < 8 do
      seen = (seen .. p:read(512, 0.05)):sub(-4096)
      if seen:find("ispboot if\r\nreboot\r\n", 1, true) and seen:find("\x55\x55\x55\x55$") then
        p:write("Boot2 ISP Ready\r\n")
        io.stdout:write("asked to reboot\n"); io.stdout:flush()
        break
      end
    end
    require("ncpflash.core.sys").sleep(3)
  ]]):format(b))
  local devpid = sys.spawn(helpers.ncpflash_argv{ "run", dev },
    { stdout = dir .. "/dev.out", stderr = dir .. "/dev.err" })
  local r = helpers.run{ "--port", a, "--retries", "1", "--reset", "boot2", "info" }
  sys.wait(devpid, 5)
  socat:stop()
  match(helpers.readfile(dir .. "/dev.out"), "asked to reboot")
  eq(r.code, 3)                          -- the stand-in is no ROM: the handshake itself finds nothing
  match(r.err, "no answer from the chip")
  nomatch(r.err, "boot2 did not answer")
end)

test("--reset boot2 against silence: reset-failed naming boot2", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "silent" }
  local r = helpers.run{ "--port", sim.url, "--retries", "1", "--reset", "boot2:", "info" }
  eq(r.code, 2)                          -- a malformed spec is a usage error
  local r2 = helpers.run{ "--port", sim.url, "--retries", "1", "--reset", "boot2", "info" }
  eq(r2.code, 3)
  match(r2.err, "boot2 did not answer \"Boot2 ISP Ready\" within 5 s")
end)

test("Linux low-latency mode on a real serial port: set on open, restored on close", function()
  local port = require "ncpflash.core.port"
  local dev = sys.getenv("NCPFLASH_TEST_SERIAL") or "/dev/ttyS0"
  local okp, p = pcall(port.open, dev, { baud = 115200 })
  if not okp then skip(dev .. " cannot be opened here (" .. tostring(p) .. "); set NCPFLASH_TEST_SERIAL") end
  local ll = p:info().low_latency
  p:close()
  ok(ll, "info().low_latency is reported for a serial port")
  if ll:match("^unsupported") then skip("the driver refuses ASYNC_LOW_LATENCY: " .. ll) end
  eq(ll, "on (restored on close)")
  local p2 <close> = port.open(dev, { baud = 115200 })
  eq(p2:info().low_latency, "on (restored on close)", "cleared at the first close, so set again")
end)

test("probe on a port without modem lines: the next step is manual / cmd / gpio", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--power-on", "flash", "--strap", "flash" }
  local r = helpers.run{ "--port", sim.url, "--retries", "1", "probe", "--no-ladder" }
  eq(r.code, 3)
  match(r.out, "socket:// has no modem lines")
  match(r.out, "next +this port cannot drive BOOT/CHIP_EN: use %-%-reset manual")
end)

test("probe --tune with GPIO lines (fake backend): the saved board keeps the gpio wiring", function()
  -- the fake lines reset nothing: a short ROM inactivity timeout makes every trial a fresh handshake
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--timeout-ms", "5" }
  local xdg = helpers.tmpdir()
  local r = helpers.run({ "--port", sim.url, "--load-baud", "500000", "--reset",
    "gpio:en=gpiochip0:17,boot=gpiochip0:27;boot=1,en=0,wait=50ms,en=1,wait=50ms,boot=0", "probe", "--tune",
    "--trials", "1", "--save", "gpioboard" }, { env = { XDG_CONFIG_HOME = xdg, NCPFLASH_GPIO_FAKE = xdg .. "/g.log" } })
  eq(r.code, 0, r.err)
  local board = helpers.readfile(xdg .. "/ncpflash/boards/gpioboard.lua")
  match(board, 'kind = "gpio"')
  match(board, 'en = "gpiochip0:17"')
  match(helpers.readfile(xdg .. "/g.log"), "gpiochip0:17 en 1")
end)
