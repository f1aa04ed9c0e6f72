-- ncpflash.json: a small JSON reader for what ncpflash.util.json writes (device job event lines,
-- resume journals).  decode(s) -> value; arrays get the util.json_array metatable so they encode
-- back as arrays.  Raises a string error on malformed input.
local util = require "ncpflash.util"

local M = {}


function M.decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local esc = { n = "\n", r = "\r", t = "\t", b = "\b", f = "\f" }
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local j = s:find('["\\]', pos)
      if not j then error("json: unterminated string") end
      out[#out + 1] = s:sub(pos, j - 1)
      if s:sub(j, j) == '"' then pos = j + 1; break end
      local e = s:sub(j + 1, j + 1)
      if e == "u" then
        out[#out + 1] = utf8.char(tonumber(s:sub(j + 2, j + 5), 16)); pos = j + 6
      else
        out[#out + 1] = esc[e] or e; pos = j + 2
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      repeat
        ws(); local k = str(); ws(); pos = pos + 1
        t[k] = value(); ws()
        local sep = s:sub(pos, pos); pos = pos + 1
      until sep ~= ","
      return t
    elseif c == "[" then
      local t = setmetatable({}, util.json_array)
      pos = pos + 1; ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      repeat
        t[#t + 1] = value(); ws()
        local sep = s:sub(pos, pos); pos = pos + 1
      until sep ~= ","
      return t
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    end
    local num = s:match("^-?[%d%.eE+-]+", pos)
    if not num then error("json: unexpected " .. c .. " at " .. pos) end
    pos = pos + #num
    return math.tointeger(tonumber(num)) or tonumber(num)
  end
  return value()
end

return M
