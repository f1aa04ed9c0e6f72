-- The command line: help, version, argument errors, scripts, user recipes,
-- exit codes, JSON events.

test("--help lists commands, global options and exit codes", function()
  local r = helpers.run{ "--help" }
  eq(r.code, 0)
  match(r.out, "usage: ncpflash")
  match(r.out, "%-%-port URL")
  match(r.out, "ports%s+list serial ports")
  match(r.out, "130 interrupted")
end)

test("no command prints help and exits 2", function()
  local r = helpers.run{}
  eq(r.code, 2)
  match(r.err, "usage: ncpflash")
  match(r.err, "no command given")
end)

test("--version prints the build version", function()
  local r = helpers.run{ "--version" }
  eq(r.code, 0)
  match(r.out, "^ncpflash %S+")
end)

test("unknown command exits 2 with a suggestion", function()
  local r = helpers.run{ "prots" }
  eq(r.code, 2)
  match(r.err, 'unknown command "prots" %(did you mean ports%?%)')
end)

test("unknown global-looking option exits 2 with a suggestion", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/r.lua", [[
    return { help = "t", args = { {"--config", type = "string"} }, run = function() end }]])
  local r = helpers.run{ f, "--confg", "x" }
  eq(r.code, 2)
  match(r.err, "unknown option %-%-confg %(did you mean %-%-config%?%)")
end)

test("bad option values exit 2 naming the option", function()
  local r = helpers.run{ "--baud", "fast", "ports" }
  eq(r.code, 2)
  match(r.err, 'option %-%-baud: "fast" is not a whole number')
end)

test("recipe arguments are typed and validated", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/r.lua", [[
    return {
      help = "typed args",
      args = { {"addr", type = "u32"}, {"len", type = "u32", optional = true},
               {"--mode", type = "choice", choices = {"a", "b"}, default = "a"},
               {"--quiet", flag = true} },
      run = function(ctx, a)
        ctx.ev:info(("addr=%d len=%s mode=%s quiet=%s"):format(a.addr, tostring(a.len), a.mode, tostring(a.quiet)))
      end,
    }]])
  local r = helpers.run{ f, "0x1000", "64K", "--mode", "b", "--quiet" }
  eq(r.code, 0, r.err)
  match(r.out, "addr=4096 len=65536 mode=b quiet=true")
  r = helpers.run{ f, "0x1000" }
  match(r.out, "len=nil mode=a quiet=nil")
  r = helpers.run{ f, "zz" }
  eq(r.code, 2)
  match(r.err, 'ADDR: "zz" is not a valid value')
  r = helpers.run{ f, "1", "2", "3" }
  eq(r.code, 2)
  match(r.err, 'unexpected argument "3"')
  r = helpers.run{ f, "1", "--mode", "c" }
  eq(r.code, 2)
  match(r.err, '"c" is not one of a, b')
  r = helpers.run{ f }
  eq(r.code, 2)
  match(r.err, "missing ADDR")
end)

test("a missing input file exits 7 naming it", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/r.lua", [[
    return { args = { {"image", type = "file"} }, run = function() end }]])
  local r = helpers.run{ f, dir .. "/nope.bin" }
  eq(r.code, 7)
  match(r.err, "nope%.bin not found")
end)

test("help COMMAND prints the recipe's own help", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/r.lua", [[
    return { help = "does a thing", description = "Longer text.",
      args = { {"--level", type = "int", default = 3, help = "how much"}, {"file", help = "input"} },
      run = function() end }]])
  local r = helpers.run{ "help", f }
  eq(r.code, 0, r.err)
  match(r.out, "does a thing")
  r = helpers.run{ f, "--help" }
  eq(r.code, 0)
  match(r.out, "usage: ncpflash %[global options%] .*r%.lua %[%-%-level VALUE%] FILE")
  match(r.out, "does a thing")
  match(r.out, "how much %[default 3%]")
end)

test("run FILE.lua executes a plain script with its arguments", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/s.lua", [[
    local a, b = ...
    print("args", a, b, arg[1])]])
  local r = helpers.run{ "run", f, "x", "y" }
  eq(r.code, 0, r.err)
  match(r.out, "args\tx\ty\tx")
end)

test("expected failures map to the documented exit codes", function()
  local dir = helpers.tmpdir()
  local cases = { usage = 2, handshake = 3, port = 3, timeout = 4, device = 4, protocol = 4,
    verify = 5, safety = 6, input = 7, interrupted = 130, whatever = 1 }
  for code, exit in pairs(cases) do
    local f = helpers.writefile(dir .. "/e.lua", ([[
      require("ncpflash.errors").raise(%q, "it went wrong: %s", { hint = "try this" })]]):format(code, code))
    local r = helpers.run{ "run", f }
    eq(r.code, exit, code)
    match(r.err, "error: it went wrong: " .. code, code)
    match(r.err, "hint: try this", code)
  end
end)

test("a Lua bug exits 1 with one line, and a traceback with -v", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/b.lua", "local t = nil; return t.x")
  local r = helpers.run{ "run", f }
  eq(r.code, 1)
  match(r.err, "attempt to index a nil value")
  nomatch(r.err, "stack traceback")
  r = helpers.run{ "-v", "run", f }
  eq(r.code, 1)
  match(r.err, "stack traceback")
end)

test("--json turns events and errors into JSON lines", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/j.lua", [[
    return { run = function(ctx)
      ctx.ev:stage("erase")
      ctx.ev:progress(50, 100, { name = "fw" })
      ctx.ev:progress(100, 100, { name = "fw" })
      ctx.ev:warn("careful")
      ctx.ev:result({ regions = 2 })
      require("ncpflash.errors").raise("verify", "mismatch at 0x10000", { region = "fw" })
    end }]])
  local r = helpers.run{ "--json", f }
  eq(r.code, 5)
  local evs = helpers.json_lines(r.out)
  local kinds = {}
  for _, e in ipairs(evs) do
    eq(e.v, 1, "schema version")
    ok(type(e.t) == "number", "elapsed time")
    kinds[#kinds + 1] = e.event
  end
  eq(table.concat(kinds, ","), "stage,progress,progress,warn,result,error")
  eq(evs[1].name, "erase")
  eq(evs[3].done, 100)
  eq(evs[3].name, "fw")
  eq(evs[5].regions, 2)
  eq(evs[6].code, "verify")
  eq(evs[6].exit, 5)
  eq(evs[6].region, "fw")
  eq(r.err, "")
end)

test("user recipes in XDG_CONFIG_HOME override built-ins and are listed", function()
  local dir = helpers.tmpdir()
  require("ncpflash.core.sys").mkdirs(dir .. "/ncpflash/recipes")
  helpers.writefile(dir .. "/ncpflash/recipes/ports.lua", [[
    return { help = "my own ports", run = function(ctx) ctx.ev:info("mine") end }]])
  helpers.writefile(dir .. "/ncpflash/recipes/hello.lua", [[
    return { help = "say hello", run = function(ctx) ctx.ev:info("hello " .. require("mylib").x) end }]])
  require("ncpflash.core.sys").mkdirs(dir .. "/ncpflash/lua")
  helpers.writefile(dir .. "/ncpflash/lua/mylib.lua", "return { x = 42 }")
  local env = { XDG_CONFIG_HOME = dir }
  local r = helpers.run({ "ports" }, { env = env })
  eq(r.code, 0, r.err)
  eq(r.out, "mine\n")
  r = helpers.run({ "hello" }, { env = env })
  eq(r.out, "hello 42\n")
  r = helpers.run({ "help" }, { env = env })
  match(r.out, "hello%s+say hello%s+%[" .. dir:gsub("%p", "%%%0"))
end)

test("bytecode is refused for user recipes", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/bc.lua", string.dump(function() end))
  local r = helpers.run{ "run", f }
  eq(r.code, 7)
  match(r.err, "attempt to load a binary chunk")
end)

test("no module is loaded from the current directory", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/evil.lua", "return 'loaded'")
  local f = helpers.writefile(dir .. "/s.lua", [[
    print(pcall(require, "evil"))]])
  local r = helpers.run{ "run", f }
  match(r.out, "^false")
end)

test("ports lists serial ports (or says there are none)", function()
  local r = helpers.run{ "ports" }
  eq(r.code, 0, r.err)
  ok(#r.out > 0)
  r = helpers.run{ "--json", "ports" }
  eq(r.code, 0, r.err)
  local e = helpers.json_lines(r.out)[1]
  eq(e.event, "result")
  eq(type(e.ports), "table")
end)

test("a missing --port is a usage error with a hint", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/p.lua", "return { run = function(ctx) ctx:open_port() end }")
  local r = helpers.run{ f }
  eq(r.code, 2)
  match(r.err, "no port given: use %-%-port URL or set NCPFLASH_PORT")
  match(r.err, "hint: 'ncpflash ports' lists serial ports")
end)

test("SIGINT interrupts a running recipe with exit 130", function()
  local sys = require "ncpflash.core.sys"
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/slow.lua", [[
    return { run = function() require("ncpflash.core.sys").sleep(30) end }]])
  local pid = sys.spawn({ helpers.ncpflash, f }, { stdout = dir .. "/o", stderr = dir .. "/e" })
  sys.sleep(0.3)
  sys.kill(pid, "INT")
  local st = sys.wait(pid, 5)
  eq(st, 130)
  match(helpers.readfile(dir .. "/e"), "interrupted")
end)

test("a global option after the command name goes to the command when it declares one of that name", function()
  local cli = require "ncpflash.cli"
  local args = { { "--junit", type = "path" }, { "db", type = "string" } }
  -- after the command: the command's own --junit; the global keeps the value given before it
  local opts, rest, late = cli.parse_globals{ "--junit", "run.xml", "station", "report", "l.db", "--junit", "u.xml" }
  cli.give_back(args, late, opts, rest)
  eq(opts.junit, "run.xml")
  eq(rest, { "station", "report", "l.db", "--junit", "u.xml" })
  -- a command that does not declare it leaves it global
  opts, rest, late = cli.parse_globals{ "flash", "0x0", "a.bin", "--junit", "u.xml" }
  cli.give_back({ { "pairs", many = true } }, late, opts, rest)
  eq(opts.junit, "u.xml")
  eq(rest, { "flash", "0x0", "a.bin" })
end)
