-- ncpsim as strict as the vendor's recordings allow (issue 14, docs/api/ncpsim.md): frame
-- limits, the handshake burst and guard, the 0x22 clock switch, the flash part behind 0x3B,
-- per-unit erase, one chip per state dir, and the baud-dependent "fussy adapter" fault.
-- Raw frames from tests/lib/rawrom.lua; ncpsim's defaults throughout.
local sys = require "ncpflash.core.sys"
skip_if(helpers.windows, "make test-win: this file tests ncpsim (a native program), not ncpflash.exe")
local codec = require "ncpflash.core.codec"
local rawrom = require "rawrom"
local frame, reply, cmd, handshake = rawrom.frame, rawrom.reply, rawrom.cmd, rawrom.handshake
local open, log_text, u32, two = rawrom.open, rawrom.log_text, rawrom.u32, rawrom.two

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local function strict(args) return helpers.ncpsim(args) end   -- strict is the default

-- The 84-byte block the vendor's flasher sent for C4 60 16 (GT25Q32A entry), as recorded in
-- ../shared/conformance/vendor/st_t02/wire.trace.
local GT_BLOCK = codec.unhex("040100006699ff039f00b7e904c40001c72052d8060232000b010b013b01bb006b01eb02eb02"
  .. "025000010001010002010101ab01053500000131000038ff20ff77030240770302f00c000c000c00030018001400")

-- the same block with another quad-enable method (ST's flash_para.bin way: write 2 bytes with 0x01)
local function other_qe(b) return b:sub(1, 48) .. "\2" .. b:sub(50, 57) .. "\1" .. b:sub(59) end

local function flash_set(io) return string.pack("BBBB", 0x08, 0x41, io, 0x01) end

local function sha_dev(p, addr, len)
  ok(cmd(p, 0x60, ""))
  local good, d = cmd(p, 0x3E, two(addr, len), true)
  ok(cmd(p, 0x61, ""))
  ok(good, "0x3E answered")
  return d
end

-- ---------------------------------------------------------------------------------------

test("frames: 0x31/0x3F above 4 + 2048 and 0x32 above 2048 get FL 0102; the session goes on", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0x1000) .. string.rep("\0", 2048)), "4 + 2048 is what the vendor sends")
  local good, code = cmd(p, 0x31, u32(0x2000) .. string.rep("\0", 2049))
  eq(good, false); eq(code, 0x0102)
  good, code = cmd(p, 0x3F, u32(0x80003000) .. string.rep("\0", 4096))
  eq(good, false); eq(code, 0x0102, "0x3F 4 + 4096")
  ok(cmd(p, 0x32, two(0, 2048), true))
  good, code = cmd(p, 0x32, two(0, 2049), true)
  eq(good, false); eq(code, 0x0102, "0x32 of 2049 bytes")
  -- a frame beyond the ROM's buffer is refused at its header and its payload skipped
  good, code = cmd(p, 0x31, u32(0x1000) .. string.rep("\xAA", 5000))
  eq(good, false); eq(code, 0x0102)
  ok(cmd(p, 0x10, "", true), "next frame parsed normally")
  sim:stop()
  local img = sim:flash()
  eq(img:sub(0x2001, 0x2001 + 2048), string.rep("\xFF", 2049), "refused frames wrote nothing")
  match(log_text(sim), "4 %+ 2049 > %-%-max%-payload 2052")
end)

test("--max-payload 4100 models a ROM that takes 4 + 4096; --oversize silent a ROM that chokes", function()
  local big <close> = strict{ "--raw", "127.0.0.1:0", "--max-payload", "4100" }
  local p <close> = open(big)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0) .. string.rep("\xFF", 4096)))
  ok(cmd(p, 0x32, two(0, 4096), true))

  local mute <close> = strict{ "--raw", "127.0.0.1:0", "--oversize", "silent", "--timeout-ms", "300" }
  local q <close> = open(mute)
  ok(handshake(q))
  local good, why = cmd(q, 0x31, u32(0) .. string.rep("\xFF", 4096), false, 0.3)
  eq(good, nil); eq(why, "no reply")
  eq(select(2, cmd(q, 0x10, "", true, 0.2)), "no reply", "deaf while the ROM waits for its timeout")
  sys.sleep(0.4)   -- silence longer than the ROM timeout: back to waiting for a handshake
  ok(handshake(q))
  ok(cmd(q, 0x10, "", true), "a new handshake after the timeout works")
end)

test("handshake: 5 ms of 0x55 in one run (250 at 500 kbaud); a pause breaks the run", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  p:write(string.rep("\x55", 4))
  eq(p:read(2, 0.2), "", "four bytes are no handshake")
  p:write(string.rep("\x55", 200))
  sys.sleep(0.05)
  p:write(string.rep("\x55", 200))
  eq(p:read(2, 0.2), "", "200 + 200 with a 50 ms pause: two short runs")
  sys.sleep(0.05)
  p:write(string.rep("\x55", 249))
  eq(p:read(2, 0.2), "", "249 bytes are 4.98 ms at 500 kbaud")
  sys.sleep(0.05)
  ok(handshake(p, 0.5, 250), "250 bytes: OK")
  ok(cmd(p, 0x10, "", true))
end)

test("handshake guard: what follows the OK within 20 ms is dropped; later 0x55 are frame bytes", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0", "--timeout-ms", "400" }
  local p <close> = open(sim)
  p:write(string.rep("\x55", 300) .. frame(0x10))
  eq(p:read(2, 0.5), "OK", "the handshake OK")
  eq(p:read(4, 0.2), "", "a command in the tail of the burst is dropped")
  ok(cmd(p, 0x10, "", true), "after the guard it is answered")
  match(log_text(sim), "handshake guard: input dropped %(0x10")
  -- the last bytes of a burst that arrive late (a TCP segment) are still its tail
  sys.sleep(0.5)   -- ROM timeout: back to waiting for a handshake
  p:write(string.rep("\x55", 260))
  eq(p:read(2, 0.5), "OK")
  sys.sleep(0.05)
  p:write(string.rep("\x55", 40))
  ok(cmd(p, 0x10, "", true), "late tail dropped, the next frame answered")
  -- a second burst mid-session is not skipped: 55 55 55 55 is a header declaring 21845 bytes
  p:write(string.rep("\x55", 300))
  local good, code = reply(p, false, 0.3)
  eq(good, false); eq(code, 0x0102, "FL 0102 for the 0x55 'frame'")
  eq(select(2, cmd(p, 0x10, "", true, 0.2)), "no reply", "its declared payload swallows the next frame")
  sys.sleep(0.5)   -- ROM timeout: waiting for a handshake again
  ok(handshake(p))
  ok(cmd(p, 0x10, "", true))
end)

test("0x22: what arrives within 10 ms of the OK is lost; later it is answered", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x22, two(1, 2000000)))
  eq(select(2, cmd(p, 0x10, "", true, 0.2)), "no reply", "sent at once after the OK")
  sys.sleep(0.02)
  ok(cmd(p, 0x10, "", true), "after the switch")
  match(log_text(sim), "0x22 clock switch: input dropped")
end)

test("0x3B: the block is checked against the part; a wrong QE method breaks quad reads only", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  local data = helpers.random_bytes(2048, 7)
  ok(cmd(p, 0x31, u32(0x4000) .. data))
  local want = codec.sha256(data)
  ok(cmd(p, 0x3B, flash_set(4) .. GT_BLOCK), "QIO with the part's own entry")
  eq(sha_dev(p, 0x4000, 2048), want, "quad reads right")
  ok(cmd(p, 0x3B, flash_set(4) .. other_qe(GT_BLOCK)), "QIO, QE written another way")
  ne(sha_dev(p, 0x4000, 2048), want, "IO2/IO3 never enabled: the XIP SHA-256 is wrong")
  local good, rd = cmd(p, 0x32, two(0x4000, 16), true)
  ok(good); ne(rd, data:sub(1, 16), "0x32 reads through the same setup")
  ok(cmd(p, 0x3B, flash_set(1) .. other_qe(GT_BLOCK)), "DO (the vendor's io mode), same block")
  eq(sha_dev(p, 0x4000, 2048), want, "QE unused in dual-output mode")
  ok(cmd(p, 0x3B, flash_set(1)), "4-byte form: the ROM's own description")
  eq(sha_dev(p, 0x4000, 2048), want)
  local log = log_text(sim)
  match(log, "io=QIO %+flash%-cfg = GT25Q32A entry cfg=0401")
  match(log, "vs GT25Q32A: qe%-method%-differs%(quad reads fail%)")
  match(log, "io=DO %+flash%-cfg vs GT25Q32A: qe%-method%-differs%(unused in this io mode%)")
end)

test("0x3B: an erase or program command the part does not know does nothing", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0x1000) .. string.rep("\0", 16)))
  local bad_erase = GT_BLOCK:sub(1, 17) .. "\xD7" .. GT_BLOCK:sub(19)     -- sector_erase_cmd
  ok(cmd(p, 0x3B, flash_set(1) .. bad_erase))
  ok(cmd(p, 0x30, two(0x1000, 0x1FFF)))
  local bad_pp = GT_BLOCK:sub(1, 21) .. "\x12" .. GT_BLOCK:sub(23)        -- page_prog_cmd
  ok(cmd(p, 0x3B, flash_set(1) .. bad_pp))
  ok(cmd(p, 0x31, u32(0x3000) .. string.rep("\0", 16)))
  sim:stop()
  local img = sim:flash()
  eq(img:sub(0x1001, 0x1010), string.rep("\0", 16), "not erased")
  eq(img:sub(0x3001, 0x3010), string.rep("\xFF", 16), "not programmed")
  match(log_text(sim), "sector_erase_cmd=0xd7%(part 0x20%)")
  match(log_text(sim), "erase command not the part's: nothing erased")
end)

test("erase per unit: 64K/32K blocks where aligned, sectors elsewhere, as the SDK's loop", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0x2F000) .. string.rep("\0", 16)))
  ok(cmd(p, 0x31, u32(0x91000) .. string.rep("\0", 16)))
  ok(cmd(p, 0x30, two(0x10000, 0x8BACF)))   -- the mfg FW range of the vendor's recording
  ok(cmd(p, 0x30, two(0x0, 0xCD3F)))        -- boot2
  ok(cmd(p, 0x30, two(0x90800, 0x91000)))   -- unaligned start: sector by sector from 0x90800
  sim:stop()
  local log = log_text(sim)
  match(log, "start=0x00010000 end=0x0008bacf units=64Kx7%+32Kx1%+4Kx4 ")
  match(log, "start=0x00000000 end=0x0000cd3f units=64Kx0%+32Kx1%+4Kx5 ")
  match(log, "start=0x00090800 end=0x00091000 units=64Kx0%+32Kx0%+4Kx1 ")
  local img = sim:flash()
  eq(img:sub(0x2F001, 0x2F010), string.rep("\xFF", 16), "erased by a 64K block")
  eq(img:sub(0x91001, 0x91010), string.rep("\0", 16), "the sector holding end stays (the SDK's loop)")
end)

test("realtime: erase time is the sum of the units' typical times", function()
  local sim <close> = strict{ "--raw", "127.0.0.1:0", "--realtime", "--blk64-ms", "100", "--sector-ms", "30" }
  local p <close> = open(sim)
  ok(handshake(p))
  local t0 = sys.now()
  ok(cmd(p, 0x30, two(0x10000, 0x4FFFF), false, 5))   -- 4 x 64K
  local t1 = sys.now()
  ok(cmd(p, 0x30, two(0x1000, 0x4FFF), false, 5))     -- 4 sectors
  local t2 = sys.now()
  ok(t1 - t0 >= 0.39 and t1 - t0 < 1.0, ("4 blocks took %.3f s"):format(t1 - t0))
  ok(t2 - t1 >= 0.11 and t2 - t1 < 0.6, ("4 sectors took %.3f s"):format(t2 - t1))
  match(log_text(sim), "units=64Kx4%+32Kx0%+4Kx0 %-> OK @[%d.]+ busy=0%.40")
end)

test("identity: each fresh state dir is its own chip; --chip-id chooses; the dir keeps it", function()
  local a <close> = strict{}
  local b <close> = strict{}
  match(a.chip_id, "^%x+$"); eq(#a.chip_id, 12)
  ne(a.chip_id, b.chip_id, "two fresh ncpsims are two chips")
  local state = a.state
  a:stop()
  local again <close> = strict{ "--state", state }
  eq(again.chip_id, a.chip_id, "the state dir keeps its chip id")
  local pick <close> = strict{ "--raw", "127.0.0.1:0", "--chip-id", "0a:1b:2c:3d:4e:5f" }
  eq(pick.chip_id, "0a1b2c3d4e5f")
  local p <close> = open(pick)
  ok(handshake(p))
  local good, bi = cmd(p, 0x10, "", true)
  ok(good); eq(bi:sub(13, 18), codec.unhex("5f4e3d2c1b0a"), "boot info holds it LSB first")
  local mac
  good, mac = cmd(p, 0x42, "", true)
  ok(good); eq(mac:sub(1, 6), codec.unhex("5f4e3d2c1b0a"), "the factory MAC is the chip id")
end)

test("fussy adapter: clean up to its baud, errors above it; a lower --load-baud passes", function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(96 * 1024, 11))
  local sim <close> = helpers.ncpsim{ "--fault", "fussy:1000000:0.02", "--seed", "5" }
  local r = helpers.run({ "--port", sim.url, "flash", "0x10000", fw })
  ok(r.code ~= 0, "at 2 Mbaud the adapter mangles bytes: " .. r.out .. r.err)
  r = helpers.run({ "--port", sim.url, "--load-baud", "1000000", "flash", "0x10000", fw })
  eq(r.code, 0, r.err)
  sim:stop()
  eq(sim:flash():sub(0x10001, 0x10000 + 96 * 1024), helpers.readfile(fw), "byte-exact at 1 Mbaud")
end)
