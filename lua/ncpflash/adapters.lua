-- ncpflash.adapters: USB-UART bridges by VID:PID and what is known to limit them (data only).
-- Sources: st67w611m1.md §7.2 (CP2102 1 Mbaud; CH340 garbage at 2 Mbaud before Linux 5.5; FTDI and
-- ST-LINK VCP confirmed by ST), protocol.md §1.2 (Bouffalo bridge, ST NUCLEO wiring).
local M = {}

M.known = {
  ["10C4:EA60"] = { name = "Silicon Labs CP210x", max_baud = 1000000,
    limits = "CP2102/CP2104 (non-N) stop at 1 Mbaud, so the 2 Mbaud load speed fails after the handshake; "
      .. "CP2102N goes to 3 Mbaud. Low-latency mode is not supported by the cp210x driver",
    next = "use --load-baud 921600 (or 1000000) with a CP2102" },
  ["1A86:7523"] = { name = "WCH CH340", max_baud = 2000000,
    limits = "2 Mbaud is garbled on Linux kernels before 5.5 (ch341 driver line-speed rework)",
    next = "on an old kernel use --load-baud 921600, or an FTDI adapter" },
  ["1A86:5523"] = { name = "WCH CH341", max_baud = 2000000,
    limits = "as the CH340: 2 Mbaud unreliable on Linux before 5.5", next = "try --load-baud 921600" },
  ["1A86:55D4"] = { name = "WCH CH9102", max_baud = 4000000, limits = "needs the cdc_acm/ch9102 driver of a "
      .. "recent kernel", next = nil },
  ["0403:6001"] = { name = "FTDI FT232R", max_baud = 3000000,
    limits = "none known at 2 Mbaud (confirmed working by ST); honours low-latency mode (1 ms)" },
  ["0403:6010"] = { name = "FTDI FT2232", max_baud = 12000000, limits = "none known" },
  ["0403:6011"] = { name = "FTDI FT4232", max_baud = 12000000, limits = "none known" },
  ["0403:6014"] = { name = "FTDI FT232H", max_baud = 12000000, limits = "none known" },
  ["0403:6015"] = { name = "FTDI FT-X (FT230X/FT231X)", max_baud = 3000000, limits = "none known" },
  ["067B:2303"] = { name = "Prolific PL2303", max_baud = 1228800,
    limits = "older PL2303 revisions top out near 1.2 Mbaud", next = "try --load-baud 921600" },
  ["0483:374B"] = { name = "ST-LINK/V2-1 VCP", max_baud = 2000000,
    limits = "on NUCLEO boards DTR/RTS are not wired to the module: BOOT/CHIP_EN need the host MCU "
      .. "(ST's NCP_Loader) or the buttons",
    next = "use --reset manual, or --reset cmd:'...' running your loader" },
  ["0483:374E"] = { name = "ST-LINK/V3 VCP", max_baud = 2000000,
    limits = "DTR/RTS are not wired to the module on NUCLEO/X-NUCLEO boards; the VCP is confirmed at 2 Mbaud",
    next = "use --reset manual, or --reset cmd:'...' running your loader" },
  ["0483:374F"] = { name = "ST-LINK/V3 VCP", max_baud = 2000000,
    limits = "DTR/RTS are not wired to the module on NUCLEO/X-NUCLEO boards",
    next = "use --reset manual, or --reset cmd:'...' running your loader" },
  ["0483:3753"] = { name = "ST-LINK/V3 VCP (dual)", max_baud = 2000000,
    limits = "DTR/RTS are not wired to the module on NUCLEO/X-NUCLEO boards",
    next = "use --reset manual, or --reset cmd:'...' running your loader" },
  ["42BF:B210"] = { name = "Bouffalo CK-Link / bridge", max_baud = 2000000,
    limits = "resets through the in-band BOUFFALOLAB5555RESET string, not DTR/RTS (not implemented)",
    next = "use --reset manual" },
}

--- Look up an adapter from port:info(). Returns {vid_pid=, name=, limits=, next=, max_baud=} or nil.
function M.lookup(info)
  if not info or not info.usb_vid or info.usb_vid < 0 then return nil end
  local key = string.format("%04X:%04X", info.usb_vid, info.usb_pid or 0)
  local k = M.known[key]
  local r = { vid_pid = key, name = (k and k.name) or info.product or info.description or "USB serial adapter",
    limits = k and k.limits or "none known to ncpflash", next = k and k.next, max_baud = k and k.max_baud }
  return r
end

return M
