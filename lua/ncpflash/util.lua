-- ncpflash.util: small helpers shared by the library and recipes.
local sys = require "ncpflash.core.sys"
local errors = require "ncpflash.errors"

local M = {}

local suffix = { k = 1024, K = 1024, KiB = 1024, M = 1048576, MiB = 1048576 }

--- Parse an unsigned 32-bit number: decimal, 0x hex, optional k/K/KiB/M/MiB
--- suffix.  Returns the integer or nil, reason.
function M.parse_u32(s)
  if math.type(s) == "integer" then
    if s < 0 or s > 0xFFFFFFFF then return nil, "out of range 0..0xFFFFFFFF" end
    return s
  end
  if type(s) ~= "string" then return nil, "not a number" end
  local num, suf = s:match("^%s*(0[xX]%x+)%s*(%a*)%s*$")
  local v
  if num then
    v = tonumber(num:sub(3), 16)
  else
    num, suf = s:match("^%s*(%d+)%s*(%a*)%s*$")
    v = num and tonumber(num, 10)
  end
  if not v then return nil, "expected a number like 4096, 0x1000 or 64K" end
  if suf ~= "" then
    local m = suffix[suf]
    if not m then return nil, ("unknown suffix %q (use k, K, KiB, M or MiB)"):format(suf) end
    v = v * m
  end
  if v > 0xFFFFFFFF then return nil, "out of range 0..0xFFFFFFFF" end
  return math.tointeger(v)
end

--- Human size: 1536 -> "1.5 KiB".
function M.fmt_size(n)
  if n < 1024 then return ("%d B"):format(n) end
  if n < 1048576 then return ("%.1f KiB"):format(n / 1024) end
  return ("%.2f MiB"):format(n / 1048576)
end

function M.hex(s, sep)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) .. (sep or "") end))
end

--- Hex of the first `max` bytes of `s`, with "..." when there are more (for messages).
function M.hex_prefix(s, max)
  local h = M.hex(s:sub(1, max))
  if #s > max then h = h .. "..." end
  return h
end

--- Edit distance, for "did you mean" suggestions.
function M.distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The closest of `candidates` to `word`, or nil when none is close.
function M.suggest(word, candidates)
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = M.distance(word, c)
    if not bestd or d < bestd then best, bestd = c, d end
  end
  if best and bestd <= math.max(2, #word // 3) then return best end
  return nil
end

--- Read a whole file; raises an "input" error naming the file.
function M.readfile(path, what)
  local f, err = io.open(path, "rb")
  if not f then errors.raise("input", ("cannot read %s%s"):format(what and (what .. " ") or "", err)) end
  local data = f:read("a")
  f:close()
  return data
end

function M.writefile(path, data)
  local f, err = io.open(path, "wb")
  if not f then errors.raise("input", "cannot write " .. err) end
  local ok, werr = f:write(data)
  if not ok then f:close(); errors.raise("input", "cannot write " .. path .. ": " .. tostring(werr)) end
  f:close()
end

--- Raise an "input" error about a field of a binary structure (`what`: "boot header",
--- "partition table", "OTA header"), with fields file, offset, field, expected, found.
function M.bad_field(what, file, offset, field, expected, found)
  errors.raise("input", ("%s: %s: %s at offset 0x%X: expected %s, found %s"):format(file, what, field, offset,
    tostring(expected), tostring(found)),
    { file = file, offset = offset, field = field, expected = expected, found = found })
end

--- Append one "  PROBLEM: ..." line per {field=, offset=, expected=, found=} to the list `out`.
function M.problem_lines(out, problems)
  for _, p in ipairs(problems) do
    out[#out + 1] = ("  PROBLEM: %s at 0x%X: expected %s, found %s"):format(p.field, p.offset,
      tostring(p.expected), tostring(p.found))
  end
  return out
end

function M.dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

--- Names NAME of the modules ncpflash.SUB.NAME that can be required: files SUB/NAME.lua under
--- the --lua-path/config roots (ROOT/SUB/ or ROOT/ncpflash/SUB/) and in the built-in library
--- (lua/ncpflash/SUB/). Sorted, each once. This is how data and plug-in directories (chips,
--- reset kinds) are listed: nothing to register besides the file.
function M.module_names(sub)
  local seen, out = {}, {}
  local function add(n)
    if n and not seen[n] and n:match("^[%w_%-]+$") then seen[n] = true; out[#out + 1] = n end
  end
  for _, dir in ipairs(sys.get_roots and sys.get_roots() or {}) do
    for _, d in ipairs({ dir .. "/" .. sub, dir .. "/ncpflash/" .. sub }) do
      for _, f in ipairs(sys.listdir(d) or {}) do add(f:match("^(.+)%.lua$")) end
    end
  end
  for _, p in ipairs(sys.embedded("lua/ncpflash/" .. sub .. "/")) do add(p:match("([^/]+)%.lua$")) end
  table.sort(out)
  return out
end

--- True when `require(name)` would find a module (already loaded, or a searcher has a loader
--- for it). Asks package.searchers directly, so a missing module is told apart from a module
--- that fails while loading without reading error text.
function M.module_exists(name)
  if package.loaded[name] ~= nil then return true end
  for _, searcher in ipairs(package.searchers) do
    if type(searcher(name)) == "function" then return true end
  end
  return false
end

return M
