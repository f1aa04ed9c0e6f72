-- st67w611m1/chip_info: ST's NCP_get_chip_info job: read the module's 512-byte eFuse and print
-- the fields ST's read_chip_info prints, with ST's values (--json: under chip_info).
local util = require("ncpflash.util")
local codec = require("ncpflash.core.codec")
local efuse = require("ncpflash.efuse")
local burn = require("ncpflash.efuse_burn")
local chipinfo = require("ncpflash.chipinfo")
local errors = require("ncpflash.errors")
local hostboard = require("ncpflash.hostboard")
local layout = require("ncpflash.release_layout")

return {
  board = "st67w611m1",
  needs = { "exec" },       -- --host runs STM32_Programmer_CLI
  help = "ST's NCP_get_chip_info job: the module's eFuse as ST's chip information (part number, MACs, trims...)",
  description = [[
Reads the eFuse (0x000-0x1FF, as ST's script does with QConn_Eflash) and prints what ST's
read_chip_info prints, line for line and with the same values: JTAG, Public Key,
Anti-rollback (enable, Bootloader and Application counters), the three MAC addresses, Part
Number, Manufacturing Year/Week, BOM Id and the RF trims that are enabled with a matching
parity bit (wifi_hp_poffset, wifi_lp_poffset: 14 channels; ble_poffset; xtal). --json
carries them under chip_info with ST's names as keys. `info` and `efuse read` show the same.

--host auto|BOARD goes through a NUCLEO kit as the mission recipes do (FOLDER is then the
release, for <BOARD>_Binaries/Bootloader.bin); the NUCLEO keeps running the NCP loader
afterwards, as with ST's script.]],
  args = {
    { "folder", type = "path", optional = true, help = "with --host: the release (ST67W6X_Scripts or Binaries)" },
    { "--host", metavar = "auto|BOARD", help = "through a NUCLEO host board (see st67w611m1/mission_t02 --help)" },
    { "--programmer", type = "file", metavar = "PATH", help = "with --host: STM32_Programmer_CLI to use" },
    { "--raw", type = "path", metavar = "FILE", help = "also save the 512 eFuse bytes to FILE (ST's flash.bin)" },
  },
  run = function(ctx, a)
    local map, board_efuse = efuse.map_for(ctx)
    local connect
    local host
    if a.host then
      if not a.folder then errors.raise("usage", "--host needs the release FOLDER (for the NCP loader)") end
      host = hostboard.prepare(ctx, ctx:board(), { host = a.host, programmer = a.programmer,
        binaries = layout.binaries_dir(a.folder) })
      connect = hostboard.connect_opts(ctx, host)
    elseif a.programmer or a.folder then
      errors.raise("usage", "FOLDER and --programmer go with --host")
    end
    local s <close> = ctx:connect(connect)
    local bytes = burn.read(s, map)
    if a.raw then
      util.writefile(a.raw, bytes)
      ctx.ev:info("saved the eFuse (512 bytes) to " .. a.raw)
    end
    local res = { command = "st67w611m1/chip_info", chip_id = s:boot_info().chip_id, mac = s:mac(),
      raw = codec.hex(bytes) }
    local lines = chipinfo.report(bytes, board_efuse, res)
    if host then
      lines[#lines + 1] = ("(the %s keeps running the NCP loader: program its application to use the module)")
        :format(host.name)
    end
    res.summary = lines
    ctx.ev:result(res)
  end,
}
