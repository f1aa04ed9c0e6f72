-- The benchmark's lower-bound arithmetic (tests/lib/benchmodel.lua) and the flash engine's
-- blank-run helpers, without timing anything (`make bench` is not part of `make test`).
local model = require "benchmodel"
local flash = require "ncpflash.flash"
local sys = require "ncpflash.core.sys"
local helpers = require "helpers"

local function near(a, b, msg) ok(math.abs(a - b) < 1e-9, (msg or "") .. (": %.12g vs %.12g"):format(a, b)) end

local LOG = {
  "client connected",
  "lines dtr=0 rts=1 @100.000000",                                        -- reset asserted
  "lines dtr=1 rts=0 @100.050000",
  "handshake baud=500000 -> OK @100.180000 busy=0.001000 baud=500000",
  "0x10 get_boot_info plen=0 -> OK len=24 @100.200000 busy=0.001000 baud=500000",
  "0x22 clk_set plen=8 -> OK @100.210000 busy=0.001000 baud=500000",
  "0x3C flash_chip_erase plen=0 -> OK @100.300000 busy=12.001000 baud=2000000",
  "0x30 flash_erase plen=8 start=0x00010000 end=0x00010fff -> OK @112.4 busy=0.046000 baud=2000000",
  "0x3F flash_decompress_write plen=4100 addr=0x80010000 len=4096 new-stream -> OK @112.5 busy=0.020200 baud=2000000",
  "0x31 flash_write plen=312 addr=0x0000e000 len=308 -> FL 0005 @112.6 busy=0.001000 baud=2000000",
  "0x3A flash_write_check plen=0 -> OK @112.7 busy=0.001000 baud=2000000",
  "0x60 xip_read_start plen=0 -> OK @112.8 busy=0.001000 baud=2000000",
  "0x3E flash_xip_read_sha plen=8 addr=0x00010000 len=4096 -> OK len=32 @112.9 busy=0.001000 baud=2000000",
  "0x61 xip_read_finish plen=0 -> OK @113.0 busy=0.001000 baud=2000000",
  "0x10 get_boot_info plen=0 -> OK len=24",                               -- not realtime: ignored
  "client disconnected",
}

test("log lines parse into commands, handshakes and line changes", function()
  local e = model.parse_line(LOG[9])
  eq(e.kind, "cmd"); eq(e.op, 0x3F); eq(e.rx, 4104); eq(e.tx, 2); eq(e.phase, "write"); eq(e.baud, 2000000)
  near(e.busy, 0.0202); near(e.t, 112.5)
  eq(model.parse_line(LOG[5]).tx, 28, "OK + len + 24 data bytes")
  eq(model.parse_line(LOG[10]).tx, 4, "FL + code")
  eq(model.parse_line(LOG[5]).phase, "connect")
  eq(model.parse_line(LOG[4]).kind, "handshake")
  eq(model.parse_line(LOG[4]).baud, 500000)
  local l = model.parse_line(LOG[2])
  eq(l.kind, "lines"); eq(l.rts, true); eq(l.dtr, false)
  eq(model.parse_line(LOG[15]), nil)
  eq(model.parse_line(LOG[1]), nil)
end)

test("the bound is wire time at the baud in effect plus the modelled device time, per phase", function()
  local ev = model.parse_log(LOG)
  eq(#ev, 13)
  local b = model.bound(ev, { sync_bytes = 300 })
  -- connect: handshake (300 + 2 bytes) + 0x10 (4 + 28) + 0x22 (12 + 2), all at 50,000 B/s
  near(b.connect.wire, (302 + 32 + 14) / 50000, "connect wire")
  near(b.connect.device, 0.003, "connect device")
  near(b.connect.bound, (302 + 32 + 14) / 50000 + 0.003, "connect bound")
  -- erase: 0x3C (4 + 2) and 0x30 (12 + 2) at 200,000 B/s; 12.001 + 0.046 s of device time
  near(b.erase.wire, 20 / 200000); near(b.erase.device, 12.047)
  -- write: 0x3F (4104 + 2), 0x31 (316 + 4), 0x3A (4 + 2)
  near(b.write.wire, (4106 + 320 + 6) / 200000); near(b.write.device, 0.0222)
  eq(b.write.commands, 3); eq(b.write.rx, 4104 + 316 + 4); eq(b.write.tx, 2 + 4 + 2)
  -- verify: 0x60 (4 + 2), 0x3E (12 + 36), 0x61 (4 + 2)
  near(b.verify.wire, 60 / 200000); near(b.verify.device, 0.003)
  near(b.total.bound, b.connect.bound + b.erase.bound + b.write.bound + b.verify.bound, "total")
  eq(b.total.commands, 11, "10 commands and the handshake")
  -- the host->device turnaround: once per command (not per handshake)
  local b2 = model.bound(ev, { sync_bytes = 300, latency = 0.016 })
  near(b2.write.device, 0.0222 + 3 * 0.016, "3 write commands")
  near(b2.connect.device, 0.003 + 2 * 0.016, "2 connect commands, 1 handshake")
  near(b2.total.bound - b.total.bound, 10 * 0.016)
end)

test("the vendor's modelled time: its plain log charged as ncpsim's realtime model, plus its waits", function()
  local lines = {
    "handshake baud=500000 -> OK",
    "0x10 get_boot_info plen=0 -> OK len=28",
    "0x22 clk_set plen=8 irq=1 baud=2000000 -> OK",
    "0x3C flash_chip_erase plen=0 -> OK",
    "0x3F flash_decompress_write plen=2052 addr=0x80000000 len=2048 new-stream -> OK",
    "0x3F flash_decompress_write plen=1000 addr=0x00000800 len=996 -> OK",
    "0x3A flash_write_check plen=0 -> OK",
    "0x3E flash_xip_read_sha plen=8 addr=0x00000000 len=10000 -> OK len=32",
    "0x30 flash_erase plen=8 start=0x00010000 end=0x0002ffff -> OK",
  }
  local ev = model.parse_plain(lines, { latency = 0.001 })
  eq(#ev, 9)
  near(ev[3].busy, 0.001 + 0.005, "the baud switch")
  eq(ev[3].baud, 500000); eq(ev[4].baud, 2000000)
  near(ev[4].busy, 0.001 + 12.0, "chip erase of 4 MiB")
  near(ev[5].busy, 0.001 + 40 * 0.0006, "the stream's pages (10000 bytes: 40) on its first frame")
  near(ev[6].busy, 0.001)
  near(ev[9].busy, 0.001 + 2 * 0.150, "two 64 KiB blocks")
  local trace = {
    "   10.000 BAUD 500000", "   10.100 OPEN rfc2217://x", "  500.000 RXTIMEOUT 0.1",     -- the open: left out
    "  600.000 TX 10000000", "  800.000 LINE rts=1", "  800.010 RX 4f4b",                -- 100 + 200 ms
    "  810.000 TX 3c000000", " 5000.000 TX 3f00",                                        -- stops at 0x3C
  }
  near(model.vendor_waits(trace), 0.3, "pauses >= 20 ms up to the first flash-changing frame")
  local v = model.vendor(lines, trace, { latency = 0.001 })
  near(v.total, v.bound + 0.3)
end)

test("reset to first command: from CHIP_EN pulled low to the first command after the handshake", function()
  near(model.reset_to_first_command(model.parse_log(LOG)), 0.2)
  eq(model.reset_to_first_command(model.parse_log({ LOG[4], LOG[5] })), nil, "no reset seen")
end)

test("the bench uses the host's sync burst length", function()
  local handshake = require "ncpflash.handshake"
  eq(handshake.sync_count(require("ncpflash.chips.bl616"), 500000), 300)
end)

test("blank runs: whole 0xFF sectors, at least 4, aligned to the flash address", function()
  local ff = string.rep("\255", 4096)
  local data = "x" .. string.rep(ff, 6) .. "y"                  -- at 0x1000: FF from offset 1
  local runs = flash.blank_runs(data, 0x1000, 4096)
  eq(#runs, 1)
  eq(runs[1].lo, 4096); eq(runs[1].hi, 4096 * 6, "last whole sector before the 'y'")
  eq(#flash.blank_runs("x" .. string.rep(ff, 3) .. "y", 0, 4096), 0, "3 sectors are not worth a stream")
  eq(#flash.blank_runs(string.rep(ff, 4), 0, 4096), 1, "a region that is all 0xFF")
  local c = flash.complement(runs, #data)
  eq(#c, 2); eq(c[1].lo, 0); eq(c[1].hi, 4096); eq(c[2].lo, 4096 * 6); eq(c[2].hi, #data)
  eq(#flash.complement({}, 10), 1)
end)

test("64 KiB blocks of whole sectors for the blank check", function()
  local b = flash.blocks(0x10000 - 0x800, 0x20000, 4096)             -- starts mid-sector
  eq(b[1].lo, 0x800); eq(b[1].hi, 0x800 + 0x10000)
  eq(b[2].lo, 0x10800); eq(b[#b].hi, 0x20000 - 0x800, "ends at the last whole sector")
  eq(#flash.blocks(0x100, 0x100, 4096), 0)
  ok(sys.now() > 0)
end)

-- A recipe script that writes `n` compressible bytes at 0x10000 with opts.window = `window`,
-- then prints the on-chip SHA-256 match, or the error's frame fields.
local function window_script(window, n)
  return helpers.writefile(helpers.tmpdir() .. "/win.lua", ([[
    return { help = "t", args = {}, run = function(ctx)
      local codec = require "ncpflash.core.codec"
      local errors = require "ncpflash.errors"
      local data = string.rep("window test 0123456789 ", %d // 23 + 1):sub(1, %d)
      local h = {}
      for i = 1, 4096 do h[i] = codec.sha256(tostring(i)) end
      data = data .. table.concat(h)                    -- plus 128 KiB that does not compress
      local s <close> = ctx:connect()
      s:erase(0x10000, #data)
      local ok, err = pcall(s.write, s, 0x10000, data, { window = %d })
      if not ok then
        ctx.ev:info(("error %%s frame %%s offset %%s"):format(err.code, tostring(err.frame),
          tostring(err.frame_offset)))
        assert(errors.is(err))
        s:cmd("GET_BOOT_INFO", "", { data = true, checksum = false })   -- the session is still usable
        ctx.ev:info("session usable")
        return
      end
      s:write_check()
      ctx.ev:info("match " .. tostring(s:sha256(0x10000, #data) == codec.sha256(data)))
    end }]]):format(n, n, window))
end

test("pipelined writes (window 3) land byte-exact through isp.send/isp.reply", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, window_script(3, 200000) }
  eq(r.code, 0, r.err)
  match(r.out, "match true")
end)

test("pipelined writes: an FL names its frame, later replies are drained", function()
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3F:000C:3" }
  local r = helpers.run{ "--port", sim.url, window_script(3, 200000) }
  eq(r.code, 0, r.err)
  match(r.out, "error device frame 3 offset 4096", r.out .. r.err)   -- 2048-byte frames
  match(r.out, "session usable")
end)

test("--erase 1 erases only what does not read erased: nothing on a blank chip, the old part only", function()
  local sim <close> = helpers.ncpsim{}
  local dir = helpers.tmpdir()
  local small = helpers.writefile(dir .. "/small.bin", helpers.random_bytes(64 * 1024, 1))
  local big = helpers.writefile(dir .. "/big.bin", helpers.random_bytes(256 * 1024, 2))
  local function erases(from)
    local out = {}
    local lines = sim:log_lines()
    for i = from + 1, #lines do
      local a, b = lines[i]:match("^0x30 flash_erase plen=8 start=(0x%x+) end=(0x%x+)")
      if a then out[#out + 1] = a .. ".." .. b end
    end
    return table.concat(out, " "), #lines
  end
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", small, "--erase", "1" }
  eq(r.code, 0, r.err)
  local e, n = erases(0)
  eq(e, "", "blank chip: no erase")
  r = helpers.run{ "--port", sim.url, "flash", "0x10000", big, "--erase", "1" }
  eq(r.code, 0, r.err)
  eq((erases(n)), "0x00010000..0x0001ffff", "only the block the small image used")
end)
