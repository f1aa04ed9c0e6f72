-- contrib/labgrid/ncpflashdriver.py under Debian's python3-labgrid (0.4.1 on bookworm) in local
-- mode: pytest with labgrid's plugin runs tests/labgrid/test_ncpflash_driver.py against three
-- ncpsims (RFC 2217 good and faulty, a pty as RawSerialPort); then the flash is checked here.
-- `make test` runs `tools/deps.sh lab` first, which installs python3-labgrid and python3-pytest.
local sys = require "ncpflash.core.sys"
local boot_info = helpers.boot_info

local PY = "/usr/bin/python3"   -- Debian's interpreter: the one python3-labgrid installs into
local function python_has(mods)
  if not sys.stat(PY) then return false end
  local okx = os.execute(("%s -c 'import %s' >/dev/null 2>&1"):format(PY, mods))
  return okx == true
end

if not python_has("labgrid, pytest") then
  skip_if(true, "Debian's python3-labgrid / python3-pytest are not installed and could not be "
    .. "(run 'sh tools/deps.sh lab' as root)")
end

local function chip(k) return ("40827b03d2%02x"):format(k) end

test("labgrid local mode: NcpflashDriver flashes, fails with the device's error, loads, goes through ser2net",
  function()
  local dir = helpers.tmpdir()
  local data = helpers.random_bytes(28 * 1024, 23)
  local fw = helpers.writefile(dir .. "/fw.bin", data)
  local good <close> = helpers.ncpsim{ "--boot-info", boot_info(0x31) }
  local faulty <close> = helpers.ncpsim{ "--boot-info", boot_info(0x32), "--fault", "fl:31:0005:0", "--fault",
    "fl:3F:0005:0" }
  local pty <close> = helpers.ncpsim{ "--pty", dir .. "/pty", "--boot-info", boot_info(0x33) }
  local stalled <close> = helpers.ncpsim{ "--fault", "stall:31:30" }
  -- the real lab stack when ser2net is there: NetworkSerialPort -> ser2net 4 -> a port without lines
  local ser2net = require "ser2net"
  local behind = ser2net.available() and helpers.ncpsim{ "--pty", dir .. "/pty2" }
  local s2n <close> = behind and ser2net.start(behind.url)
  local function hostport(url) return url:match("^rfc2217://([^:]+):(%d+)$") end
  local gh, gp = hostport(good.url)
  local fh, fp = hostport(faulty.url)
  local sh, sp = hostport(stalled.url)
  local env = helpers.writefile(dir .. "/env.yaml", table.concat({
    "imports:",
    "  - " .. helpers.root .. "/contrib/labgrid/ncpflashdriver.py",
    "tools:",
    "  ncpflash: " .. helpers.ncpflash,
    "images:",
    "  fw: " .. fw,
    "targets:",
    "  good:",
    "    resources:",
    "      NetworkSerialPort: {host: '" .. gh .. "', port: " .. gp .. ", protocol: rfc2217}",
    "    drivers:",
    "      NcpflashDriver: {}",
    "  faulty:",
    "    resources:",
    "      NetworkSerialPort: {host: '" .. fh .. "', port: " .. fp .. "}",
    "    drivers:",
    "      NcpflashDriver: {timeout: 120}",
    "  stalled:",
    "    resources:",
    "      NetworkSerialPort: {host: '" .. sh .. "', port: " .. sp .. "}",
    "    drivers:",
    "      NcpflashDriver: {timeout: 2}",
    "  local:",
    "    resources:",
    "      RawSerialPort: {port: '" .. pty.url .. "'}",
    "    drivers:",
    "      NcpflashDriver: {image: fw, address: 0x30000}",
    s2n and ("  ser2net:\n    resources:\n      NetworkSerialPort: {host: 127.0.0.1, port: " .. s2n.port
      .. "}\n    drivers:\n      NcpflashDriver: {}") or "",
    "" }, "\n"))
  local report = dir .. "/pytest.xml"
  local p <close> = helpers.spawn{ "env", "PYTHONDONTWRITEBYTECODE=1", "NCPFLASH_LG_FW=" .. fw,
    "NCPFLASH_LG_FW_SIZE=" .. #data, "NCPFLASH_LG_CHIP_GOOD=" .. chip(0x31), "NCPFLASH_LG_CHIP_LOCAL=" .. chip(0x33),
    "NCPFLASH_LG_SER2NET=" .. (s2n and "1" or ""),
    PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lg-env", env, "--junitxml", report,
    helpers.root .. "/tests/labgrid/test_ncpflash_driver.py" }
  local status = sys.wait(p.pid, 240)
  if not status then sys.kill(p.pid, "KILL"); sys.wait(p.pid); error("pytest still running after 240 s") end
  p.status = status
  local out = helpers.readfile(p.out) .. helpers.readfile(p.err)
  eq(status, 0, "pytest:\n" .. out)
  -- pytest's own JUnit report: all ran and passed (a skip would hide a missing --lg-env); only the
  -- ser2net case may skip, when ser2net is not installed
  local suite = require("xml").parse(helpers.readfile(report)).children[1]
  eq(suite.tag, "testsuite")
  eq(suite.attrs.tests, "7", out)
  eq(suite.attrs.failures, "0", out)
  eq(suite.attrs.errors, "0", out)
  eq(suite.attrs.skipped, s2n and "0" or "1", out)
  -- what the driver's success and failure claim, on the chips
  good:stop(); faulty:stop(); pty:stop()
  if s2n then
    s2n:stop()
    behind:stop()
    eq(behind:flash():sub(0x40000 + 1, 0x40000 + #data), data, "ser2net: the image is in flash")
  end
  eq(good:flash():sub(0x10000 + 1, 0x10000 + #data), data, "good: the image is in flash")
  eq(faulty:flash():sub(0x10000 + 1, 0x10000 + #data), ("\255"):rep(#data), "faulty: the region is erased")
  eq(pty:flash():sub(0x30000 + 1, 0x30000 + #data), data, "local: load() wrote the image at the driver's address")
end)
