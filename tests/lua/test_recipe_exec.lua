-- Recipes run without os.execute / io.popen / sys.spawn unless they declare needs = {"exec"};
-- a "command" reset strategy configured by the user still runs (library code); one a recipe
-- passes itself needs the declaration.
local sys = require "ncpflash.core.sys"

local function user_recipes(files)
  local dir = helpers.tmpdir()
  assert(sys.mkdirs(dir .. "/recipes"))
  for name, text in pairs(files) do helpers.writefile(dir .. "/recipes/" .. name .. ".lua", text) end
  return dir
end

local PROBE = [[
local sys = require "ncpflash.core.sys"
print("execute=" .. tostring(os.execute ~= nil), "popen=" .. tostring(io.popen ~= nil),
  "spawn=" .. tostring(sys.spawn ~= nil), "G=" .. tostring(_G.os.execute ~= nil),
  "registry=" .. tostring(debug.getregistry ~= nil), "package=" .. tostring(package ~= nil))
]]

test("a recipe without the declaration cannot run external commands", function()
  local marker = helpers.tmpdir() .. "/ran"
  local dir = user_recipes{
    plain = "return { help = 'p', run = function() " .. PROBE .. " end }",
    sneaky = ("return { help = 's', run = function() os.execute('touch %s') end }"):format(marker),
    viaload = ("return { help = 'l', run = function() load('os.execute(\"touch %s\")')() end }"):format(marker),
  }
  local r = helpers.run{ "--lua-path", dir, "plain" }
  eq(r.code, 0, r.err)
  match(r.out, "execute=false\tpopen=false\tspawn=false\tG=false\tregistry=false\tpackage=false")
  r = helpers.run{ "--lua-path", dir, "sneaky" }
  ok(r.code ~= 0)
  match(r.err, "execute")
  r = helpers.run{ "--lua-path", dir, "viaload" }
  ok(r.code ~= 0)
  ok(not sys.stat(marker), "no command ran")
end)

test("a recipe that declares needs = {'exec'} can; its top level cannot", function()
  local marker = helpers.tmpdir() .. "/ran"
  local dir = user_recipes{
    exec = ("local top = os.execute ~= nil\nreturn { help = 'e', needs = { 'exec' }, run = function() "
      .. "print('top=' .. tostring(top)); os.execute(%q); print(io.popen('echo popen-ok'):read('l')); "
      .. "print('spawn=' .. tostring(require('ncpflash.core.sys').spawn ~= nil)) end }"):format(
      helpers.touch_command(marker)),
  }
  local r = helpers.run{ "--lua-path", dir, "exec" }
  eq(r.code, 0, r.err)
  match(r.out, "top=false")
  match(r.out, "popen%-ok")
  match(r.out, "spawn=true")
  ok(sys.stat(marker), "the command ran")
end)

test("run FILE.lua: a plain script has the full environment, a recipe table follows the rule", function()
  local dir = helpers.tmpdir()
  local script = helpers.writefile(dir .. "/s.lua", "print('script execute=' .. tostring(os.execute ~= nil))")
  local r = helpers.run{ "run", script }
  eq(r.code, 0, r.err)
  match(r.out, "script execute=true")
  local rec = helpers.writefile(dir .. "/r.lua", "return { help = 'r', run = function() " .. PROBE .. " end }")
  r = helpers.run{ "run", rec }
  eq(r.code, 0, r.err)
  match(r.out, "execute=false")
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

test("reset strategy 'cmd:': allowed from --reset, refused when a recipe passes it undeclared", function()
  local tmp = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "--reset", "cmd:" .. helpers.touch_command(tmp .. "/user"), "info" }
  eq(r.code, 0, r.err)
  ok(sys.stat(tmp .. "/user"), "the user's reset command ran")
  local body = ("run = function(ctx) local s <close> = ctx:connect{ reset = %q } end")
    :format("cmd:" .. helpers.touch_command(tmp .. "/recipe"))
  local dir = user_recipes{
    undeclared = "return { help = 'u', " .. body .. " }",
    declared = "return { help = 'd', needs = { 'exec' }, " .. body .. " }",
  }
  r = helpers.run{ "--port", sim.url, "--lua-path", dir, "undeclared" }
  eq(r.code, 6)
  match(r.err, "does not declare needs = {\"exec\"}")
  ok(not sys.stat(tmp .. "/recipe"))
  local sim2 <close> = helpers.ncpsim{}   -- a device fresh from power-on, as for the first run
  r = helpers.run{ "--port", sim2.url, "--lua-path", dir, "declared" }
  eq(r.code, 0, r.err)
  ok(sys.stat(tmp .. "/recipe"), "the recipe's reset command ran")
end)
