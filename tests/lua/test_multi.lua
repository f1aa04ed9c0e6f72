-- Many devices in one command: --port repeated, --ports FILTER, worst exit code, summary, --log-dir.
local multi = require "ncpflash.multi"
local sys = require "ncpflash.core.sys"

local boot_info = helpers.boot_info
local function chip_id(k) return ("40827b03d2%02x"):format(k) end

test("worst exit code order", function()
  eq(multi.worst(0, 3), 3)
  eq(multi.worst(3, 4), 4)
  eq(multi.worst(4, 5), 5)
  eq(multi.worst(5, 1), 5)
  eq(multi.worst(6, 7), 7)
  eq(multi.worst(2, 7), 2)
  eq(multi.worst(2, 130), 130)
  eq(multi.worst(0, 0), 0)
  eq(multi.worst(0, 42), 42, "unknown codes rank like 1")
end)

test("--ports FILTER: glob on name and by-id, VID:PID, sn:", function()
  local list = {
    { name = "/dev/ttyUSB0", vid = 0x0403, pid = 0x6001, serial = "FT123",
      by_id = "/dev/serial/by-id/usb-FTDI_FT232R_FT123-if00-port0" },
    { name = "/dev/ttyUSB1", vid = 0x10c4, pid = 0xea60, serial = "CP9",
      by_id = "/dev/serial/by-id/usb-Silicon_Labs_CP2102_CP9-if00-port0" },
    { name = "/dev/ttyACM0" },
  }
  local function sel(f) return multi.resolve_ports({ ports_list = { f } }, function() return list end) end
  eq(sel("/dev/ttyUSB*"), { "/dev/ttyUSB0", "/dev/ttyUSB1" })
  eq(sel("0403:6001"), { "/dev/ttyUSB0" })
  eq(sel("10C4:*"), { "/dev/ttyUSB1" })
  eq(sel("sn:CP*"), { "/dev/ttyUSB1" })
  eq(sel("*FTDI*"), { "/dev/ttyUSB0" })
  eq(sel("/dev/ttyACM0,sn:FT123"), { "/dev/ttyUSB0", "/dev/ttyACM0" })
  eq(multi.resolve_ports({ port_list = { "/dev/ttyACM0" }, ports_list = { "ttyUSB1" } }, function() return list end),
    { "/dev/ttyACM0", "/dev/ttyUSB1" }, "--port first, then filter matches, no duplicates")
  local e = raises(function() sel("sn:NOPE") end, "port")
  match(e.message, "matches no serial port")
end)

test("job argv drops the multi-device options and keeps the rest", function()
  local argv = { [0] = "ncpflash", "--port", "A", "--port=B", "--ports", "x*", "--log-dir", "d", "--json", "-v",
    "flash", "--resume", "0x10000", "f.bin" }
  eq(multi.job_argv(argv, "A", { "--trace-file", "t" }),
    { "ncpflash", "--port", "A", "--trace-file", "t", "-v", "flash", "--resume", "0x10000", "f.bin" })
end)

test("8 boards in one command: good ones verified, bad ones reported with cause, worst exit code", function()
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(96 * 1024, 77)
  helpers.writefile(dir .. "/fw.bin", fw)
  local faults = {
    [6] = { "--fault", "silent" },                 -- never answers: handshake (3)
    [7] = { "--fault", "fl:31:0005:0", "--fault", "fl:3F:0005:0" },   -- every write refused: device error (4)
    [8] = { "--fault", "stall:31:1.5:2" },         -- a slow board: still fine
  }
  local sims, argv = {}, {}
  for k = 1, 8 do
    local a = { "--boot-info", boot_info(k) }
    for _, x in ipairs(faults[k] or {}) do a[#a + 1] = x end
    sims[k] = helpers.ncpsim(a)
    argv[#argv + 1] = "--port"
    argv[#argv + 1] = sims[k].url
  end
  for _, x in ipairs({ "--log-dir", dir .. "/logs", "flash", "0x10000", dir .. "/fw.bin" }) do argv[#argv + 1] = x end
  local t0 = sys.now()
  local r = helpers.run(argv)
  local dt = sys.now() - t0
  eq(r.code, 4, "worst of 0, 3, 4 is 4: " .. r.out .. r.err)
  ok(dt < 20, ("took %.1f s"):format(dt))
  match(r.out, "6 of 8 devices ok, 2 failed")
  local rows = {}
  for line in r.out:gmatch("[^\n]+") do
    local k, mac, res, secs, rest = line:match("^(%d+)%s+%S+%s+(%S+)%s+(%S+)%s+([%d.]+) s%s+(.*)$")
    if k then rows[tonumber(k)] = { mac = mac, result = res, seconds = tonumber(secs), rest = rest } end
  end
  for k = 1, 8 do ok(rows[k], "summary row " .. k) end
  match(rows[6].rest, "exit 3: handshake failed")
  match(rows[7].rest, "exit 4: .*FL 0x0005")
  eq(rows[6].result, "FAILED")
  eq(rows[7].result, "FAILED")
  for _, k in ipairs({ 1, 2, 3, 4, 5, 8 }) do
    eq(rows[k].result, "ok", "board " .. k)
    eq(rows[k].mac, ("40:82:7b:03:d2:%02x"):format(k))
    sims[k]:stop()
    eq(sims[k]:flash():sub(0x10000 + 1, 0x10000 + #fw) == fw, true, "board " .. k .. " flash byte-exact")
  end
  for _, k in ipairs({ 1, 2, 3, 4, 5 }) do
    ok(rows[k].seconds < rows[8].seconds, ("board %d (%.1f s) did not wait for the slow board 8 (%.1f s)")
      :format(k, rows[k].seconds, rows[8].seconds))
  end
  match(r.err, "%[6 [^%]]+%] error: handshake failed")
  -- --log-dir: a human log and a wire trace per device, named by MAC and time
  local names = sys.listdir(dir .. "/logs")
  local logs, traces = 0, 0
  for _, n in ipairs(names) do
    if n:match("^40827b03d20[1-8]_%d+T%d+Z%.log$") then logs = logs + 1 end
    if n:match("^40827b03d20[1-8]_%d+T%d+Z%.trace$") then traces = traces + 1 end
  end
  eq(logs, 7, "logs named by MAC for the 7 boards that answered: " .. table.concat(names, " "))
  eq(traces, 7)
  local unnamed = 0
  for _, n in ipairs(names) do if n:match("^%d+T%d+Z_6_.*%.log$") then unnamed = unnamed + 1 end end
  eq(unnamed, 1, "the silent board keeps its port-named log")
  local log1 = helpers.readfile(dir .. "/logs/" .. (function()
    for _, n in ipairs(names) do if n:match("^40827b03d201_.*%.log$") then return n end end
  end)())
  match(log1, "==> write")
  match(log1, "result: ok %(exit 0%)")
end)

test("one bad option fails every device the same way, without hanging", function()
  local a <close> = helpers.ncpsim{ "--boot-info", boot_info(1) }
  local b <close> = helpers.ncpsim{ "--boot-info", boot_info(2) }
  local r = helpers.run{ "--port", a.url, "--port", b.url, "flash", "0x10000", "/nonexistent.bin" }
  eq(r.code, 7, r.out .. r.err)
  match(r.out, "0 of 2 devices ok")
end)

test("chip ids differ per board", function()
  eq(chip_id(3), "40827b03d203")
end)

test("Ctrl-C stops every job; the summary still comes, exit 130", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(64 * 1024, 5))
  local a <close> = helpers.ncpsim{ "--boot-info", boot_info(1), "--fault", "stall:31:20:3" }
  local b <close> = helpers.ncpsim{ "--boot-info", boot_info(2), "--fault", "stall:31:20:3" }
  local pid = assert(sys.spawn(helpers.ncpflash_argv{ "--json", "--port", a.url, "--port", b.url, "flash", "0x10000",
    dir .. "/fw.bin" }, { stdout = dir .. "/out", stderr = dir .. "/err" }))
  local deadline = sys.now() + 10
  repeat   -- wait until both are writing
    sys.sleep(0.05)
    local n = select(2, helpers.readfile(dir .. "/out"):gsub('"event":"stage","name":"write"', ""))
    if n == 0 then n = select(2, helpers.readfile(dir .. "/out"):gsub('"name":"write"', "")) end
  until n >= 2 or sys.now() > deadline
  sys.sleep(0.2)
  local t0 = sys.now()
  sys.kill(pid, "INT")
  local code = sys.wait(pid, 15)
  if not code then sys.kill(pid, "KILL"); sys.wait(pid, 5) end
  eq(code, 130, helpers.readfile(dir .. "/err"))
  ok(sys.now() - t0 < 10, "stopped promptly")
  local evs = helpers.json_lines(helpers.readfile(dir .. "/out"))
  local sum = evs[#evs]
  eq(sum.event, "summary")
  eq(sum.exit, 130)
  eq(sum.devices[1].result, "interrupted")
  eq(sum.devices[2].result, "interrupted")
end)
