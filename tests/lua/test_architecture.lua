-- The module rules of docs/internals.md ("Modules and who may require whom"), checked on the
-- sources of lua/ and recipes/ (issue 20): no require cycles (lazy requires count), no format
-- module reaches the device side, detect and session do not require each other, reset kinds are
-- only tested inside lua/ncpflash/reset/, and a new reset kind is one file.
local sys = require "ncpflash.core.sys"
local errors = require "ncpflash.errors"

local ROOT = helpers.root

-- Pure modules: bytes and data in, tables out. None of them may reach DEVICE (transitively).
local FORMAT = { "ncpflash.chip", "ncpflash.romcodec", "ncpflash.header", "ncpflash.partition", "ncpflash.ota",
  "ncpflash.progcfg", "ncpflash.efuse", "ncpflash.json", "ncpflash.release_layout", "ncpflash.chipinfo" }
local DEVICE = { "ncpflash.session", "ncpflash.handshake", "ncpflash.detect", "ncpflash.loader",
  "ncpflash.efuse_burn", "ncpflash.flash", "ncpflash.journal", "ncpflash.provision", "ncpflash.reset",
  "ncpflash.core.port", "ncpflash.core.isp", "ncpflash.core.gpio", "ncpflash.core.jobs" }

-- Lua source without comments (strings are kept: "--reset" in a string is not a comment).
local function strip_comments(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c == "-" and src:sub(i, i + 1) == "--" then
      local lvl = src:match("^%[(=*)%[", i + 2)
      if lvl then
        local _, e = src:find("]" .. lvl .. "]", i + 4 + #lvl, true)
        i = (e or n) + 1
      else
        local e = src:find("\n", i, true)
        i = e or (n + 1)
      end
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c or d == "\n" then break
        else j = j + 1 end
      end
      out[#out + 1] = src:sub(i, j)
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local lvl = src:match("^%[(=*)%[", i)
      local _, e = src:find("]" .. lvl .. "]", i + 2 + #lvl, true)
      out[#out + 1] = src:sub(i, e or n)
      i = (e or n) + 1
    else
      local j = src:find("[%-\"'%[]", i + 1) or (n + 1)
      out[#out + 1] = src:sub(i, j - 1)
      i = j
    end
  end
  return table.concat(out)
end

-- Every static require of a source (a literal name, not `"x." .. name`).
local function requires(code)
  local out = {}
  for name, after in code:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']%s*(.?.?)") do
    if not after:match("^%.%.") then out[#out + 1] = name end
  end
  return out
end

local function lua_files(dir, prefix, out)
  for _, n in ipairs(sys.listdir(dir) or {}) do
    local path = dir .. "/" .. n
    local st = sys.stat(path)
    if st and st.type == "dir" then lua_files(path, prefix .. n .. ".", out)
    elseif n:match("%.lua$") then out[#out + 1] = { path = path, module = prefix .. n:gsub("%.lua$", "") } end
  end
  return out
end

local function sources()
  local list = lua_files(ROOT .. "/lua/ncpflash", "ncpflash.", {})
  for _, f in ipairs(lua_files(ROOT .. "/recipes", "recipe:", {})) do list[#list + 1] = f end
  for _, f in ipairs(list) do
    f.rel = f.path:sub(#ROOT + 2)
    f.code = strip_comments(helpers.readfile(f.path))
  end
  return list
end

local function graph(list)
  local g = {}
  for _, f in ipairs(list) do
    g[f.module] = g[f.module] or {}
    for _, r in ipairs(requires(f.code)) do g[f.module][r] = true end
  end
  return g
end

local function closure(g, from)
  local seen, stack = {}, { from }
  while #stack > 0 do
    local m = table.remove(stack)
    for d in pairs(g[m] or {}) do
      if not seen[d] then seen[d] = true; stack[#stack + 1] = d end
    end
  end
  return seen
end

-- A cycle as "a -> b -> a", or nil.
local function find_cycle(g)
  local state, path = {}, {}
  local function visit(m)
    state[m] = "open"
    path[#path + 1] = m
    local deps = {}
    for d in pairs(g[m] or {}) do deps[#deps + 1] = d end
    table.sort(deps)
    for _, d in ipairs(deps) do
      if state[d] == "open" then
        local i = #path
        while path[i] ~= d do i = i - 1 end
        return table.concat(path, " -> ", i) .. " -> " .. d
      elseif not state[d] then
        local c = visit(d)
        if c then return c end
      end
    end
    path[#path] = nil
    state[m] = "done"
  end
  local mods = {}
  for m in pairs(g) do mods[#mods + 1] = m end
  table.sort(mods)
  for _, m in ipairs(mods) do
    if not state[m] then
      local c = visit(m)
      if c then return c end
    end
  end
end

-- The reset kinds (file names under lua/ncpflash/reset/, "_" files are helpers).
local function kinds()
  local out = {}
  for _, n in ipairs(sys.listdir(ROOT .. "/lua/ncpflash/reset") or {}) do
    local k = n:match("^([%w][%w_]*)%.lua$")
    if k then out[#out + 1] = k end
  end
  return out
end

-- Lines of `code` that test a reset kind: a comparison with a kind's name, a comparison of a
-- strategy's `.kind`, or of an attempt's `kind_of_reset`.
local function kind_tests(code, names)
  local hits = {}
  local n = 0
  for line in (code .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local bad = line:find("kind_of_reset%s*[=~]=") or line:find("[=~]=%s*[%w_%.]*kind_of_reset")
    for _, k in ipairs(names) do
      local q = "[\"']" .. k .. "[\"']"
      if line:find("[=~]=%s*" .. q) or line:find(q .. "%s*[=~]=") then bad = true end
    end
    for _, v in ipairs({ "st", "strategy", "base", "b", "s" }) do
      if line:find("%f[%w_]" .. v .. "%.kind%s*[=~]=") or line:find("[=~]=%s*" .. v .. "%.kind%f[^%w_]") then
        bad = true
      end
    end
    if bad then hits[#hits + 1] = n .. ": " .. line:match("^%s*(.-)%s*$") end
  end
  return hits
end

test("the scanners see what they are meant to see", function()
  eq(strip_comments('a = 1 -- b = 2\nc = "--x" --[[ d ]] e'), 'a = 1 \nc = "--x"  e')
  local r = requires(strip_comments('local x = require("ncpflash.a") -- require("ncpflash.c")\n'
    .. 'local y = require "ncpflash.b"\nlocal z = require("ncpflash.chips." .. n)'))
  eq(table.concat(r, ","), "ncpflash.a,ncpflash.b")
  eq(find_cycle({ a = { b = true }, b = { c = true }, c = { a = true } }), "a -> b -> c -> a")
  eq(find_cycle({ a = { b = true }, b = {} }), nil)
  local names = kinds()
  ok(#names >= 6, "reset kinds found: " .. table.concat(names, ", "))
  eq(#kind_tests('if st.kind == "gpio" then', names), 1)
  eq(#kind_tests('if "manual" ~= x then', names), 1)
  eq(#kind_tests('if at.kind_of_reset == y then', names), 1)
  eq(#kind_tests('if a.kind == "nothing" or f.kind == "mac" then', names), 0, "other kinds are not reset kinds")
end)

test("no require cycles in lua/ and recipes/ (lazy requires included)", function()
  local c = find_cycle(graph(sources()))
  ok(c == nil, "require cycle: " .. tostring(c))
end)

test("no format module reaches the session or any other device module", function()
  local g = graph(sources())
  for _, m in ipairs(FORMAT) do
    ok(g[m], m .. " exists")
    local reach = closure(g, m)
    for _, d in ipairs(DEVICE) do
      ok(not reach[d], string.format("%s requires %s (directly or through another module)", m, d))
    end
  end
  -- detect and session do not require each other (the session uses detect, never the reverse)
  ok(not closure(g, "ncpflash.detect")["ncpflash.session"], "detect reaches session")
  ok(not closure(g, "ncpflash.header")["ncpflash.session"], "header reaches session")
  -- reset kinds need only the core, errors, util and their shared helper
  for _, k in ipairs(kinds()) do
    for d in pairs(g["ncpflash.reset." .. k] or {}) do
      ok(d:match("^ncpflash%.core%.") or d == "ncpflash.errors" or d == "ncpflash.util"
        or d == "ncpflash.reset._steps", "reset kind " .. k .. " requires " .. d)
    end
  end
end)

test("no module outside lua/ncpflash/reset/ tests a reset kind", function()
  local names = kinds()
  local found = {}
  for _, f in ipairs(sources()) do
    if not f.rel:match("^lua/ncpflash/reset/") then
      for _, h in ipairs(kind_tests(f.code, names)) do found[#found + 1] = f.rel .. ":" .. h end
    end
  end
  ok(#found == 0, "reset kind tests outside the registry:\n  " .. table.concat(found, "\n  "))
end)

test("errors.catch: ncpflash errors are returned, anything else propagates", function()
  local okv, a, b = errors.catch(function(x) return x, 2 end, 1)
  eq(okv, true); eq(a, 1); eq(b, 2)
  local ok2, e = errors.catch(function() errors.raise("timeout", "late") end)
  eq(ok2, false); eq(e.code, "timeout")
  local ok3, e3 = pcall(errors.catch, function() error("a bug") end)
  eq(ok3, false)
  match(tostring(e3), "a bug")
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

test("a new reset kind is one file: reset/NAME.lua under --lua-path is found, parsed, described, run", function()
  local dir = helpers.tmpdir()
  sys.mkdirs(dir .. "/lua/ncpflash/reset")
  helpers.writefile(dir .. "/lua/ncpflash/reset/marker.lua", [[
-- a test kind: "marker:PATH" appends "enter" to PATH, then the handshake follows
local steps = require("ncpflash.reset._steps")
local K = { order = 40, flags = {} }
function K.claims(v) return v:match("^marker:") ~= nil end
function K.parse(part) return { kind = "marker", path = part:sub(8) } end
function K.validate(st, where, n)
  if type(st.path) ~= "string" or st.path == "" then steps.bad(where .. ".path", "missing") end
  n.path = st.path
  return n
end
function K.describe(st) return "marker file " .. st.path end
function K.enter(d)
  local f = assert(io.open(d.st.path, "a")); f:write("enter\n"); f:close()
  return true
end
function K.run() return true end
return K
]])
  local mark = dir .. "/mark.txt"
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run({ "--lua-path", dir, "--port", sim.url, "--reset=marker:" .. mark, "probe", "--no-ladder" })
  eq(r.code, 0, r.err .. r.out)
  match(r.out, "1%. marker file " .. mark:gsub("%p", "%%%0"))
  match(helpers.readfile(mark), "^enter\n")
  r = helpers.run({ "--lua-path", dir, "--port", sim.url, "--reset=marker:", "probe" })
  eq(r.code, 2, r.err)
  match(r.err, "marker:.*%.path: missing")
  r = helpers.run({ "--lua-path", dir, "--port", sim.url, "--reset=teleport", "probe" })
  eq(r.code, 2)
end)
