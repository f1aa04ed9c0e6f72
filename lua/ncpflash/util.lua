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

--- `s` quoted for a message: printable ASCII as is, anything else as \xNN, at most `max`
--- bytes of it (default 60) with "..." after. Never puts raw bytes from a file on a terminal.
function M.quote(s, max)
  max = max or 60
  local body = tostring(s):sub(1, max):gsub('[^\32-\126]', function(c) return ("\\x%02X"):format(c:byte()) end)
    :gsub('"', '\\"')
  return '"' .. body .. '"' .. (#tostring(s) > max and "..." or "")
end

--- Text safe for a terminal: control characters (but newline and tab) and bytes that are not
--- UTF-8 become \xNN; well-formed UTF-8 is kept.
function M.terminal_safe(s)
  s = tostring(s)
  if not s:find("[%c\128-\255]") then return s end
  local out, i = {}, 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 1 or (c >= 0xF0 and 4) or (c >= 0xE0 and 3) or (c >= 0xC2 and 2) or 0
    local seq = n > 0 and s:sub(i, i + n - 1) or ""
    if n == 1 and (c >= 32 and c ~= 127 or c == 10 or c == 9) then
      out[#out + 1] = seq
    elseif n > 1 and #seq == n and utf8.len(seq) == 1 then
      out[#out + 1] = seq
      i = i + n - 1
    else
      out[#out + 1] = ("\\x%02X"):format(c)
    end
    i = i + 1
  end
  return table.concat(out)
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

M.READ_MAX = 256 * 1024 * 1024   -- the default bound of M.readfile

--- The size of a regular file, looked at before anything is read: a missing path, a directory,
--- a device or a pipe (/dev/zero) raises an "input" error naming it.
function M.regular_file(path, what)
  local st, err = sys.stat(path)
  local label = (what and (what .. " ") or "") .. tostring(path)
  if not st then
    local f, oerr = io.open(path, "rb")
    if f then f:close() end
    errors.raise("input", ("cannot read %s"):format(oerr or (label .. ": " .. tostring(err))), { file = path })
  end
  if st.type ~= "file" then
    errors.raise("input", ("%s: not a regular file (%s)"):format(label, st.type == "dir" and "a directory"
      or "a device, pipe or socket"), { file = path })
  end
  return st.size
end

--- Read a whole regular file of at most `max` bytes (default M.READ_MAX): the size is checked
--- before reading (M.regular_file), the read itself is bounded too (a file that grows).
--- Raises "input" errors naming the file.
function M.readfile(path, what, max)
  max = max or M.READ_MAX
  local size = M.regular_file(path, what)
  local label = (what and (what .. " ") or "") .. tostring(path)
  local function too_big(n)
    errors.raise("input", ("%s is %d bytes, more than the %d bytes it may have"):format(label, n, max),
      { file = path, size = n, max = max })
  end
  if size > max then too_big(size) end
  local f, err = io.open(path, "rb")
  if not f then
    errors.raise("input", ("cannot read %s%s"):format(what and (what .. " ") or "", err), { file = path })
  end
  local data = f:read(max + 1) or ""
  f:close()
  if #data > max then too_big(#data) end
  return data
end

function M.writefile(path, data)
  local f, err = io.open(path, "wb")
  if not f then errors.raise("input", "cannot write " .. err) end
  local ok, werr = f:write(data)
  if not ok then f:close(); errors.raise("input", "cannot write " .. path .. ": " .. tostring(werr)) end
  f:close()
end

--- New files named BASE..EXT for each of `exts` (a list), never an existing file, also when
--- other processes pick names at the same time (sys.create_new: O_EXCL): BASE, else BASE_2,
--- BASE_3, ... until every name of the set is free. Returns the first file (open for writing),
--- its path, and the list of paths (the others are created empty: reserved for the caller).
function M.create_unique(base, exts)
  for n = 1, 1000 do
    local sfx = n == 1 and "" or ("_" .. n)
    local made, taken = {}, false
    for _, ext in ipairs(exts) do
      local path = base .. sfx .. ext
      local f, err, exists = sys.create_new(path)
      if not f then
        for _, m in ipairs(made) do m.f:close(); os.remove(m.path) end
        if not exists then errors.raise("input", "cannot create " .. tostring(err), { file = path }) end
        taken = true
        break
      end
      made[#made + 1] = { f = f, path = path }
    end
    if not taken then
      local paths = {}
      for i, m in ipairs(made) do
        paths[i] = m.path
        if i > 1 then m.f:close() end
      end
      return made[1].f, made[1].path, paths
    end
  end
  errors.raise("input", "no free file name for " .. base .. " (1000 taken)", { file = base })
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

-- the folder part of a path, "/" and (on Windows) "\\" separating: ncpflash.path
M.dirname = require("ncpflash.path").dirname

--- Names NAME of the modules ncpflash.SUB.NAME that can be required: files SUB/NAME.lua under
--- the --lua-path/config roots (ROOT/SUB/ or ROOT/ncpflash/SUB/) and in the built-in library
--- (lua/ncpflash/SUB/). Sorted, each once. This is how data and plug-in directories (chips,
--- reset kinds) are listed: nothing to register besides the file.
function M.module_names(sub)
  local seen, out = {}, {}
  local function add(n)
    if n and not seen[n] and n:match("^[%w_%-]+$") then seen[n] = true; out[#out + 1] = n end
  end
  for _, root in ipairs(sys.get_roots and sys.get_roots() or {}) do
    -- a root is a path (any module under it) or {path=, only={folders}} (those folders only)
    local dirs
    if type(root) == "table" then
      dirs = {}
      for _, pre in ipairs(root.only or {}) do
        if pre == sub .. "/" then dirs[1] = root.path .. "/" .. sub end
      end
    else
      dirs = { root .. "/" .. sub, root .. "/ncpflash/" .. sub }
    end
    for _, d in ipairs(dirs) do
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
