-- --junit FILE and --report lava: reports from the event stream (ncpflash.labreport, ncpflash.junit).
-- Every report is parsed (tests/lib/xml.lua) and checked against the JUnit schemas' rules
-- (tests/lib/junit_schema.lua); with Debian's python3 it is also parsed by Python's own XML reader.
local junit = require "ncpflash.junit"
local labreport = require "ncpflash.labreport"
local schema = require "junit_schema"
local xml = require "xml"
local sys = require "ncpflash.core.sys"
local boot_info = helpers.boot_info

local FW_ADDR = 0x10000
local function chip_id(k) return ("40827b03d2%02x"):format(k) end
local FAULT = { "--fault", "fl:31:0005:0", "--fault", "fl:3F:0005:0" }   -- every write answers FL 0x0005

local function fw_file(dir, n, seed)
  local data = helpers.random_bytes(n, seed)
  return helpers.writefile(dir .. "/fw.bin", data), data
end

-- Python's reader as a second, independent parser: the testcase count and failure types.
local PY = "/usr/bin/python3"
local function python_view(path)
  if not sys.stat(PY) then return nil end
  local script = helpers.writefile(helpers.tmpdir() .. "/view.py", table.concat({
    "import sys, xml.etree.ElementTree as E",
    "r = E.parse(sys.argv[1]).getroot()",
    "print(' '.join((c.find('failure').get('type') if c.find('failure') is not None else 'ok')",
    "               for c in r.iter('testcase')))", "" }, "\n"))
  local p = io.popen(("%s %s %s 2>&1"):format(PY, script, path))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function load_report(path)
  local text = helpers.readfile(path)
  local cases, root = schema.load(text)
  return cases, root, text
end

test("the writer escapes hostile text and stays within the schema", function()
  local nasty = "a<b>&\"quote\" 'apos'\nline2\ttab\0nul\1\27esc \255\254bad utf8 \u{e9}t\u{e9} ]]> \u{FFFE}"
  local doc = junit.render{ name = "suite <&>", timestamp = 0, hostname = "h\"ost", properties = { k = nasty },
    units = {
      { name = "ok " .. nasty, result = "ok", time = 1.23456 },
      { name = "bad", result = "failed", code = "device", message = nasty, region = "boot2", exit = 4, time = 2,
        details = { "port: /dev/ttyUSB0" } },
      { name = "int", result = "interrupted", exit = 130, time = -1 },
      { name = "skip", result = "skipped", message = "not wired", time = 0 },
    } }
  local cases, root = schema.load(doc)
  eq(#cases, 4)
  eq(root.children[1].attrs.timestamp, "1970-01-01T00:00:00")
  eq(root.children[1].attrs.failures, "2")
  eq(root.children[1].attrs.skipped, "1")
  eq(cases[1].time, 1.235)
  eq(cases[1].name, "ok " .. junit.clean(nasty), "attribute text round-trips (newline and tab kept)")
  match(cases[1].name, "a<b>&\"quote\" 'apos'\nline2\ttab%?nul%?%?esc %?%?bad utf8 \u{e9}t\u{e9} %]%]> %?$")
  eq(cases[2].failure.type, "device")
  match(cases[2].failure.message, "%(region boot2%)$", "the region is named")
  match(cases[2].failure.text, "region: boot2")
  match(cases[2].failure.text, "port: /dev/ttyUSB0")
  eq(cases[3].failure.type, "interrupted")
  eq(cases[3].time, 0, "a negative time becomes 0")
  eq(cases[4].skipped, "not wired")
  -- the reader really is strict: a document it should refuse
  raises(function() xml.parse("<a b='1' b='2'/>") end, "duplicate attribute")
  raises(function() xml.parse("<a>x & y</a>") end, "bare '&'")
  raises(function() xml.parse("<a><b></a></b>") end, "closes")
  raises(function() xml.parse("<a>\1</a>") end, "not allowed")
  raises(function() schema.load('<testsuites><testsuite name="x" tests="1" failures="0" errors="0"/></testsuites>') end,
    "required")
end)

test("single device: a passing flash gives one passing testcase named by port and chip id", function()
  local dir = helpers.tmpdir()
  local fw, data = fw_file(dir, 24 * 1024, 5)
  local sim <close> = helpers.ncpsim{ "--boot-info", boot_info(7) }
  local report = dir .. "/report.xml"
  local r = helpers.run{ "--junit", report, "--port", sim.url, "flash", ("0x%x"):format(FW_ADDR), fw }
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(FW_ADDR + 1, FW_ADDR + #data), data, "the report's claim holds on the chip")
  local cases, root = load_report(report)
  eq(#cases, 1)
  eq(cases[1].name, sim.url .. " " .. chip_id(7))
  eq(cases[1].classname, "ncpflash.flash")
  eq(cases[1].failure, nil)
  ok(cases[1].time > 0 and cases[1].time < 60, "time " .. cases[1].time)
  local props = {}
  for _, p in ipairs(root.children[1].children[1].children) do props[p.attrs.name] = p.attrs.value end
  eq(props["ncpflash.exit"], "0")
  match(props["ncpflash.command"], "flash 0x10000 ")
  eq(sys.stat(report .. ".tmp"), nil, "no temporary file left")
  local py = python_view(report)
  if py then eq(py, "ok", "python's reader") end
end)

test("single device: a failing flash gives a failure with the device's code, message and region", function()
  local dir = helpers.tmpdir()
  local fw = fw_file(dir, 24 * 1024, 6)
  local sim <close> = helpers.ncpsim{ "--boot-info", boot_info(8), table.unpack(FAULT) }
  local report = dir .. "/report.xml"
  local r = helpers.run{ "--junit", report, "--port", sim.url, "flash", ("0x%x"):format(FW_ADDR), fw }
  eq(r.code, 4, r.err)
  sim:stop()
  eq(sim:flash():sub(FW_ADDR + 1, FW_ADDR + 4096), ("\255"):rep(4096), "the region was left erased, as reported")
  local cases = load_report(report)
  eq(#cases, 1)
  eq(cases[1].name, sim.url .. " " .. chip_id(8))
  local f = cases[1].failure
  ok(f, "a failure element")
  eq(f.type, "device")
  match(f.message, "FL 0x0005 FLASH_WRITE_ADDR_ERROR")
  match(f.message, "fw%.bin", "the region is named in the message")
  match(f.text, "region: fw%.bin")
  match(f.text, "exit: 4")
  match(f.text, "chip_id: " .. chip_id(8))
  match(r.err, "error: fw%.bin @0x10000 failed twice", "stderr unchanged by --junit")
  local py = python_view(report)
  if py then eq(py, "device", "python's reader") end
end)

test("several devices: one testcase per device in port order, failures only where they happened", function()
  local dir = helpers.tmpdir()
  local fw, data = fw_file(dir, 20 * 1024, 9)
  local a <close> = helpers.ncpsim{ "--boot-info", boot_info(1) }
  local b <close> = helpers.ncpsim{ "--boot-info", boot_info(2), table.unpack(FAULT) }
  local c <close> = helpers.ncpsim{ "--boot-info", boot_info(3) }
  local report = dir .. "/report.xml"
  local r = helpers.run{ "--junit", report, "--json", "--port", a.url, "--port", b.url, "--port", c.url,
    "flash", ("0x%x"):format(FW_ADDR), fw }
  eq(r.code, 4, r.err)
  a:stop(); b:stop(); c:stop()
  eq(a:flash():sub(FW_ADDR + 1, FW_ADDR + #data), data)
  eq(c:flash():sub(FW_ADDR + 1, FW_ADDR + #data), data)
  local cases, root = load_report(report)
  eq(root.children[1].attrs.tests, "3")
  eq(root.children[1].attrs.failures, "1")
  eq(#cases, 3)
  local sims = { a, b, c }
  for k = 1, 3 do eq(cases[k].name, sims[k].url .. " " .. chip_id(k), "testcase " .. k) end
  eq(cases[1].failure, nil)
  eq(cases[3].failure, nil)
  eq(cases[2].failure.type, "device")
  match(cases[2].failure.message, "FLASH_WRITE_ADDR_ERROR")
  match(cases[2].failure.text, "region: fw%.bin")
  -- the JSON stream's done events agree with the report
  local done = {}
  for _, e in ipairs(helpers.json_lines(r.out)) do
    if e.event == "done" then done[e.device.index] = e end
  end
  for k = 1, 3 do
    eq(done[k].result, k == 2 and "failed" or "ok")
    ok(math.abs(done[k].seconds - cases[k].time) < 0.002, "time from the done event")
  end
  local py = python_view(report)
  if py then eq(py, "ok device ok", "python's reader") end
end)

test("a command that fails before any device runs is a failing testcase, not an empty pass", function()
  local dir = helpers.tmpdir()
  local report = dir .. "/report.xml"
  local r = helpers.run{ "--junit", report, "--ports", "no-such-port-*", "info" }
  eq(r.code, 3, r.err)
  local cases = load_report(report)
  eq(#cases, 1)
  eq(cases[1].name, "ncpflash info")
  eq(cases[1].failure.type, "port")
  match(cases[1].failure.message, "matches no serial port")
end)

test("a report that cannot be written fails the run and says where", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--junit", "/nonexistent-dir/report.xml", "--port", sim.url, "info" }
  eq(r.code, 7, r.err)
  match(r.err, "cannot write JUnit report /nonexistent%-dir/report%.xml")
end)

test("Ctrl-C during a flash: exit 130, and the report is still written with the unit interrupted", function()
  local dir = helpers.tmpdir()
  local fw = fw_file(dir, 16 * 1024, 12)
  local sim <close> = helpers.ncpsim{ "--boot-info", boot_info(9), "--fault", "stall:31:20" }
  local report = dir .. "/report.xml"
  local p <close> = helpers.spawn{ helpers.ncpflash, "--junit", report, "--port", sim.url, "flash",
    ("0x%x"):format(FW_ADDR), fw }
  local deadline = sys.now() + 10
  while not helpers.readfile(p.out):find("==> write", 1, true) and sys.now() < deadline do sys.sleep(0.05) end
  sys.sleep(0.2)
  sys.kill(p.pid, "INT")
  p.status = sys.wait(p.pid, 10)
  eq(p.status, 130, "exit status after SIGINT alone")
  local cases = load_report(report)
  eq(#cases, 1)
  eq(cases[1].failure.type, "interrupted")
  match(cases[1].failure.text, "exit: 130")
  match(cases[1].failure.message, "interrupted")
end)

-- A stand-in for LAVA's lava-test-case helper: records its arguments.
local function fake_lava(dir)
  local bin = dir .. "/bin"
  assert(sys.mkdirs(bin))
  helpers.writefile(bin .. "/lava-test-case", "#!/bin/sh\necho \"$*\" >> " .. dir .. "/cases.log\n")
  os.execute("chmod +x " .. bin .. "/lava-test-case")
  return bin
end

test("--report lava: one lava-test-case line per device that a test shell runs as it is", function()
  local dir = helpers.tmpdir()
  local fw = fw_file(dir, 8 * 1024, 11)
  local a <close> = helpers.ncpsim{ "--boot-info", boot_info(4) }
  local b <close> = helpers.ncpsim{ "--boot-info", boot_info(5), table.unpack(FAULT) }
  local cases_sh = dir .. "/cases.sh"
  local r = helpers.run{ "--json", "--report", "lava:" .. cases_sh, "--port", a.url, "--port", b.url,
    "flash", ("0x%x"):format(FW_ADDR), fw }
  eq(r.code, 4, r.err)
  local lines = {}
  for l in helpers.readfile(cases_sh):gmatch("[^\n]+") do lines[#lines + 1] = l end
  eq(#lines, 2)
  local pa, pb = a.url:match("//(.*)$"):gsub(":", "_"), b.url:match("//(.*)$"):gsub(":", "_")
  match(lines[1], "^lava%-test%-case flash%-1%-" .. pa:gsub("%p", "%%%0") .. "%-" .. chip_id(4)
    .. " %-%-result pass %-%-measurement %d+%.%d%d%d %-%-units seconds$")
  match(lines[2], "^lava%-test%-case flash%-2%-" .. pb:gsub("%p", "%%%0") .. "%-" .. chip_id(5)
    .. " %-%-result fail ")
  local bin = fake_lava(dir)
  local okx = os.execute(("PATH=%s:$PATH sh %s"):format(bin, cases_sh))
  ok(okx, "the lines run in a shell")
  local rec = helpers.readfile(dir .. "/cases.log")
  match(rec, "^flash%-1%-[%w%._%-]+ %-%-result pass %-%-measurement [%d%.]+ %-%-units seconds\n"
    .. "flash%-2%-[%w%._%-]+ %-%-result fail ")
  -- without a file the lines come on stdout after the human output
  local one <close> = helpers.ncpsim{ "--boot-info", boot_info(6) }
  r = helpers.run{ "--report", "lava", "--port", one.url .. "?ign_set_control", "info" }
  eq(r.code, 0, r.err)
  local last = r.out:match("([^\n]+)\n$")
  match(last, "^lava%-test%-case info%-1%-127%.0%.0%.1_%d+%-" .. chip_id(6) .. " %-%-result pass ",
    "the URL options do not leak into the name")
end)

test("--report: bad kinds and stdout with --json are usage errors", function()
  local r = helpers.run{ "--report", "html", "--port", "/dev/null", "info" }
  eq(r.code, 2)
  match(r.err, "unknown report %(lava, lava:FILE or junit:FILE%)")
  r = helpers.run{ "--json", "--report", "lava", "--port", "/dev/null", "info" }
  eq(r.code, 2)
  match(r.out, "use %-%-report lava:FILE")
end)

test("labreport.lava_name keeps to the characters a LAVA test case id may use", function()
  eq(labreport.lava_name({ index = 3, port = "/dev/serial/by-id/usb-FTDI_FT232R USB UART_A50285BI-if00-port0",
    chip_id = "40827b03d201" }, "st67w611m1-mission_t02"),
    "st67w611m1-mission_t02-3-usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0-40827b03d201")
  eq(labreport.lava_name({ index = 0 }, "flash"), "flash")
end)
