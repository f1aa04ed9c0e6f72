-- ncpflash.json: JSON for event lines (--json, device jobs), journals and eFuse records.
-- encode(v) -> string; decode(s) -> value (a small reader for what encode writes; arrays get the
-- json.array metatable so they encode back as arrays; raises a string error on malformed input).
local M = {}

--- Metatable marking a table as a JSON array (so an empty one encodes as []).
M.array = {}

-- `s` as valid UTF-8: well-formed sequences are kept, any other byte becomes the character of
-- the same number (Latin-1), so that every JSON line is valid UTF-8 whatever a message quotes.
local function utf8_clean(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local n, bad = utf8.len(s, i)
    if n then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = utf8.char(s:byte(bad))
    i = bad + 1
  end
  return table.concat(out)
end
M.utf8_clean = utf8_clean

local function json_string(s)
  s = utf8_clean(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local b = c:byte()
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\r" then return "\\r"
    elseif c == "\t" then return "\\t" elseif b < 32 or b == 127 then
      return ("\\u%04x"):format(b)
    end
    return c
  end) .. '"'
end

--- Encode a Lua value as JSON.  Tables with only integer keys 1..n become
--- arrays; other tables become objects with sorted keys.  Binary strings
--- should be hex-encoded by the caller; bytes that are not UTF-8 are escaped as the Latin-1
--- character of the same number, so the output is always valid UTF-8.
function M.encode(v)
  local t = type(v)
  if t == "nil" then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return tostring(v) end
    return (("%.6g"):format(v))
  elseif t == "string" then return json_string(v)
  elseif t == "table" then
    local n = #v
    local count = 0
    for _ in pairs(v) do count = count + 1 end
    if count == n and (n > 0 or getmetatable(v) == M.array) then
      local out = {}
      for i = 1, n do out[i] = M.encode(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = {}
    for _, k in ipairs(keys) do
      local val = v[k]
      if type(val) ~= "function" and type(val) ~= "userdata" then
        out[#out + 1] = json_string(tostring(k)) .. ":" .. M.encode(val)
      end
    end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return json_string(tostring(v))
end

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
      local t = setmetatable({}, M.array)
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
