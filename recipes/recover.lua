-- recover: the escalation for a module that will not flash (st67w611m1.md §7.4, the t01 report):
-- probe, repeated strap entry with longer holds, a lower handshake baud, then a chip erase as soon
-- as the ROM answers, and a re-flash when --config is given. Every step is logged.
local sys = require("ncpflash.core.sys")
local session = require("ncpflash.session")
local reset = require("ncpflash.reset")
local errors = require("ncpflash.errors")
local flash = require("ncpflash.flash")

local function strap(base, hold, lead)
  return reset.retime(base, { { boot = 1 }, { wait = lead }, { en = 0 }, { wait = hold }, { en = 1 }, { wait = 0.05 },
      { boot = 0 }, { wait = 0.02 } },
    string.format("strap entry, BOOT %g ms ahead, CHIP_EN low %g ms", lead * 1000, hold * 1000))
end

return {
  help = "recover a module that will not flash: strap entry with longer holds, lower baud, chip erase, re-flash",
  description = [[
The escalation for a module whose application keeps the ROM from answering (the ST67W611M1 t01
report: only a full chip erase made it flashable again). Steps, each logged:
  1. probe: is a ROM session already open?
  2. strap entry with BOOT raised first and CHIP_EN held low for 50, 200, 500, 1000 ms
  3. the longest strap at a lower handshake baud (115200)
  4. the ladder from --reset / the board (e.g. manual) when the lines cannot do it
As soon as the ROM answers: chip erase (the application is gone), then, with --config, the
release is flashed on the same session (an ini with skip_mode is refused before anything is
sent: the chip erase would wipe those bytes; --no-erase --config keeps them and uses the ini's
own erase). Exit 3 when the ROM never answered. On a port without
modem lines (pty, socket://) steps 2 and 3 are left out: give --reset manual or --reset cmd:...]],
  args = {
    { "--config", type = "file", metavar = "INI", help = "flash this flash_prog_cfg.ini after the chip erase" },
    { "--no-erase", flag = true, help = "do not chip-erase when the ROM answers (only get in)" },
  },
  run = function(ctx, a)
    local ev = ctx.ev
    local board, chip = ctx:board(), ctx:chip()
    -- validate the release before touching the chip (bad ini, missing file: exit 7, nothing sent)
    local cfg = a.config and require("ncpflash.progcfg").load(a.config, flash.ini_options(board, chip))
    for _, w in ipairs(cfg and cfg.warnings or {}) do ev:warn(w) end
    local plan = cfg and flash.config_plan(cfg, board, chip)
    -- skip_mode means "leave these bytes alone"; the chip erase of recover cannot
    if cfg and #(cfg.skip or {}) > 0 and not a.no_erase then
      local sk = cfg.skip[1]
      errors.raise("input", string.format("recover --config %s: the ini keeps skip_mode ranges (0x%X, %d bytes%s), "
        .. "and recover's chip erase would destroy them", a.config, sk.address, sk.length,
        #cfg.skip > 1 and string.format(", and %d more", #cfg.skip - 1) or ""), { hint = "recover --no-erase --config "
          .. "X.ini gets in without erasing and flashes the ini with its skip_mode; or save those bytes first "
          .. "(ncpflash read ADDR LEN FILE)" })
    end
    local ladder = reset.ladder({ reset = ctx.opts.reset }, board)
    local base
    for _, st in ipairs(ladder) do
      if reset.has(st, "line_steps") then base = st; break end
    end
    local hs = ctx.opts.baud or chip.baud.handshake
    local steps = { { what = "probe: is the ROM already listening?", reset = { { kind = "none", name = "none" } },
      retries = 1, probe = true } }
    -- strap steps need the port's modem lines: a port without them (a pty, socket://) cannot
    -- perform one, so they are left out and a manual or command reset is asked for instead
    local lines_ok, port_kind = true, nil
    if base and reset.has(base, "modem_lines") then
      local p <close> = ctx:open_port({ baud = hs })
      local info = p:info()
      lines_ok, port_kind = info.lines ~= false, info.kind
    end
    if base and not lines_ok then
      ev:info(string.format("this port (%s) has no modem lines: the strap steps are left out", tostring(port_kind)))
      base = nil
    end
    if base then
      for _, hold in ipairs({ 0.05, 0.2, 0.5, 1.0 }) do
        steps[#steps + 1] = { what = string.format("strap entry: BOOT high first, CHIP_EN low for %g ms", hold * 1000),
          reset = { strap(base, hold, 0.05) }, retries = 2 }
      end
      steps[#steps + 1] = { what = "strap entry at a lower handshake baud (115200), CHIP_EN low for 1000 ms",
        reset = { strap(base, 1.0, 0.1) }, retries = 2, baud = math.min(115200, hs) }
    end
    local others = {}
    for _, st in ipairs(ladder) do
      -- the remaining strategies; without modem lines none that needs them
      if st ~= base and (lines_ok or not reset.has(st, "modem_lines")) then others[#others + 1] = st end
    end
    if #others > 0 then
      steps[#steps + 1] = { what = "the remaining strategies: " .. reset.describe(others[1]), reset = others }
    end
    local s, last
    local t0 = sys.now()
    ev:stage("recover", { steps = #steps })
    for i, st in ipairs(steps) do
      ev:info(string.format("step %d/%d: %s", i, #steps, st.what), { step = i, what = st.what })
      local ok, res = errors.catch(session.connect, ctx, { reset = st.reset, retries = ctx.opts.retries or st.retries,
        baud = st.baud,
        probe = st.probe or false, app = (last and not last.app) and false or nil })
      if ok then
        s = res
        ev:info(string.format("step %d/%d: the ROM answered after %.1f s", i, #steps, sys.now() - t0),
          { step = i, result = "ok" })
        break
      end
      -- go on only after a failed handshake or a ROM that stopped answering mid-connect
      if not (res.code == "handshake" or res.code == "timeout" or res.code == "protocol") then
        error(res, 0)
      end
      last = res
      local label = res.kind or res.code
      if res.app then label = string.format("%s (text at %d baud: %q)", label, res.app.baud, res.app.line) end
      ev:info(string.format("step %d/%d: %s", i, #steps, label), { step = i, result = res.kind or res.code })
    end
    if not s then
      if not lines_ok and #others == 0 then
        errors.raise("usage", string.format("recover: this port cannot drive BOOT/CHIP_EN (%s: no modem lines), so "
          .. "recover cannot strap the chip into download mode: give --reset manual (you press BOOT and reset when "
          .. "asked) or --reset cmd:'...' (a program that does it)", ctx.opts.port or "the port"),
          { hint = "an adapter with DTR/RTS wired to BOOT/CHIP_EN (or rfc2217:// instead of socket://) lets recover "
            .. "strap the chip itself" })
      end
      -- recover was the escalation: its hint says what is left, never "run recover"
      errors.raise("handshake", string.format("recover: the ROM never answered (%d steps, last: %s)", #steps,
        last and (last.kind or last.code) or "?"), { kind = last and last.kind, app = last and last.app,
        hint = "the chip never entered download mode: check power and the BOOT/CHIP_EN wiring (BOOT high while "
          .. "CHIP_EN rises); press the buttons yourself with --reset manual, or let your own program do it with "
          .. "--reset cmd:'...'; a slow adapter: --baud 115200" })
    end
    local guard <close> = s   -- closed on every way out (the re-flash closes it too; idempotent)
    local result = { steps = #steps, seconds = sys.now() - t0, rom_version = guard.info.rom_version }
    if not a.no_erase then
      ev:stage("erase", { all = true })
      ev:info("chip erase now (the application in flash is what kept the ROM away)")
      local te = sys.now()
      s:erase_all()
      result.erased = true
      ev:info(string.format("chip erased in %.1f s", sys.now() - te))
    end
    if a.config then
      ev:info("re-flashing " .. a.config .. " on the same session")
      local rctx = setmetatable({ connect = function() return s end }, { __index = ctx })
      -- after the chip erase nothing needs erasing; with --no-erase the ini's own erase policy
      local sum = flash.from_config(rctx, a.config, { erase = (not a.no_erase) and 0 or nil, plan = plan })
      result.flashed = sum and sum.regions
    end
    ev:result(result)
    ev:info(a.config and "recovered: the release is flashed and verified" or
      (a.no_erase and "recovered: the ROM answers" or
        "recovered: the chip is erased; flash it now (ncpflash flash --config X.ini)"))
  end,
}
