-- ST's NUCLEO kits as the module's host (issue 15, point 3): --host auto|BOARD with a fake
-- STM32_Programmer_CLI on PATH that records its arguments and prints a "Board :" line, and
-- ncpsim on a pty. The fake tells ncpsim (through its stdin) what the real NCP loader would do
-- to the module: Bootloader.bin started -> BOOT high while CHIP_EN rises (download mode); the
-- host application programmed -> the module boots its flash.
local sys = require "ncpflash.core.sys"
local SR = require "strelease"

local SIZE = 4 * 1024 * 1024

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")
skip_if(helpers.windows, "make test-win: the fake STM32_Programmer_CLI is a POSIX shell script, "
  .. "which ncpflash.exe cannot start under wine")

local FAKE = [[#!/bin/sh
# fake STM32_Programmer_CLI (ncpflash tests): records its arguments, prints what the real one
# prints on connect (a Board line), and plays the NCP loader's effect on ncpsim
echo "$*" >> "$FAKE_PROG_LOG"
echo "      -------------------------------------------------------------------"
echo "                        STM32CubeProgrammer v2.20.0"
echo "      -------------------------------------------------------------------"
echo "ST-LINK SN  : 003A00000000000000000000"
echo "ST-LINK FW  : V3J15M7"
echo "Board       : ${FAKE_PROG_BOARD:-NUCLEO-U575ZI-Q}"
if [ -n "$FAKE_PROG_FAIL" ]; then
  case "$*" in *"$FAKE_PROG_FAIL"*) echo "Error: failed to download the file"; exit 1 ;; esac
fi
case "$*" in
  *Bootloader.bin*) [ -n "$FAKE_SIM_CTL" ] && echo "reset boot" > "$FAKE_SIM_CTL" ;;
  *ST67W6X_CLI*|*UART_bypass*) [ -n "$FAKE_SIM_CTL" ] && echo "reset flash" > "$FAKE_SIM_CTL" ;;
esac
echo "File download complete"
exit 0
]]

-- A rig: the release, a fake programmer folder (with ExternalLoader/), ncpsim on a pty whose
-- stdin is a FIFO the fake writes to, and a keeper holding the FIFO open.
local function rig(opts)
  opts = opts or {}
  local dir = helpers.tmpdir()
  local R = SR.build(dir, { key = SR.sim_key() })
  local bin = dir .. "/cubeprog/bin"
  sys.mkdirs(bin .. "/ExternalLoader")
  helpers.writefile(bin .. "/STM32_Programmer_CLI", FAKE)
  os.execute("chmod +x '" .. bin .. "/STM32_Programmer_CLI'")
  for _, l in ipairs({ "MX25UM51245G_STM32N6570-NUCLEO.stldr", "MX25UW25645G_NUCLEO-H7S3L8.stldr" }) do
    helpers.writefile(bin .. "/ExternalLoader/" .. l, "loader")
  end
  local fifo = dir .. "/ctl"
  assert(os.execute("mkfifo '" .. fifo .. "'"))
  local keeper = helpers.spawn{ "sh", "-c", "exec sleep 300 > '" .. fifo .. "'" }
  local st = dir .. "/state"
  sys.mkdirs(st)
  -- the module runs an application at power-on (not the ROM): only the loader's strap helps
  if opts.app ~= false then
    helpers.writefile(st .. "/flash.bin", "BFNP" .. string.rep("\xFF", SIZE - 4))
  end
  local okk, sim = pcall(helpers.ncpsim, { "--pty", dir .. "/tty", "--state", st, "--power-on", "flash", "--strap",
    "flash", "--host-baud", "2000000", "--app-baud", "115200" }, { stdin = fifo })
  if not okk then keeper:stop(); error(sim, 0) end
  local log = dir .. "/prog.log"
  local env = { PATH = bin .. ":/usr/bin:/bin", FAKE_PROG_LOG = log, FAKE_SIM_CTL = fifo,
    FAKE_PROG_BOARD = opts.board or "NUCLEO-U575ZI-Q", HOME = dir }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local self = { R = R, dir = dir, bin = bin, sim = sim, log = log, env = env, keeper = keeper }
  function self.run(args, o)
    o = o or {}
    return helpers.run(args, { env = env, stdin = o.stdin, timeout = 120 })
  end
  function self.calls() return helpers.read_lines(log) end
  function self.stop()
    sim:stop()
    keeper:stop()
  end
  -- `local X <close> = rig{}`: the keeper and ncpsim stop even when the test fails
  return setmetatable(self, { __close = function() self.stop() end })
end

local function same_flash(got, want)
  if got == want then return end
  for i = 1, #want do
    if got:byte(i) ~= want:byte(i) then
      error(("flash differs first at 0x%X (0x%02X, expected 0x%02X)"):format(i - 1, got:byte(i), want:byte(i)), 2)
    end
  end
end

local function p(s) return (s:gsub("%p", "%%%0")) end

---------------------------------------------------------------------------------------------------

test("--host auto on a NUCLEO-U575ZI-Q: Board line, NCP loader, module at 2 Mbaud, eFuse, host app back",
  function()
  local X <close> = rig{}
  local r = X.run{ "--port", X.sim.url, "--yes", "st67w611m1/mission_t02", X.R.root, "--host", "auto",
    "--confirm-efuse-burn", "--audit", X.dir .. "/audit" }
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "STM32_Programmer_CLI: " .. p(X.bin) .. "/STM32_Programmer_CLI")
  match(r.out, "host board: STM32_Programmer_CLI says \"Board : NUCLEO%-U575ZI%-Q\"")
  match(r.out, "connected: .* at 2000000 baud")
  match(r.out, "burnt %d+ bits")
  match(r.out, "host NUCLEO%-U575ZI%-Q: its mission_t02 application is programmed back")
  local calls = X.calls()
  local b = p(X.R.bin)
  eq(calls[1], "-c port=swd mode=ur", "first the Board line")
  match(calls[2], "^%-c port=swd mode=ur %-w " .. b .. "/NUCLEO%-U575ZI%-Q_Binaries/Bootloader%.bin 0x08000000 %-%-go$")
  match(calls[#calls], "^%-c port=swd mode=ur %-w " .. b
    .. "/NUCLEO%-U575ZI%-Q_Binaries/ST67W6X_CLI_LWIP%.bin 0x08000000 %-%-go$")
  eq(#calls, 3, table.concat(calls, "\n"))
  X.stop()
  same_flash(X.sim:flash(), X.R.expected("mission_t02", "2.0.106", SIZE))
  eq(X.sim:efuse():sub(0x1D, 0x3C), require("ncpflash.core.codec").sha256(SR.PK), "the key hash is burnt")
end)

test("the port comes from the ST-LINK VCP (/dev/serial/by-id/*STLINK-V3*) when --port is not given", function()
  local X <close> = rig{}
  -- a user copy of the host table pointing its by-id folder elsewhere (the documented override)
  local byid = X.dir .. "/by-id"
  sys.mkdirs(byid)
  assert(os.execute(("ln -s '%s' '%s/usb-STMicroelectronics_STLINK-V3_003A00000000000000000000-if02'")
    :format(X.sim.url, byid)))
  helpers.writefile(byid .. "/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0", "not it")
  local root = X.dir .. "/cfg"
  sys.mkdirs(root .. "/boards")
  helpers.writefile(root .. "/boards/st67w611m1_hosts.lua", ([[
local sys = require("ncpflash.core.sys")
local t = load(sys.embedded_source("lua/ncpflash/boards/st67w611m1_hosts.lua"), "=builtin hosts", "t")()
t.vcp.dirs = { %q }
return t
]]):format(byid))
  local r = X.run{ "--lua-path", root, "st67w611m1/mfg", X.R.root, "--host", "NUCLEO-H563ZI", "--no-efuse" }
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "port: " .. p(byid) .. "/usb%-STMicroelectronics_STLINK%-V3_003A00000000000000000000%-if02 "
    .. "%(the ST%-LINK virtual COM port%)")
  local calls = X.calls()
  eq(#calls, 2, "a named board needs no Board line")
  -- the programmer is told which ST-LINK: the one whose port is flashed (its serial in the by-id name)
  match(calls[1], "^%-c port=swd sn=003A00000000000000000000 mode=ur %-w ")
  match(calls[1], "NUCLEO%-H563ZI_Binaries/Bootloader%.bin 0x08000000 %-%-go$")
  match(calls[2], "NUCLEO%-H563ZI_Binaries/UART_bypass%.bin 0x08000000 %-%-go$")
  -- two ST-LINKs: refused, naming both
  assert(os.execute(("ln -s '%s' '%s/usb-STMicroelectronics_STLINK-V3_004B-if02'"):format(X.sim.url, byid)))
  r = X.run{ "--lua-path", root, "st67w611m1/mfg", X.R.root, "--host", "NUCLEO-H563ZI", "--no-efuse" }
  eq(r.code, 2)
  match(r.err, "2 ST%-LINK virtual COM ports %(.*003A.*, .*004B.*%): give %-%-port")
  X.stop()
end)

test("NUCLEO-N657X0-Q: external flash at 0x70000000 with its external loader, the BOOT switch prompts", function()
  local X <close> = rig{}
  local r = X.run({ "--port", X.sim.url, "st67w611m1/mission_t01", X.R.root, "--host", "auto", "--no-efuse" },
    { stdin = "\n\n\n\n" })
  -- the Board line names the N6 only when told so
  eq(r.code, 0, r.err)
  local X6 <close> = rig{ board = "NUCLEO-N657X0-Q" }
  r = X6.run({ "--port", X6.sim.url, "st67w611m1/mission_t01", X6.R.root, "--host", "auto", "--no-efuse" },
    { stdin = "\n\n\n\n" })
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "set the BOOT1 switch to position 2%-3 %(development mode")
  match(r.out, "set BOOT0 and BOOT1 to position 1%-2 %(boot from external flash%), then press the board's reset button")
  local calls = X6.calls()
  local loader = p(X6.bin .. "/ExternalLoader/MX25UM51245G_STM32N6570-NUCLEO.stldr")
  match(calls[2], "NUCLEO%-N657X0%-Q_Binaries/Bootloader%.bin 0x70000000 %-%-extload " .. loader .. "$")
  match(calls[3], "NUCLEO%-N657X0%-Q_Binaries/ST67W6X_CLI_FSBL%.bin 0x70000000 %-%-extload " .. loader .. "$")
  X6.stop()
  same_flash(X6.sim:flash(), X6.R.expected("mission_t01", "2.0.106", SIZE))
  -- nobody at the board: the prompt cannot be answered, nothing is flashed
  local X7 <close> = rig{ board = "NUCLEO-N657X0-Q" }
  r = X7.run{ "--port", X7.sim.url, "--retries", "1", "st67w611m1/mission_t01", X7.R.root, "--host", "auto",
    "--no-efuse", "--no-retry" }
  eq(r.code, 3, r.err)
  match(r.err, "nobody answered on stdin")
  X7.stop()
  eq(X7.sim:flash():sub(1, 4), "BFNP", "the module's flash is untouched")
  X.stop()
end)

test("NUCLEO-H7R3L8 is treated as the H7S3L8: Boot at 0x08000000, Appli at 0x70000000 with its loader", function()
  local X <close> = rig{ board = "NUCLEO-H7R3L8" }
  local r = X.run{ "--port", X.sim.url, "st67w611m1/mission_t02", X.R.root, "--host", "auto", "--no-efuse" }
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "NUCLEO%-H7R3L8 is treated as NUCLEO%-H7S3L8")
  local calls = X.calls()
  local n = #calls
  match(calls[n - 1], "NUCLEO%-H7S3L8_Binaries/ST67W6X_CLI_LWIP_Boot%.bin 0x08000000$")
  match(calls[n], "NUCLEO%-H7S3L8_Binaries/ST67W6X_CLI_LWIP_Appli%.bin 0x70000000 %-%-extload "
    .. p(X.bin) .. "/ExternalLoader/MX25UW25645G_NUCLEO%-H7S3L8%.stldr$")
  X.stop()
end)

test("a bare STLINK-V3SET: the board is asked for; no answer is a usage error before anything runs", function()
  local X <close> = rig{ board = "STLINK-V3SET" }
  local r = X.run({ "--port", X.sim.url, "st67w611m1/mfg", X.R.root, "--host", "auto", "--no-efuse" },
    { stdin = "3\n" })
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "%[3%] NUCLEO%-H563ZI")
  local calls = X.calls()
  match(calls[2], "NUCLEO%-H563ZI_Binaries/Bootloader%.bin")
  local before = #calls
  r = X.run{ "--port", X.sim.url, "st67w611m1/mfg", X.R.root, "--host", "auto", "--no-efuse" }
  eq(r.code, 2)
  match(r.err, "the ST%-LINK is a bare STLINK%-V3SET: no board chosen %(nothing on stdin%)")
  match(r.err, "%-%-host NUCLEO%-U575ZI%-Q")
  eq(#X.calls(), before + 1, "only the Board line was asked")
  X.stop()
end)

test("no STM32_Programmer_CLI: exit 2 saying where it looked; a failing programmer: exit 3, retried once", function()
  local X <close> = rig{}
  local r = helpers.run({ "--port", X.sim.url, "st67w611m1/mfg", X.R.root, "--host", "auto", "--no-efuse" },
    { env = { PATH = "/usr/bin:/bin", HOME = X.dir } })
  eq(r.code, 2)
  match(r.err, "STM32_Programmer_CLI %(STM32CubeProgrammer%) and it was not found %(looked in PATH, "
    .. "/usr/local/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin, " .. p(X.dir)
    .. "/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin")
  -- the default folder is found without PATH
  local home = X.dir .. "/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin"
  sys.mkdirs(home)
  os.execute(("cp -a '%s/.' '%s/'"):format(X.bin, home))
  r = helpers.run({ "--port", X.sim.url, "st67w611m1/mfg", X.R.root, "--host", "NUCLEO-U575ZI-Q", "--no-efuse" },
    { env = { PATH = "/usr/bin:/bin", HOME = X.dir, FAKE_PROG_LOG = X.log, FAKE_SIM_CTL = X.env.FAKE_SIM_CTL } })
  eq(r.code, 0, r.err)
  match(r.out, "STM32_Programmer_CLI: " .. p(home))
  -- the programmer fails on the loader: the handshake fails with its message, the job is retried once
  X.sim:stop()
  local Y <close> = rig{ env = { FAKE_PROG_FAIL = "Bootloader.bin" } }
  r = Y.run{ "--port", Y.sim.url, "--retries", "1", "st67w611m1/mfg", Y.R.root, "--host", "NUCLEO-U575ZI-Q",
    "--no-efuse" }
  eq(r.code, 3, r.err)
  match(r.err, "STM32_Programmer_CLI could not program Bootloader%.bin at 0x08000000 %(exit status 1%): "
    .. "Error: failed to download the file")
  match(r.err, "retrying once")
  eq(#Y.calls(), 2, "the loader was tried once per attempt")
  Y.stop()
  X.stop()
end)

test("st67w611m1/chip_info --host: NCP_get_chip_info through the NUCLEO (the loader stays)", function()
  local X <close> = rig{}
  local r = X.run{ "--port", X.sim.url, "--json", "st67w611m1/chip_info", X.R.root, "--host", "auto" }
  eq(r.code, 0, r.err)
  local res
  for _, e in ipairs(helpers.json_lines(r.out)) do if e.event == "result" then res = e end end
  -- the unit's own factory MAC: its chip id (each ncpsim state dir is its own chip)
  eq(res.chip_info["Default MAC Address"], (X.sim.chip_id:upper():gsub("(%x%x)", "%1:"):gsub(":$", "")))
  eq(res.chip_info["JTAG"], "Enabled")
  local calls = X.calls()
  eq(#calls, 2, "Board line and the loader; no application afterwards")
  X.stop()
end)

test("missing host files are found before anything is flashed: exit 7 naming them", function()
  local X <close> = rig{ board = "NUCLEO-N657X0-Q" }
  os.remove(X.bin .. "/ExternalLoader/MX25UM51245G_STM32N6570-NUCLEO.stldr")
  local r = X.run{ "--port", X.sim.url, "st67w611m1/mission_t02", X.R.root, "--host", "auto", "--no-efuse" }
  eq(r.code, 7, r.err)
  match(r.err, "external loader MX25UM51245G_STM32N6570%-NUCLEO%.stldr not found %(STM32CubeProgrammer installs it in "
    .. p(X.bin) .. "/ExternalLoader%)")
  eq(#X.calls(), 1, "only the Board line was asked")
  os.execute("rm -rf '" .. X.R.bin .. "/NUCLEO-U575ZI-Q_Binaries'")
  r = X.run{ "--port", X.sim.url, "st67w611m1/mission_t02", X.R.root, "--host", "NUCLEO-U575ZI-Q", "--no-efuse",
    "--programmer", X.bin .. "/STM32_Programmer_CLI" }
  eq(r.code, 7, r.err)
  match(r.err, "NUCLEO%-U575ZI%-Q_Binaries not found: the release has no files for the host board NUCLEO%-U575ZI%-Q")
  -- an application the release lacks is a warning up front, and the board keeps the loader
  os.remove(X.R.hostfile("NUCLEO-H563ZI", "ST67W6X_CLI_LWIP.bin"))
  r = X.run{ "--port", X.sim.url, "st67w611m1/mission_t02", X.R.root, "--host", "NUCLEO-H563ZI", "--no-efuse" }
  eq(r.code, 0, r.err)
  match(r.err, "the release has no mission_t02 host application for NUCLEO%-H563ZI %(.*ST67W6X_CLI_LWIP%.bin%): the "
    .. "board keeps the NCP loader")
  match(r.out, "host NUCLEO%-H563ZI: keeps the NCP loader")
  X.stop()
  eq(X.sim:flash():sub(0x10000 + 1, 0x10000 + 4), "BFNP")
end)
