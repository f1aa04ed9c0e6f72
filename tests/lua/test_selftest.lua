-- ncpflash selftest (issue 14 item 7): measured safely on ncpsim - the probe refused, accepted
-- and choked on, the write test on a sector the partition table leaves free, restored exactly,
-- its refusals, and the recorded trace replayed by ncpsim --replay.
local sys = require "ncpflash.core.sys"
local partition = require "ncpflash.partition"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local MiB = 1024 * 1024

-- a state dir whose flash holds old data and a partition table at 0xE000 (entries as given)
local function module_with(entries)
  local dir = helpers.tmpdir()
  local img = helpers.random_bytes(4 * MiB, 99)
  if entries then
    local pt = partition.build(entries)
    img = img:sub(1, 0xE000) .. pt .. string.rep("\255", 0x1000 - #pt) .. img:sub(0xF001)
  end
  sys.mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/flash.bin", img)
  return dir .. "/state", img
end

-- (selftest writes its trace to the current directory unless told: these tests give --trace-file)
test("read-only selftest: the strict ncpsim refuses the 4096-byte probe; nothing on flash changes", function()
  local state, img = module_with(nil)
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--state", state }
  local r = helpers.run({ "--port", sim.url, "--trace-file", dir .. "/t.trace", "selftest", "--out", dir .. "/r.json" })
  eq(r.code, 0, r.err)
  match(r.out, "frames +4096%-byte probe: write FL 0x0102, read FL 0x0102 %-> 2048 per write, 2048 per read")
  match(r.out, "ncpsim +every reply as ncpsim's defaults")
  match(r.out, "flash +JEDEC C46016 %(flag 0x00%) GT25Q32A")
  match(r.out, "trace +" .. dir:gsub("%p", "%%%0") .. "/t%.trace")
  local rep = helpers.json_decode(helpers.readfile(dir .. "/r.json"))
  eq(rep.frames.tx_chunk, 2048); eq(rep.efuse.bytes, 512); eq(rep.flash.part, "GT25Q32A")
  ok(rep.xip_sha.seconds > 0 and rep.clk_set.ack_seconds > 0)
  ok(#helpers.readfile(dir .. "/t.trace") > 1000, "the session is in the trace")
  sim:stop()
  eq(sim:flash() == img, true, "the flash is bit for bit what it was (the probe wrote only 0xFF)")
end)

test("selftest on ROMs that take 4 + 4096, or choke on it: the differences name the ncpsim option", function()
  local dir = helpers.tmpdir()
  local big <close> = helpers.ncpsim{ "--max-payload", "4100" }
  local r = helpers.run{ "--port", big.url, "--trace-file", dir .. "/a.trace", "selftest" }
  eq(r.code, 0, r.err)
  match(r.out, "write accepted, read accepted %-> 4096 per write, 4096 per read")
  match(r.out, "differs +a 4096%-byte 0x31 frame: accepted, ncpsim's FL 0x0102 %(ncpsim %-%-max%-payload 4100%)")
  local mute <close> = helpers.ncpsim{ "--oversize", "silent" }
  r = helpers.run{ "--port", mute.url, "--trace-file", dir .. "/b.trace", "selftest" }
  eq(r.code, 0, r.err)
  match(r.out, "write no reply, read no reply %-> 2048 per write, 2048 per read")
  match(r.out, "%(ncpsim %-%-oversize silent%)")
end)

test("--write-test: a sector the partition table leaves free, erased, written, restored exactly", function()
  local state, img = module_with({ { name = "FW", type = 0, address0 = 0x10000, size0 = 0x200000 },
    { name = "media", type = 2, address0 = 0x300000, size0 = 0x100000 } })
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{ "--state", state, "--realtime", "--sector-ms", "300" }
  local r = helpers.run{ "--port", sim.url, "--trace-file", dir .. "/w.trace", "selftest", "--write-test",
    "--save", dir .. "/saved.bin" }
  eq(r.code, 0, r.err)
  match(r.out, "write test +sector 0x2FF000 %(not in any entry of the partition table at 0xE000%): erase [%d.]+ ms, "
    .. "write 4 KiB [%d.]+ ms, erase again [%d.]+ ms, restored and verified")
  match(r.out, "differs +a sector erase took [%d.]+ ms, ncpsim models 45 ms typical %(ncpsim %-%-sector%-ms 3%d%d%)")
  ok(not sys.stat(dir .. "/saved.bin"), "the saved copy is removed once the sector is restored")
  sim:stop()
  eq(sim:flash() == img, true, "every byte as before")
  local erases = 0
  for _, l in ipairs(sim:log_lines()) do
    if l:match("^0x30 ") then erases = erases + 1; match(l, "start=0x002ff000 end=0x002fffff") end
  end
  eq(erases, 2, "the one sector, twice")
end)

test("--write-test refuses: no partition table, no free sector, the boot area", function()
  local state = module_with(nil)
  local sim <close> = helpers.ncpsim{ "--state", state }
  local r = helpers.run{ "--port", sim.url, "--trace-file", helpers.tmpdir() .. "/x.trace", "selftest", "--write-test" }
  eq(r.code, 2); match(r.err, "no valid partition table on flash")
  r = helpers.run{ "--port", sim.url, "--trace-file", helpers.tmpdir() .. "/y.trace", "selftest", "--write-test",
    "--sector", "0x1000" }
  eq(r.code, 6); match(r.err, "boot area")
  sim:stop()
  for _, l in ipairs(sim:log_lines()) do ok(not l:match("^0x30 "), "nothing erased: " .. l) end
  -- ST's layout leaves no gap: the last sector of its reserved partition
  local st = module_with({ { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
    { name = "FW", type = 0, address0 = 0x10000, size0 = 0x1B4000, address1 = 0x1C4000, size1 = 0x1B4000 },
    { name = "media", type = 2, address0 = 0x378000, size0 = 0x79000 },
    { name = "rsvd2", type = 8, address0 = 0x3F1000, size0 = 0xE000 },
    { name = "MFD", type = 9, address0 = 0x3FF000, size0 = 0x1000 } })
  local sim2 <close> = helpers.ncpsim{ "--state", st }
  r = helpers.run{ "--port", sim2.url, "--trace-file", helpers.tmpdir() .. "/z.trace", "selftest", "--write-test" }
  eq(r.code, 0, r.err)
  match(r.out, "sector 0x3FE000 %(last sector of 'rsvd2', a reserved partition")
end)

test("a selftest trace replays: ncpsim --replay answers a second run, complete", function()
  local state = module_with({ { name = "FW", type = 0, address0 = 0x10000, size0 = 0x200000 } })
  local dir = helpers.tmpdir()
  local trace = dir .. "/bench.trace"
  local sim <close> = helpers.ncpsim{ "--state", state }
  local r0 = helpers.run{ "--port", sim.url, "--trace-file", trace, "selftest", "--write-test" }
  eq(r0.code, 0, r0.err)
  sim:stop()
  local rep <close> = helpers.ncpsim{ "--replay", trace }
  local r = helpers.run{ "--port", rep.url, "--trace-file", dir .. "/again.trace", "selftest", "--write-test" }
  eq(r.code, 0, r.err)
  match(r.out, "restored and verified")
  rep:stop()
  local last = ""
  for _, l in ipairs(rep:log_lines()) do if l:match("^replay:") then last = l end end
  match(last, "replay: end: %d+ host bytes matched, %d+ bytes answered, complete")
end)
