-- tests/lib/init.lua: makes the test libraries (tests/lib/NAME.lua) loadable as require "NAME".
-- Loaded from the repository root by tests/run.lua, bench.lua, bench_multi.lua, soak.lua and
-- tools/demo.lua: `local ROOT = dofile("tests/lib/init.lua")`. Returns the root (realpath).
local sys = require "ncpflash.core.sys"

local root = sys.realpath(".")
table.insert(package.searchers, 2, function(name)
  local path = root .. "/tests/lib/" .. name .. ".lua"
  local f = io.open(path, "r")
  if not f then return "no file " .. path end
  f:close()
  return assert(loadfile(path, "t")), path
end)
return root
