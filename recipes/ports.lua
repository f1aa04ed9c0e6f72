-- ports: list the serial ports this machine has.
local port = require "ncpflash.core.port"

return {
  help = "list serial ports (description, USB VID:PID, serial number, by-id path)",
  args = {},
  run = function(ctx)
    local list = port.list()
    local lines = {}
    for _, p in ipairs(list) do
      local usb = p.vid and ("%04x:%04x"):format(p.vid, p.pid) or "-"
      lines[#lines + 1] = ("%-16s %-9s %-14s %s%s"):format(p.name, usb, p.serial or "-",
        p.description or "", p.by_id and ("\n" .. (" "):rep(17) .. p.by_id) or "")
    end
    if #list == 0 then lines[1] = "no serial ports found" end
    ctx.ev:result({ ports = setmetatable(list, require("ncpflash.json").array),
      summary = lines })
  end,
}
