-- Talking to the ROM the way the vendor's flasher does (issue 14, docs/conformance.md): ncpflash's
-- command sequence on the strict ncpsim against each recorded flow, with every difference
-- explained by docs/conformance.md; ST's sets byte-exact at every frame limit; the frame probe
-- falls back before any erase; the 84-byte block before each region; the vendor's waits and
-- ROM timeouts; erase deadlines from the flash part.
local sys = require "ncpflash.core.sys"
local codec = require "ncpflash.core.codec"
local progcfg = require "ncpflash.progcfg"
local conform = require "conform"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local have_conf = sys.stat(helpers.root .. "/" .. conform.CONF .. "/vendor/st_t02/ncpsim.log") ~= nil

-- The regions of one of ST's flash_prog_cfg.ini (addresses resolved) and their bytes.
local function st_regions(ini)
  local cfg = progcfg.load(helpers.ncp_binaries .. "/" .. ini)
  local out = {}
  for _, r in ipairs(cfg.regions) do
    out[#out + 1] = { name = r.name, address = r.address, data = helpers.readfile(r.file) }
  end
  return out
end

local function byte_exact(sim, regions)
  local img = sim:flash()
  for _, r in ipairs(regions) do
    eq(img:sub(r.address + 1, r.address + #r.data) == r.data, true, ("%s @0x%X byte-exact"):format(r.name, r.address))
  end
end

-- log lines matching a pattern, with their index
local function find(lines, pat)
  local out = {}
  for i, l in ipairs(lines) do if l:match(pat) then out[#out + 1] = i end end
  return out
end

-- ---------------------------------------------------------------------------------------

test("every recorded flow: ncpflash's sequence differs only as docs/conformance.md lists", function()
  if not have_conf then skip("../shared/conformance not present") end
  local rules = conform.rules(helpers.readfile(helpers.root .. "/docs/conformance.md"))
  local bad, ran = {}, 0
  for _, name in ipairs(conform.FLOWS) do
    local run, why = conform.run_flow(name, helpers)
    if run then
      ran = ran + 1
      eq(run.result.code, 0, name .. ": " .. run.result.err)
      local b = conform.compare(name, run.vendor, run.items, rules)
      for _, x in ipairs(b) do bad[#bad + 1] = x end
    else
      print(("  (flow %s skipped: %s)"):format(name, why))
    end
  end
  ok(ran >= 5, "flows compared: " .. ran)
  if #bad > 0 then print(table.concat(bad, "\n")) end
  eq(table.concat(bad, "\n"), "", "differences docs/conformance.md does not explain")
  if ran == #conform.FLOWS then   -- with everything compared, no rule may be stale
    for _, r in ipairs(rules) do ok(r.used > 0, "rule " .. r.id .. " (" .. r.side .. ") explained nothing") end
  end
end)

test("docs/conformance.md: every rule id has its section (vendor does / ncpflash does / why / evidence)", function()
  local md = helpers.readfile(helpers.root .. "/docs/conformance.md")
  for _, r in ipairs(conform.rules(md)) do
    local sec = md:match("\n### `" .. r.id:gsub("%-", "%%-") .. "`.-\n(.-)\n###") or md:match("\n### `"
      .. r.id:gsub("%-", "%%-") .. "`.-\n(.*)$")
    ok(sec, "a section ### `" .. r.id .. "`")
    for _, k in ipairs({ "Vendor:", "ncpflash:", "Why:", "Evidence:" }) do
      ok(sec and sec:find(k, 1, true), r.id .. ": " .. k)
    end
  end
end)

test("ST's t02, t01 and mfg sets: byte-exact on the strict ncpsim, at 4 + 2048, and with a probed 4 + 4096", function()
  if not helpers.have_fixtures() then skip("ST's release folder not present") end
  for _, ini in ipairs({ "mission_t02_flash_prog_cfg_v2.0.89.ini", "mission_t01_flash_prog_cfg_v2.0.89.ini",
      "mfg_flash_prog_cfg_v2.0.89.ini" }) do
    local regions = st_regions(ini)
    for _, case in ipairs({ { sim = {}, frames = 2052 }, { sim = { "--max-payload", "2052" }, frames = 2052 },
        { sim = { "--max-payload", "4100" }, global = { "--frame-size", "4096" }, frames = 4100 } }) do
      local sim <close> = helpers.ncpsim(case.sim)
      local argv = { "--port", sim.url }
      for _, a in ipairs(case.global or {}) do argv[#argv + 1] = a end
      argv[#argv + 1] = "flash"; argv[#argv + 1] = "--config"; argv[#argv + 1] = helpers.ncp_binaries .. "/" .. ini
      local r = helpers.run(argv)
      eq(r.code, 0, ini .. " " .. table.concat(case.sim, " ") .. ": " .. r.err)
      sim:stop()
      byte_exact(sim, regions)
      local log = table.concat(sim:log_lines(), "\n")
      match(log, "0x3F flash_decompress_write plen=" .. case.frames .. " ", "frames of " .. case.frames)
      nomatch(log, "plen=" .. (case.frames == 2052 and 4100 or 8196), "nothing larger")
    end
  end
end)

test("a ROM that refuses the probe frame: FL or silence, 2048-byte frames, all before any erase", function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(64 * 1024, 21))
  for _, case in ipairs({ { "--timeout-ms", "2000" }, { "--oversize", "silent" } }) do
    local sim <close> = helpers.ncpsim(case)
    local r = helpers.run{ "--port", sim.url, "--frame-size", "4096", "--json", "flash", "--erase", "2", "--chip-erase",
      "0x10000", fw }
    eq(r.code, 0, r.err)
    local probe
    for _, e in ipairs(helpers.json_lines(r.out)) do if e.frame_probe then probe = e.frame_probe end end
    ok(probe, "the probe result is reported")
    eq(probe.tx_chunk, 2048); eq(probe.read_chunk, 2048)
    eq(probe.write, case[1] == "--oversize" and "no reply" or "FL 0x0102")
    sim:stop()
    local lines = sim:log_lines()
    local probe_at = find(lines, "^0x31 flash_write plen=4100 ")
    local erase_at = find(lines, "^0x3C ")
    eq(#probe_at, 1, "one probe write"); eq(#erase_at, 1)
    ok(probe_at[1] < erase_at[1], "the probe comes before the chip erase")
    if case[1] == "--oversize" then
      local gone = find(lines, "^inactivity")
      ok(#gone >= 1 and gone[1] > probe_at[1] and gone[1] < erase_at[1],
        "after the silence the ROM timed out (ncpflash waited it out) before the re-sync")
      eq(#find(lines, "^handshake baud=2000000"), 2, "re-synced at the load speed after each probe (write, read)")
    end
    nomatch(table.concat(lines, "\n"), "0x3F flash_decompress_write plen=4100", "no large frame was used")
    eq(sim:flash():sub(0x10001, 0x10000 + #helpers.readfile(fw)), helpers.readfile(fw), "byte-exact")
  end
end)

test("C4 60 16: the vendor's GT25Q32A block goes before each region; --flash-config chip|FILE, unknown ids", function()
  local dir = helpers.tmpdir()
  local a = helpers.writefile(dir .. "/a.bin", helpers.random_bytes(8192, 1))
  local b = helpers.writefile(dir .. "/b.bin", helpers.random_bytes(3000, 2))
  local function blocks(sim)
    local out = {}
    for _, l in ipairs(sim:log_lines()) do
      local hex = l:match("^0x3B flash_set_para plen=88 .- cfg=(%x+)")
      if hex then out[#out + 1] = codec.unhex(hex) end
    end
    return out
  end
  local gt = require("ncpflash.romcodec").flash_part("c46016").block
  if have_conf then
    local rec = conform.trace_blocks(helpers.root .. "/" .. conform.CONF .. "/vendor/st_t02/wire.trace")
    eq(rec[1]:sub(5), gt, "the table's C4 60 16 entry is what the vendor sent")
  end
  local sim <close> = helpers.ncpsim{}
  eq(helpers.run{ "--port", sim.url, "flash", "0x20000", a, "0x30000", b }.code, 0)
  sim:stop()
  local got = blocks(sim)
  eq(#got, 2, "one 88-byte 0x3B per region")
  for i = 1, #got do eq(got[i], gt, "region " .. i) end
  -- per region: the block, [the blank check], [the erase], 0x23 2 s, the writes
  local seq = {}
  for _, l in ipairs(sim:log_lines()) do
    local op = l:match("^0x(%x%x) ")
    if op and op ~= "60" and op ~= "3E" and op ~= "61" then
      if op == "3B" then op = op .. "/" .. l:match("plen=(%d+)") end
      if op == "23" then op = op .. "/" .. l:match("timeout_ms=(%d+)") end
      if seq[#seq] ~= op then seq[#seq + 1] = op end
    end
  end
  -- (both regions' sectors read erased on this blank flash: b.bin's one sector is whole, too)
  match(table.concat(seq, " "), "3B/88 23/2000 31 3A 3B/88 23/2000 31 3A$")
  -- ST's flash_para.bin (the chip's default) on request, or a file
  local chip_block = require("ncpflash.romcodec").flash_cfg_bytes(require("ncpflash.chip").load("bl616"))
  local sim2 <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim2.url, "--flash-config", "chip", "flash", "0x20000", a }
  eq(r.code, 0, r.err)
  sim2:stop()
  eq(blocks(sim2)[1], chip_block)
  local file = helpers.writefile(dir .. "/cfg.bin", gt:sub(1, 83) .. "\x07")
  local sim3 <close> = helpers.ncpsim{}
  r = helpers.run{ "--port", sim3.url, "--flash-config", file, "flash", "0x20000", a }
  eq(r.code, 0, r.err)
  sim3:stop()
  eq(blocks(sim3)[1], gt:sub(1, 83) .. "\x07")
  -- a JEDEC id the table does not know: ST's block (auto), a usage error (table); a bad file
  local odd <close> = helpers.ncpsim{ "--jedec", "aa601600" }
  r = helpers.run{ "--port", odd.url, "--flash-config", dir .. "/a.bin", "info", "--no-images" }
  eq(r.code, 7, "a file of the wrong size is refused: " .. r.err)
  match(r.err, "8192 bytes, expected 84")
  r = helpers.run{ "--port", odd.url, "info", "--no-images" }
  eq(r.code, 0, r.err)
  match(r.out, "flash%s+JEDEC AA6016 %(not in the flash table%)")
  match(r.out, "flash config%s+the chip's default")
  r = helpers.run{ "--port", odd.url, "--flash-config", "table", "info", "--no-images" }
  eq(r.code, 2); match(r.err, "AA6016 is not in")
end)

test("waits as the vendor's: 500 ms after the handshake, 110 ms after 0x22 (ncpsim --realtime)", function()
  local sim <close> = helpers.ncpsim{ "--realtime" }
  eq(helpers.run{ "--port", sim.url, "info", "--no-images" }.code, 0)
  sim:stop()
  local at = {}
  for _, l in ipairs(sim:log_lines()) do
    local what, t = l:match("^(%S+) .-@([%d.]+)")
    if what and not at[what] then at[what] = tonumber(t) end
  end
  ok(at.handshake and at["0x10"] and at["0x22"] and at["0x42"], "timestamps in the realtime log")
  ok(at["0x10"] - at.handshake >= 0.5, ("handshake -> 0x10: %.3f s"):format(at["0x10"] - at.handshake))
  ok(at["0x42"] - at["0x22"] >= 0.11, ("0x22 -> next command: %.3f s"):format(at["0x42"] - at["0x22"]))
end)

test("erase deadlines from the flash part: the 300 ms/sector erase passes, a PD keeps a slow one alive", function()
  -- the issue's case: 506 KB from 0x10000 with 300 ms sectors; and every unit at the table's maximum
  for _, extra in ipairs({ { "--sector-ms", "300" },
      { "--sector-ms", "300", "--blk32-ms", "1200", "--blk64-ms", "1200" } }) do
    local args = { "--realtime" }
    for _, x in ipairs(extra) do args[#args + 1] = x end
    local sim <close> = helpers.ncpsim(args)
    local r = helpers.run{ "--port", sim.url, "erase", "0x10000", "506576" }
    eq(r.code, 0, table.concat(extra, " ") .. ": " .. r.err)
  end
  -- one 64 KiB block taking 6 s (beyond any maximum): the deadline (2 + 1.5 x 2 s) passes and
  -- ncpflash says so; with PD keep-alives the same erase completes
  local slow <close> = helpers.ncpsim{ "--realtime", "--blk64-ms", "6000" }
  local r = helpers.run{ "--port", slow.url, "erase", "0x10000", "0x10000" }
  eq(r.code, 4, r.err)
  match(r.err, "erase 0x10000%.%.0x1FFFF: flash_erase %(0x30%): no reply within 5%.00 s")
  match(r.err, "the deadline is 1%.5 x the maximum erase times of the GT25Q32A %+ 2 s %(1 x 64 KiB at 2000 ms")
  match(r.err, "may still be erasing")
  local pd <close> = helpers.ncpsim{ "--realtime", "--blk64-ms", "6000", "--fault", "pd:500" }
  r = helpers.run{ "--port", pd.url, "erase", "0x10000", "0x10000" }
  eq(r.code, 0, r.err)
end)

test("an unaligned region on old data: the erase starts at its sector, so the last byte's sector is erased", function()
  -- the SDK's loop steps from an unaligned start by whole sectors: 0x11800..0x12000 would erase
  -- only the sector at 0x11000 and leave 0x12000 holding old data (ncpsim models that)
  local dir = helpers.tmpdir()
  sys.mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/flash.bin", string.rep("\0", 4 * 1024 * 1024))
  local f = helpers.writefile(dir .. "/u.bin", helpers.random_bytes(0x801, 5))
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local r = helpers.run{ "--port", sim.url, "flash", "0x11800", f }
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(0x11801, 0x12001), helpers.readfile(f), "byte-exact")
  match(table.concat(sim:log_lines(), "\n"), "0x30 flash_erase plen=8 start=0x00011000 end=0x00012%x%x%x ")
end)
