-- rawrom: ISP frames built here with string.pack, not with ncpflash's isp module, for the
-- tests that drive ncpsim directly: a misreading of protocol.md by either side then shows
-- up as a failure.
local port = require "ncpflash.core.port"

local M = {}

-- protocol.md 3.1: cmd, checksum (low byte of len_lo + len_hi + payload; 0 = unchecked), len LE16
function M.frame(cmd, payload, checksum)
  payload = payload or ""
  local cs = 0
  if checksum ~= false then
    cs = (#payload & 0xFF) + (#payload >> 8)
    for i = 1, #payload do cs = cs + payload:byte(i) end
    cs = cs & 0xFF
  end
  return string.pack("<BBI2", cmd, cs, #payload) .. payload
end

-- Reads one reply: "OK", "OK"+data (when `data`), or FL. Returns ok, data_or_code, raw.
function M.reply(p, data, timeout)
  timeout = timeout or 2
  local head = p:read(2, timeout)
  if head == "OK" then
    if not data then return true, nil, head end
    local l = p:read(2, timeout)
    if #l < 2 then return nil, "short", head .. l end
    local n = string.unpack("<I2", l)
    local d = p:read(n, timeout)
    return #d == n and true or nil, d, head .. l .. d
  elseif head == "FL" then
    local c = p:read(2, timeout)
    return false, #c == 2 and string.unpack("<I2", c) or nil, head .. c
  end
  return nil, "no reply", head
end

function M.cmd(p, c, payload, data, timeout)
  p:write(M.frame(c, payload))
  return M.reply(p, data, timeout)
end

-- The vendor's burst (6 ms of 0x55: 300 bytes at 500 kbaud), then the OK; waits out ncpsim's
-- 20 ms handshake guard before returning. n: another number of bytes.
function M.handshake(p, timeout, n)
  p:write(string.rep("\x55", n or math.floor(0.006 * p:baud() / 10)))
  local ok, seen = p:expect("OK", timeout or 0.5)
  require("ncpflash.core.sys").sleep(0.03)
  return ok, seen
end

function M.open(sim, baud)
  return port.open(sim.url, { baud = baud or 500000 })
end

function M.log_text(sim)
  local f = io.open(sim.log, "r")
  local t = f and f:read("a") or ""
  if f then f:close() end
  return t
end

function M.u32(v) return string.pack("<I4", v) end
function M.two(a, b) return string.pack("<I4I4", a, b) end

return M
