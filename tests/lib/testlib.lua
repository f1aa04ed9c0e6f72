-- testlib: assertions for tests/lua/test_*.lua (installed as globals by
-- tests/run.lua).  Each raises a plain error describing expected vs found.
local M = {}

local function show(v)
  if type(v) == "string" then
    if #v > 64 or v:find("[^\32-\126]") then
      local hex = v:sub(1, 32):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
      return ("<%d bytes: %s%s>"):format(#v, hex, #v > 32 and "..." or "")
    end
    return ("%q"):format(v)
  end
  return tostring(v)
end

local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

function M.eq(a, b, msg)
  if not deep_eq(a, b) then
    error(("%sexpected %s, found %s"):format(msg and (msg .. ": ") or "", show(b), show(a)), 2)
  end
end

function M.ne(a, b, msg)
  if deep_eq(a, b) then error(("%sdid not expect %s"):format(msg and (msg .. ": ") or "", show(b)), 2) end
end

function M.ok(v, msg)
  if not v then error(msg or "expected a true value", 2) end
  return v
end

function M.match(s, pattern, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    error(("%sexpected text matching %q, found %s"):format(msg and (msg .. ": ") or "", pattern, show(s)), 2)
  end
end

function M.nomatch(s, pattern, msg)
  if type(s) == "string" and s:find(pattern) then
    error(("%sexpected no text matching %q in %s"):format(msg and (msg .. ": ") or "", pattern, show(s)), 2)
  end
end

-- The error codes of ncpflash.errors (and "internal"): a `want` that is one of them is a code.
local CODES = { internal = true }
for k in pairs(require("ncpflash.errors").exit_codes) do CODES[k] = true end

--- fn must raise. `want` is an error code ("timeout": the error must be an error object with
--- exactly that code) or a Lua pattern matched against the message (plain string errors, i.e.
--- misuse, and error objects alike). `pattern` (optional, with a code) must match the message
--- too. Returns the error.
function M.raises(fn, want, pattern)
  local ok, e = pcall(fn)
  if ok then error("expected an error" .. (want and (" (" .. want .. ")") or ""), 2) end
  local code = type(e) == "table" and e.code or nil
  local msg = type(e) == "table" and tostring(e.message) or tostring(e)
  if want and CODES[want] then
    if code ~= want then
      error(("expected error code %q, got [%s] %s"):format(want, tostring(code), msg), 2)
    end
  elseif want and not msg:find(want) then
    error(("expected an error matching %q, got [%s] %s"):format(want, tostring(code), msg), 2)
  end
  if pattern and not msg:find(pattern) then
    error(("expected the [%s] error to match %q, got %s"):format(tostring(code), pattern, msg), 2)
  end
  return e
end

return M
