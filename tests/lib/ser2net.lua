-- ser2net: start Debian's ser2net 4 on a contrib/ser2net/ser2net.yaml-style config in front of a
-- device path (a pty from ncpsim --pty), on a free loopback port.
local sys = require "ncpflash.core.sys"
local port = require "ncpflash.core.port"
local helpers = require "helpers"

local M = {}
M.bin = "/usr/sbin/ser2net"

function M.available() return sys.stat(M.bin) ~= nil end

-- A TCP port that was free a moment ago (ncppeer picks it, then exits).
local function free_port()
  local p <close> = helpers.peer{ "--raw", "0" }
  return tonumber(p.url:match(":(%d+)$"))
end

--- Start ser2net with contrib/ser2net/ser2net.yaml, its device path replaced by `device` and its
--- TCP port by a free one bound to 127.0.0.1.  Returns the helpers.spawn handle (also <close>)
--- with .port (the TCP port) and .config (the file written).
function M.start(device)
  local template = helpers.readfile(helpers.root .. "/contrib/ser2net/ser2net.yaml")
  for _ = 1, 3 do
    local tcp = free_port()
    local dir = helpers.tmpdir()
    local cfg = template:gsub("tcp,4001", "tcp,127.0.0.1," .. tcp)
      :gsub("serialdev,/dev/serial/by%-id/[^,]+,", "serialdev," .. device:gsub("%%", "%%%%") .. ",")
    assert(cfg:find("127.0.0.1," .. tcp, 1, true) and cfg:find(device, 1, true), "template changed shape")
    helpers.writefile(dir .. "/ser2net.yaml", cfg)
    local s = helpers.spawn{ M.bin, "-n", "-d", "-c", dir .. "/ser2net.yaml" }
    s.port, s.config = tcp, dir .. "/ser2net.yaml"
    local deadline = sys.now() + 5
    while sys.now() < deadline do
      local okc, p = pcall(port.open, "socket://127.0.0.1:" .. tcp, { connect_timeout = 0.5 })
      if okc then p:close(); sys.sleep(0.1); return s end
      local st = sys.wait(s.pid, 0)
      if st then s.status = st; break end
      sys.sleep(0.05)
    end
    s:stop()
  end
  error("ser2net did not start listening")
end

return M
