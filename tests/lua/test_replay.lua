-- ncpsim --replay TRACE: a wire trace recorded by ncpflash answers a second run, so a bug
-- report's --trace-file becomes a regression test.
local sys = require "ncpflash.core.sys"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local function record(sim_args, argv_tail)
  local dir = helpers.tmpdir()
  local trace = dir .. "/bug.trace"
  local sim <close> = helpers.ncpsim(sim_args)
  local argv = { "--port", sim.url, "--trace-file", trace }
  for _, a in ipairs(argv_tail) do argv[#argv + 1] = a end
  local r = helpers.run(argv)
  return trace, r
end

local function replay_lines(sim)
  sim:stop()
  local out = {}
  for _, l in ipairs(sim:log_lines()) do if l:match("^replay:") then out[#out + 1] = l end end
  return table.concat(out, "\n")
end

test("a recorded flash replays to the same result", function()
  local f = helpers.writefile(helpers.tmpdir() .. "/a.bin", helpers.compressible_bytes(40000, 8))
  local trace, r0 = record({}, { "flash", "0x10000", f })
  eq(r0.code, 0, r0.err)
  local sim <close> = helpers.ncpsim{ "--replay", trace }
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  eq(r.code, 0, r.err)
  match(r.out .. r.err, "flashed 1 of 1 regions")
  match(replay_lines(sim), "replay: end: %d+ host bytes matched, %d+ bytes answered, complete")
end)

test("a failing run (bug report) replays to the same failure", function()
  local f = helpers.writefile(helpers.tmpdir() .. "/a.bin", helpers.random_bytes(20000, 3))
  local trace, r0 = record({ "--fault", "fl:3F:000C:0", "--fault", "fl:31:0006:0" }, { "flash", "0x10000", f })
  eq(r0.code, 4)
  local want = r0.err:match("error: ([^\n]*)")
  ok(want, r0.err)
  local sim <close> = helpers.ncpsim{ "--replay", trace }
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", f }
  eq(r.code, 4)
  eq(r.err:match("error: ([^\n]*)"), want)
end)

test("a host that sends something else is reported as divergence", function()
  local dir = helpers.tmpdir()
  local f = helpers.writefile(dir .. "/a.bin", helpers.random_bytes(9000, 1))
  local g = helpers.writefile(dir .. "/b.bin", helpers.random_bytes(9000, 2))
  local trace = record({}, { "flash", "0x10000", f })
  local sim <close> = helpers.ncpsim{ "--replay", trace }
  local t0 = sys.now()
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", g }
  ok(r.code ~= 0, "exit code " .. r.code)
  ok(sys.now() - t0 < 60)
  match(replay_lines(sim), "replay: diverged at host byte %d+ %(TX run from trace line %d+%): expected %x%x, got %x%x")
end)

test("a trace without data lines or with a broken line is refused", function()
  local dir = helpers.tmpdir()
  local empty = helpers.writefile(dir .. "/e.trace", "     0.000 -- open x\n")
  local bad = helpers.writefile(dir .. "/b.trace", "     0.000 TX 4: 55 55\n")
  for _, c in ipairs{ { empty, "no TX/RX lines" }, { bad, "b%.trace:1: malformed trace line" } } do
    local out = dir .. "/err"
    local pid = sys.spawn({ helpers.build .. "/ncpsim", "--listen", "127.0.0.1:0", "--replay", c[1] },
      { stdout = "null", stderr = out, stdin = "null" })
    local st = sys.wait(pid, 10)
    if not st then sys.kill(pid, "KILL"); sys.wait(pid) end
    eq(st, 1)
    match(helpers.readfile(out), c[2])
  end
end)
