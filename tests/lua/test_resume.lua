-- flash --resume: an interrupted flash continues from its journal; verified regions are not rewritten.
local synth = require "synth"
local sys = require "ncpflash.core.sys"

local function writes(sim)
  -- {addr=, op=} for every program command (0x31 plain, 0x3F XZ) and erase command in the log
  local out = { program = {}, erase = {}, chip_erase = 0 }
  for _, l in ipairs(sim:log_lines()) do
    local op, addr = l:match("^(0x3[1F]) %S+ .-addr=0x(%x+)")
    if op then out.program[#out.program + 1] = tonumber(addr, 16) & 0x7FFFFFFF end
    local e = l:match("^0x30 %S+ .-start=0x(%x+)") or l:match("^0x30 %S+ .-addr=0x(%x+)")
    if e then out.erase[#out.erase + 1] = tonumber(e, 16) end
    if l:match("^0x3C ") then out.chip_erase = out.chip_erase + 1 end
  end
  return out
end

local function lowest(list)
  local m = math.huge
  for _, v in ipairs(list) do if v < m then m = v end end
  return m
end

test("power loss mid-flash: --resume rewrites only the unverified regions", function()
  local dir = helpers.tmpdir()
  local set = synth.release(dir, {})   -- boot2, partition, FW (600 KiB), littlefs; erase = 2
  local state = dir .. "/state"
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  -- boot2 + partition (~57 KiB) are verified when the power goes after 200000 programmed bytes (inside FW)
  local sim1 <close> = helpers.ncpsim{ "--state", state, "--fault", "powerloss:200000:exit" }
  local journal = dir .. "/xdg/ncpflash/journal/" .. sim1.chip_id .. ".json"
  local r1 = helpers.run({ "--port", sim1.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  ok(r1.code ~= 0, "the interrupted run fails: " .. r1.err)
  sim1:stop()
  ok(sys.stat(journal), "journal kept after the interruption: " .. journal)
  local j = helpers.readfile(journal)
  match(j, '"chip_erased":true')
  eq(writes(sim1).chip_erase, 1, "the first run erased the chip")

  local sim2 <close> = helpers.ncpsim{ "--state", state }
  eq(sim2.chip_id, sim1.chip_id, "the state dir keeps its chip id")
  local r2 = helpers.run({ "--port", sim2.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  eq(r2.code, 0, r2.out .. r2.err)
  match(r2.out, "verified before the interruption")
  match(r2.out, "resume: the chip erase of the interrupted run stands")
  sim2:stop()
  local w = writes(sim2)
  eq(w.chip_erase, 0, "no second chip erase")
  ok(#w.program > 0, "FW and littlefs written")
  ok(lowest(w.program) >= 0x10000, ("nothing written below FW (lowest 0x%X)"):format(lowest(w.program)))
  eq(#w.erase, 1, "only the started region (FW) is erased")
  eq(w.erase[1], 0x10000)
  local img = sim2:flash()
  for _, f in ipairs(set.files) do
    eq(img:sub(f.address + 1, f.address + #f.data) == f.data, true, f.name .. " byte-exact after resume")
  end
  ok(not sys.stat(journal), "journal removed after the successful run")
end)

test("--resume without a journal starts from the beginning and a complete run leaves none", function()
  local dir = helpers.tmpdir()
  local set = synth.release(dir, { littlefs = false, fw_size = 64 * 1024 })
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run({ "--port", sim.url, "flash", "--config", set.ini, "--resume" }, { env = env })
  eq(r.code, 0, r.err)
  match(r.out, "no journal for chip")
  sim:stop()
  eq(writes(sim).chip_erase, 1)
  ok(not sys.stat(dir .. "/xdg/ncpflash/journal/" .. sim.chip_id .. ".json"))
end)

test("a journal of another image set is not used", function()
  local dir = helpers.tmpdir()
  local set = synth.release(dir, { littlefs = false, fw_size = 64 * 1024 })
  local jdir = dir .. "/xdg/ncpflash/journal"
  assert(sys.mkdirs(jdir))
  local sim <close> = helpers.ncpsim{}
  helpers.writefile(jdir .. "/" .. sim.chip_id .. ".json",
    '{"v":1,"chip_id":"' .. sim.chip_id .. '","plan":"0000","chip_erased":true,"started":{},"verified":{}}\n')
  local r = helpers.run({ "--port", sim.url, "flash", "--config", set.ini, "--resume" },
    { env = { XDG_STATE_HOME = dir .. "/xdg" } })
  eq(r.code, 0, r.err)
  match(r.out, "another image set")
  sim:stop()
  eq(writes(sim).chip_erase, 1, "fresh run erases the chip")
end)
