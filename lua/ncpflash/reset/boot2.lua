-- Reset kind "boot2": boot2 ISP entry for boards without BOOT wiring (protocol.md §5.5): asks a
-- running application's shell to reboot, streams 0x55 at `baud` (2000000) until boot2 says
-- "Boot2 ISP Ready" (timeout 5 s), then the ROM handshake follows after `settle` (0.3 s).
--   { kind="boot2", baud=, timeout=, settle= }   --reset: "boot2"
local sys = require("ncpflash.core.sys")

local K = { order = 5, flags = {} }

function K.claims(v) return v == "boot2" end

function K.parse() return { kind = "boot2" } end

function K.validate(st, _, n)
  n.baud = st.baud or 2000000
  n.timeout = st.timeout or 5
  n.settle = st.settle or 0.3
  return n
end

function K.describe(st) return string.format("boot2 ISP entry at %d baud", st.baud) end

function K.enter(d)
  local st, p = d.st, d.port
  local old = p:baud()
  p:set_baud(st.baud)
  p:flush_input()
  p:write("\r\nispboot if\r\nreboot\r\n")
  local deadline = sys.now() + st.timeout
  local seen = ""
  local ok = false
  while sys.now() < deadline do
    p:write(string.rep("\x55", 32))
    seen = (seen .. p:read(256, 0.05)):sub(-512)
    if seen:find("Boot2 ISP Ready", 1, true) then ok = true; break end
  end
  p:set_baud(old)
  if not ok then return false, string.format("boot2 did not answer \"Boot2 ISP Ready\" within %g s", st.timeout) end
  sys.sleep(st.settle)        -- boot2 reboots into the ROM's interface boot
  p:flush_input()
  return true
end

function K.run() return false, "boot2 has no run sequence" end

return K
