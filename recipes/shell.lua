-- shell: an interactive Lua console on a live ROM session, for bring-up. What works by hand can
-- be pasted into a recipe: the names below are the session's own methods (docs/api/connect.md).
local sys = require("ncpflash.core.sys")
local isp = require("ncpflash.core.isp")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")

local HELP = [[
s                      the session (s:read, s:write, s:erase, s:sha256, s:cmd, s:boot_info, s:mac ...)
cmd(NAME, payload, o)  one ROM command by isp.op name, e.g. cmd("FLASH_READ_JEDEC_ID", "", {data=true})
raw(bytes[, n, t])     write bytes as they are, return what arrives (up to n bytes, t seconds)
boot_info()            decoded get_boot_info        mac()  jedec()
efuse(addr, len)       read eFuse bytes (0x41)      read(addr, len)  flash bytes
hex(s) unhex(s)        op.NAME = opcode             sleep(s)  now()
A line is Lua; an expression prints its value. Incomplete statements continue on the next line.
exit (or end of input) leaves the shell.]]

local function show(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    if v:find("[^\32-\126]") then return "hex:" .. codec.hex(v) end
    return string.format("%q", v)
  elseif t == "table" and depth < 2 then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      if k ~= "raw" then parts[#parts + 1] = tostring(k) .. " = " .. show(v[k], depth + 1) end
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  elseif t == "number" and math.type(v) == "integer" and v > 255 then
    return string.format("%d (0x%X)", v, v)
  end
  return tostring(v)
end

local function history_path(a)
  if a.no_history then return nil end
  if a.history then return a.history end
  local base = sys.getenv("XDG_STATE_HOME")
  if not base or base == "" then base = (sys.getenv("HOME") or ".") .. "/.local/state" end
  sys.mkdirs(base .. "/ncpflash")
  return base .. "/ncpflash/shell_history"
end

return {
  help = "interactive Lua console on a live ROM session (raw commands, boot info, eFuse, flash; history)",
  description = [[
Connects (the usual ladder), then reads Lua lines from stdin: the session is `s`, plus the helpers
listed by `help`. Each line is appended to the history file ($XDG_STATE_HOME/ncpflash/shell_history,
--history FILE, --no-history), so a sequence tried by hand can be pasted into a recipe's run().
Piped input works too; the exit status is 1 when a line failed and stdin is not a terminal.]],
  args = {
    { "--history", type = "path", metavar = "FILE",
      help = "history file (default $XDG_STATE_HOME/ncpflash/shell_history)" },
    { "--no-history", flag = true, help = "keep no history" },
  },
  run = function(ctx, a)
    local s <close> = ctx:connect()
    local out = io.stdout
    local tty = sys.isatty(0)
    local hpath = history_path(a)
    local hist = hpath and io.open(hpath, "a")
    local env = setmetatable({
      s = s, isp = isp, op = isp.op, hex = codec.hex, unhex = codec.unhex, sleep = sys.sleep, now = sys.now,
      help = function() out:write(HELP, "\n") end,
      cmd = function(name, payload, o) return s:cmd(name, payload, o) end,
      raw = function(bytes, n, t)
        s.port:write(bytes)
        return s.port:read(n or 64, t or 0.2)
      end,
      boot_info = function() return s:boot_info() end,
      mac = function() return s:mac() end,
      jedec = function() return s:jedec() end,
      efuse = function(addr, len)
        return s:cmd("EFUSE_READ", string.pack("<I4I4", addr, len), { data = true })
      end,
      read = function(addr, len) return s:read(addr, len) end,
      print = function(...)
        local t = table.pack(...)
        for i = 1, t.n do t[i] = type(t[i]) == "string" and t[i] or show(t[i]) end
        out:write(table.concat(t, "\t", 1, t.n), "\n")
      end,
    }, { __index = _G })
    if tty then out:write("ncpflash shell on ", tostring(ctx.opts.port), " - 'help' lists the helpers\n") end
    local failures, lines = 0, 0
    local buf = nil
    while true do
      if tty then io.stderr:write(buf and ".. " or "ncp> "); io.stderr:flush() end
      local line = io.read("L")
      if not line then break end
      line = line:gsub("[\r\n]+$", "")
      if not buf and (line == "exit" or line == "quit") then break end
      if hist and line:match("%S") then hist:write(line, "\n"); hist:flush() end
      if not buf and line == "help" then line = "help()" end
      local src = buf and (buf .. "\n" .. line) or line
      local fn, err = load("return " .. src, "=shell", "t", env)
      if not fn then fn, err = load(src, "=shell", "t", env) end
      if not fn and err:match("<eof>$") then
        buf = src
      else
        buf = nil
        lines = lines + 1
        if not fn then
          failures = failures + 1
          io.stderr:write("error: ", err, "\n")
        elseif src:match("%S") then
          local res = table.pack(pcall(fn))
          if not res[1] then
            failures = failures + 1
            local e = res[2]
            if errors.is(e) and e.code == "interrupted" then error(e, 0) end
            io.stderr:write("error: ", tostring(errors.is(e) and e.message or e), "\n")
          elseif res.n > 1 then
            local parts = {}
            for i = 2, res.n do parts[#parts + 1] = show(res[i]) end
            out:write(table.concat(parts, "\t"), "\n")
          end
          out:flush()
        end
      end
    end
    if hist then hist:close() end
    if failures > 0 and not tty then
      errors.raise("shell", string.format("shell: %d of %d lines failed", failures, lines))
    end
  end,
}
