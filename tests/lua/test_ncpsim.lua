-- ncpsim, the virtual ST67W611M1, driven with frames built in tests/lib/rawrom.lua
-- (string.pack), not with ncpflash's isp module: a misreading of protocol.md by either side
-- shows up as a failure. ncpsim's defaults (the strict ROM); test_ncpsim_strict.lua
-- covers the strict ROM.
skip_if(helpers.windows, "make test-win: this file tests ncpsim (a native program), not ncpflash.exe")
local sys = require "ncpflash.core.sys"
local port = require "ncpflash.core.port"
local codec = require "ncpflash.core.codec"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

-- the default boot info with this unit's chip id (a fresh state dir is a new chip; bytes
-- 12..17 hold the id least significant byte first)
local function boot_info_of(sim)
  return codec.unhex("0200160601000100a7128201") .. codec.unhex(sim.chip_id):reverse()
    .. codec.unhex("1c008f758090e8805be3")
end

local rawrom = require "rawrom"
local frame, reply, cmd, handshake = rawrom.frame, rawrom.reply, rawrom.cmd, rawrom.handshake
local open, log_text, u32, two = rawrom.open, rawrom.log_text, rawrom.u32, rawrom.two

-- ---------------------------------------------------------------------------------------

test("raw TCP: handshake, boot info, JEDEC, MAC with CRC32", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  match(sim.url, "^socket://127%.0%.0%.1:%d+$")
  local p <close> = open(sim)
  eq(p:read(10, 0.2), "", "download mode is silent before the sync burst")
  p:write(frame(0x10))
  eq(p:read(4, 0.2), "", "no answer before a handshake (the probe)")
  ok(handshake(p))
  eq(p:read(10, 0.1), "", "OK only once; the tail of the burst is dropped")
  local good, d = cmd(p, 0x10, "", true)
  ok(good); eq(d, boot_info_of(sim))
  good, d = cmd(p, 0x36, "", true)
  ok(good); eq(d, "\xc4\x60\x16\x00")
  good, d = cmd(p, 0x42, "", true)
  ok(good); eq(#d, 10)
  eq(d:sub(1, 6), boot_info_of(sim):sub(13, 18), "MAC derived from the chip id")
  eq(string.unpack("<I4", d, 7), codec.crc32(d:sub(1, 6)))
  -- checksum 0 is accepted, a wrong one is not
  p:write(frame(0x10, "", false))
  ok(reply(p, true))
  p:write("\x36\x01\x00\x00")
  local r, code = reply(p)
  eq(r, false); eq(code, 0x0103)
end)

test("NOR model: erase end inclusive to 0xFF, program = AND, FL 0005 out of range", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x30, two(0x1000, 0x1000)), "erase one byte = its sector")
  ok(cmd(p, 0x31, u32(0x1000) .. "\xF0\x0F\xAA"))
  ok(cmd(p, 0x31, u32(0x1000) .. "\x3C\x3C\xFF"))
  local good, d = cmd(p, 0x32, two(0x1000, 4), true)
  ok(good); eq(d, "\x30\x0C\xAA\xFF")
  ok(cmd(p, 0x30, two(0x1000, 0x1FFF)))
  d = select(2, cmd(p, 0x32, two(0x1FFE, 4), true))
  eq(d, "\xFF\xFF\xFF\xFF")
  local r, code = cmd(p, 0x31, u32(0x400000) .. "x")
  eq(r, false); eq(code, 0x0005)
  code = select(2, cmd(p, 0x31, u32(0x3FFFFF) .. "xy"))
  eq(code, 0x0005, "write crossing the end")
  code = select(2, cmd(p, 0x30, two(0x3FF000, 0x400000)))
  eq(code, 0x0005)
  code = select(2, cmd(p, 0x30, two(0x2000, 0x1000)))
  eq(code, 0x0002, "end before start")
  code = select(2, cmd(p, 0x32, two(0x3FFFFC, 8), true))
  eq(code, 0x0005)
  ok(cmd(p, 0x3A), "write check clean")
  ok(cmd(p, 0x3C), "chip erase")
  d = select(2, cmd(p, 0x32, two(0x1000, 2), true))
  eq(d, "\xFF\xFF")
  sim:stop()
  local fl = sim:flash()
  eq(#fl, 4 * 1024 * 1024, "flash.bin is exactly the flash size")
end)

test("FL codes: unknown command, lengths, 0x3B 4 or 88 bytes, oversized payload", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  local r, code = cmd(p, 0x77)
  eq(r, false); eq(code, 0x0101)
  ok(cmd(p, 0x3B, u32(0x01014108)))
  ok(cmd(p, 0x3B, u32(0x01014108) .. string.rep("\0", 84)))
  code = select(2, cmd(p, 0x3B, "\1\2\3"))
  eq(code, 0x0008)
  code = select(2, cmd(p, 0x31, u32(0x1000)))
  eq(code, 0x0004, "0x31 without data")
  code = select(2, cmd(p, 0x3E, u32(0)))
  eq(code, 0x0102)
  code = select(2, cmd(p, 0x20, u32(500000)))
  eq(code, 0x0301)
  -- a declared length above 4 + 4096: FL 0102 at once, the payload is skipped
  p:write(string.pack("<BBI2", 0x31, 0, 4101))
  code = select(2, reply(p))
  eq(code, 0x0102)
  p:write(string.rep("\0", 4101))
  ok(cmd(p, 0x10, "", true), "in sync again after the skipped payload")
  -- garbage never crashes it
  local junk = helpers.random_bytes(20000, 99)
  p:write(junk)
  sys.sleep(2.3) -- inactivity timeout resynchronises
  p:read(100000, 0.1)
  ok(handshake(p), "alive after garbage")
  ok(cmd(p, 0x10, "", true))
  match(log_text(sim), "0x77 unknown plen=0 %-> FL 0101")
end)

test("eFuse: OR semantics, bounds, write lock honoured, efuse.bin", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  local good, d = cmd(p, 0x41, two(0, 512), true)
  ok(good); eq(#d, 512)
  eq(d:sub(21, 26), boot_info_of(sim):sub(13, 18), "factory MAC slot at 20")
  ok(cmd(p, 0x40, u32(0x100) .. "\x0F\x01"))
  ok(cmd(p, 0x40, u32(0x100) .. "\xF0\x02"))
  d = select(2, cmd(p, 0x41, two(0x100, 2), true))
  eq(d, "\xFF\x03", "bits only ever get set")
  local code = select(2, cmd(p, 0x40, u32(511) .. "\1\1"))
  eq(code, 0x0402)
  code = select(2, cmd(p, 0x41, two(500, 16), true))
  eq(code, 0x0405)
  -- wr_lock_key_slot_0 = word 124 bit 17: key slot 0 (bytes 28..43) no longer burns
  ok(cmd(p, 0x40, u32(28) .. "\x11"))
  ok(cmd(p, 0x40, u32(124) .. string.pack("<I4", 1 << 17)))
  ok(cmd(p, 0x40, u32(28) .. "\x22\x22"))
  d = select(2, cmd(p, 0x41, two(28, 2), true))
  eq(d, "\x11\x00", "locked slot unchanged")
  -- MAC write goes to the first empty slot; 0x42 reads the last written one
  ok(cmd(p, 0x43, "\x01\x02\x03\x04\x05\x06"))
  d = select(2, cmd(p, 0x42, "", true))
  eq(d:sub(1, 6), "\x01\x02\x03\x04\x05\x06")
  sim:stop()
  local ef = sim:efuse()
  eq(#ef, 512)
  eq(ef:sub(0x101, 0x102), "\xFF\x03")
  eq(ef:sub(101, 106), "\x01\x02\x03\x04\x05\x06")
end)

test("state persists across a restart; device.json written", function()
  local dir = helpers.tmpdir() .. "/st"
  do
    local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--state", dir }
    local p <close> = open(sim)
    ok(handshake(p))
    ok(cmd(p, 0x31, u32(0x2000) .. "persist"))
    ok(cmd(p, 0x40, u32(0x180) .. "\x5A"))
    p:close()
    eq(sim:stop(), 0, "SIGTERM exits 0")
  end
  match(helpers.readfile(dir .. "/device.json"), '"flash_size": 4194304')
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--state", dir }
  local p <close> = open(sim)
  ok(handshake(p))
  local _, d = cmd(p, 0x32, two(0x2000, 7), true)
  eq(d, "persist")
  _, d = cmd(p, 0x41, two(0x180, 1), true)
  eq(d, "\x5A")
end)

test("state saved within a second while dirty (no stop)", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0x3000) .. "live"))
  sys.sleep(1.3)
  eq(sim:flash():sub(0x3001, 0x3004), "live")
end)

test("0x3F: a 1.5 MB XZ stream lands byte-exact and 0x3E returns its SHA-256", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  local data = helpers.compressible_bytes(1000000, 5) .. helpers.random_bytes(500000, 6)
  local enc = codec.xz_encoder{ dict = 32768, check = "crc32" }
  local xz = enc:feed(data) .. enc:finish()
  ok(#xz < #data)
  local dest = 0x10000
  for off = 0, #xz - 1, 2048 do
    local addr = off == 0 and (dest | 0x80000000) or (dest + off)
    local good, code = cmd(p, 0x3F, u32(addr) .. xz:sub(off + 1, off + 2048))
    if not good then error(("chunk at %d: %s"):format(off, tostring(code))) end
  end
  ok(cmd(p, 0x3A), "write check")
  ok(cmd(p, 0x60))
  local good, sha = cmd(p, 0x3E, two(dest, #data), true, 5)
  ok(good); eq(sha, codec.sha256(data))
  ok(cmd(p, 0x61))
  local _, sha2 = cmd(p, 0x3D, two(dest, #data), true, 5)
  eq(sha2, sha, "0x3D SBUS SHA the same")
  sim:stop()
  eq(sim:flash():sub(dest + 1, dest + #data), data)
  match(log_text(sim), "0x3F flash_decompress_write plen=2052 addr=0x80010000 len=2048 new%-stream %-> OK")
end)

test("0x3F: decode error FL 000C, latched for 0x3A; a new stream (bit 31) recovers", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  local r, code = cmd(p, 0x3F, u32(0x80000000) .. "this is not xz at all")
  eq(r, false); eq(code, 0x000C)
  code = select(2, cmd(p, 0x3A))
  eq(code, 0x000C, "latched")
  code = select(2, cmd(p, 0x3F, u32(0)))
  eq(code, 0x000B, "payload < 5 bytes")
  ok(cmd(p, 0x30, two(0, 0xFFF)), "erase clears the latch")
  ok(cmd(p, 0x3A))
  local enc = codec.xz_encoder{ dict = 32768, check = "crc32" }
  local xz = enc:feed("hello xz") .. enc:finish()
  ok(cmd(p, 0x3F, u32(0x80000100) .. xz))
  local _, d = cmd(p, 0x32, two(0x100, 8), true)
  eq(d, "hello xz")
  -- the ROM's decoder has a 32 KiB dictionary: a stream that needs more is refused
  local big = codec.xz_encoder{ dict = 1 << 20, check = "crc32" }
  local bx = big:feed(helpers.random_bytes(100000, 3)) .. big:finish()
  code = select(2, cmd(p, 0x3F, u32(0x80001000) .. bx:sub(1, 2048)))
  eq(code, 0x000C, "1 MiB dictionary")
end)

test("0x23 sets the inactivity timeout; silence returns the ROM to the handshake", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--timeout-ms", "400" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x10, "", true))
  sys.sleep(0.6)
  p:write(frame(0x10))
  eq(p:read(4, 0.3), "", "timed out: no answer")
  ok(handshake(p))
  ok(cmd(p, 0x23, u32(1500)))
  sys.sleep(0.7)
  ok(cmd(p, 0x10, "", true), "still in session under the longer timeout")
  ok(cmd(p, 0x23, u32(200)))
  sys.sleep(0.4)
  p:write(frame(0x10))
  eq(p:read(4, 0.3), "")
  match(log_text(sim), "inactivity")
end)

test("RFC 2217: power-on download; straps; BFNP flash runs the application", function()
  local sim <close> = helpers.ncpsim{}
  match(sim.url, "^rfc2217://127%.0%.0%.1:%d+$")
  local p <close> = open(sim, 500000)
  ok(handshake(p), "power-on state is download mode")
  ok(cmd(p, 0x30, two(0, 0xFFF)))
  ok(cmd(p, 0x31, u32(0) .. "BFNP\1\0\0\0"))
  -- reset with BOOT low: DTR asserted (BOOT pin low), RTS pulse on CHIP_EN
  ok(p:set_baud(2000000))
  ok(p:set_dtr(true))
  ok(p:set_rts(true))
  sys.sleep(0.05)
  ok(p:set_rts(false))
  local good = p:expect("ST67W611M1", 1.0)
  ok(good, "banner at the application baud")
  good = p:expect("tick", 1.0)
  ok(good, "periodic log lines")
  handshake(p)
  eq(p:read(200, 0.1):find("OK", 1, true), nil, "the application ignores sync bursts")
  -- a host at 500000 sees garbage, not text and not OK
  ok(p:set_baud(500000))
  p:flush_input()
  local junk = p:read(400, 0.6)
  ok(#junk > 0, "something arrives")
  eq(junk:find("tick", 1, true), nil)
  eq(junk:find("OK", 1, true), nil)
  -- reset with BOOT high (DTR released): the ROM again
  ok(p:set_rts(true))
  ok(p:set_dtr(false))
  ok(p:set_rts(false))
  sys.sleep(0.05)
  p:flush_input()
  ok(handshake(p), "download mode after a reset with BOOT high")
  -- blank flash + BOOT low: silent
  ok(cmd(p, 0x3C))
  ok(p:set_dtr(true)); ok(p:set_rts(true)); ok(p:set_rts(false))
  p:flush_input()
  p:write(string.rep("\x55", 300))
  eq(p:read(10, 0.4), "", "blank flash boots to silence")
  match(log_text(sim), "lines dtr=1 rts=1")
end)

test("RFC 2217: 0x22 acks at the old rate; the host must follow", function()
  local sim <close> = helpers.ncpsim{}
  local p <close> = open(sim, 500000)
  ok(handshake(p))
  ok(cmd(p, 0x22, two(1, 2000000)), "OK at 500000")
  ok(p:set_baud(2000000))
  sys.sleep(0.02)   -- the ROM re-clocks for 10 ms after the OK (test_ncpsim_strict)
  local good, d = cmd(p, 0x10, "", true)
  ok(good); eq(d, boot_info_of(sim))
  -- a host that stays behind only gets garbage
  ok(cmd(p, 0x22, two(1, 1000000)))
  sys.sleep(0.02)
  p:write(frame(0x10))
  local got = p:read(40, 0.4)
  ok(got:sub(1, 2) ~= "OK", "no clean reply at the wrong baud")
  ok(p:set_baud(1000000))
  sys.sleep(2.2) -- whatever the device parsed times out
  p:flush_input()
  ok(handshake(p))
  ok(cmd(p, 0x10, "", true))
end)

test("RFC 2217: 0x20 switches first, then acks at the new rate", function()
  local sim <close> = helpers.ncpsim{}
  local p <close> = open(sim, 500000)
  ok(handshake(p))
  p:write(frame(0x20, two(500000, 1000000), false))
  ok(p:set_baud(1000000))
  ok(reply(p), "OK at 1000000")
  ok(cmd(p, 0x10, "", true))
  -- without following, the OK is garbage
  p:write(frame(0x20, two(1000000, 2000000), false))
  local got = p:read(20, 0.3)
  ok(got ~= "OK", "OK at 2000000 read at 1000000 is not OK")
  match(log_text(sim), "0x20 change_rate plen=8 old=500000 new=1000000 %-> OK")
end)

test("pty frontend with a symlink", function()
  local link = helpers.tmpdir() .. "/ttyNCP"
  local sim <close> = helpers.ncpsim{ "--pty", link }
  eq(sim.url, link)
  ok(sys.stat(link))
  local p <close> = port.open(link, { baud = 500000 })
  ok(handshake(p, 1))
  local good, d = cmd(p, 0x10, "", true)
  ok(good); eq(d, boot_info_of(sim))
  p:close()
  sim:stop()
  eq(sys.stat(link), nil, "symlink removed at exit")
end)

test("RFC 2217: clients come and go, state persists", function()
  local sim <close> = helpers.ncpsim{}
  do
    local p <close> = open(sim)
    ok(handshake(p))
    ok(cmd(p, 0x31, u32(0x5000) .. "one"))
  end
  sys.sleep(0.1)
  local p <close> = open(sim)
  -- the lines never moved, so the chip is still in the first client's ROM session
  local good, d = cmd(p, 0x32, two(0x5000, 3), true)
  ok(good, "the probe answers: same session"); eq(d, "one")
  p:close()
  do -- a client that leaves RTS asserted: releasing it on disconnect resets the chip
    local q <close> = open(sim)
    ok(q:set_rts(true))
  end
  sys.sleep(0.1)
  local q <close> = open(sim)
  q:write(frame(0x10))
  eq(q:read(4, 0.3), "", "fresh ROM after the reset: no session")
  ok(handshake(q))
  local _, d2 = cmd(q, 0x32, two(0x5000, 3), true)
  eq(d2, "one", "flash kept")
end)

test("ECDH secure eFuse path: 0x90, 0x91 signed by the test key, 0x80, 0x81", function()
  local crypto = require "ncpflash.core.crypto"
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local pemf = helpers.tmpdir() .. "/out"
  local pid = sys.spawn({ helpers.build .. "/ncpsim", "--print-test-key" }, { stdout = pemf })
  eq(sys.wait(pid, 5), 0)
  local pem = helpers.readfile(pemf)
  match(pem, "BEGIN PUBLIC KEY")
  local p <close> = open(sim)
  ok(handshake(p))
  local code = select(2, cmd(p, 0x80, u32(0x100) .. string.rep("\0", 16)))
  eq(code, 0x0603, "no session key before 0x90")
  local kp = crypto.ecdh_keypair()
  local good, dev = cmd(p, 0x90, kp:public_xy(), true)
  ok(good); eq(#dev, 64)
  local key = kp:derive(dev):sub(1, 16)
  local iv = string.rep("\0", 16)
  local ch
  good, ch = cmd(p, 0x91, "", true)
  ok(good); eq(#ch, 96)
  local rnd = crypto.aes128_cbc_decrypt(key, iv, ch:sub(1, 32))
  ok(crypto.ecdsa_verify_p256(pem, rnd, ch:sub(33, 96)), "challenge signed by ncpsim's test key")
  local plain = "\x01\x02\x03\x04" .. string.rep("\0", 12)
  ok(cmd(p, 0x80, u32(0x110) .. crypto.aes128_cbc_encrypt(key, iv, plain)))
  local _, d = cmd(p, 0x41, two(0x110, 16), true)
  eq(d, plain)
  local enc
  enc = select(2, cmd(p, 0x81, two(0x110, 16), true))
  eq(crypto.aes128_cbc_decrypt(key, iv, enc), plain)
  code = select(2, cmd(p, 0x90, "short"))
  eq(code, 0x0601)
end)

test("0x50/0x51 memory, 0x21 reset", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x50, two(0x22FC0000, 0xDEADBEEF) .. two(0x22FC0004, 0x01020304)))
  local _, d = cmd(p, 0x51, two(0x22FC0000, 8), true)
  eq(d, string.pack("<I4I4", 0xDEADBEEF, 0x01020304))
  local code = select(2, cmd(p, 0x50, two(0x12345678, 1)))
  eq(code, 0x0502)
  code = select(2, cmd(p, 0x50, "1234"))
  eq(code, 0x0501)
  ok(cmd(p, 0x21), "OK then reset")
  p:write(frame(0x10))
  eq(p:read(4, 0.3), "", "after the reset the ROM waits for a handshake")
  ok(handshake(p))
end)

test("stdin: reset flash / reset boot", function()
  local dir = helpers.tmpdir()
  local fifo = dir .. "/in"
  eq(os.execute("mkfifo '" .. fifo .. "'"), true)
  os.execute("(sleep 1; echo 'reset flash'; sleep 1; echo 'reset boot'; sleep 5) > '" .. fifo .. "' &")
  local st = dir .. "/st"
  sys.mkdirs(st)
  local fl = string.rep("\xFF", 4 * 1024 * 1024)
  helpers.writefile(st .. "/flash.bin", "BFNP" .. fl:sub(5))
  local sim <close> = helpers.ncpsim({ "--raw", "127.0.0.1:0", "--state", st, "--app-baud", "500000" },
    { stdin = fifo })
  local p <close> = open(sim)
  local good = p:expect("tick", 2.5)
  ok(good, "application log after 'reset flash' (app baud = raw host baud)")
  sys.sleep(1.2)
  p:flush_input()
  ok(handshake(p), "ROM after 'reset boot'")
end)

-- ---- faults -----------------------------------------------------------------------------

test("fault silent: the handshake reads nothing", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "silent" }
  local p <close> = open(sim)
  local good, seen = handshake(p)
  ok(not good); eq(seen, "")
end)

test("fault app-baud: garbage instead of OK", function()
  local sim <close> = helpers.ncpsim{ "--fault", "app-baud" }
  local p <close> = open(sim, 500000)
  local good, seen = handshake(p, 0.5)
  ok(not good)
  ok(#seen > 0, "the line is alive")
end)

test("fault echo: the sync burst comes back before OK", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "echo" }
  local p <close> = open(sim)
  local good, seen = handshake(p)
  ok(good)
  match(seen, "^UUUU")
end)

test("fault drop/flip with direction, seeded", function()
  do
    local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "drop:1:tx" }
    local p <close> = open(sim)
    local good, seen = handshake(p)
    ok(not good); eq(seen, "")
  end
  do
    local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "drop:1:rx" }
    local p <close> = open(sim)
    ok(not handshake(p))
    eq(log_text(sim):find("handshake", 1, true), nil, "nothing reached the device")
  end
  do
    local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "flip:1:tx", "--seed", "3" }
    local p <close> = open(sim)
    local good, seen = handshake(p)
    ok(not good); eq(#seen, 2, "two bytes, each with one bit flipped")
  end
  do -- a checksummed frame with a flipped bit is refused
    -- (a handshake needs 250 unflipped 0x55 in a row: 0.2 % per byte leaves most bursts whole)
    local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "flip:0.002:rx", "--seed", "7" }
    local p <close> = open(sim)
    local answered = 0
    for _ = 1, 5 do
      if handshake(p) then answered = answered + 1; break end
    end
    ok(answered > 0)
  end
end)

test("fault fl:CMD:CODE:N and stall:CMD:S", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "fl:10:0104:2",
    "--fault", "stall:36:0.5" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x10, "", true))
  local r, code = cmd(p, 0x10, "", true)
  eq(r, false); eq(code, 0x0104, "second 0x10")
  ok(cmd(p, 0x10, "", true), "third is fine again")
  local t0 = sys.now()
  ok(cmd(p, 0x36, "", true))
  ok(sys.now() - t0 >= 0.45, "stalled")
end)

test("fault powerloss: half-written flash saved, process exits", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "powerloss:1000" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x31, u32(0x8000) .. string.rep("\x11", 600)))
  p:write(frame(0x31, u32(0x8000 + 600) .. string.rep("\x22", 600)))
  local alive, got = pcall(p.read, p, 2, 0.5)
  ok(not alive or got == "", "no reply: the power is gone")
  eq(sys.wait(sim.pid, 5), 0)
  sim.stopped = true
  local fl = sim:flash()
  eq(fl:sub(0x8001, 0x8000 + 600), string.rep("\x11", 600))
  eq(fl:sub(0x8000 + 601, 0x8000 + 1000), string.rep("\x22", 400), "programmed up to the cut")
  eq(fl:sub(0x8000 + 1001, 0x8000 + 1200), string.rep("\xFF", 200), "not beyond")
end)

test("fault romtimeout:N drops the session after N commands", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "romtimeout:2" }
  local p <close> = open(sim)
  ok(handshake(p))
  ok(cmd(p, 0x10, "", true))
  ok(cmd(p, 0x36, "", true))
  p:write(frame(0x10))
  eq(p:read(4, 0.3), "", "third command unanswered")
  ok(handshake(p), "a new handshake works")
  ok(cmd(p, 0x10, "", true))
end)

test("fault flaky: the first handshake is ignored", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "flaky" }
  local p <close> = open(sim)
  ok(not handshake(p, 0.3))
  sys.sleep(0.1)
  ok(handshake(p))
end)

test("--realtime paces bytes and flash operations", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--realtime", "--host-baud", "115200",
    "--chip-erase-s", "0.4" }
  local p <close> = open(sim, 115200)
  ok(handshake(p, 1))
  local t0 = sys.now()
  local good, d = cmd(p, 0x32, two(0, 2048), true, 3)
  ok(good); eq(#d, 2048)
  local dt = sys.now() - t0
  ok(dt >= 0.17, ("2 KiB at 115200 took %.3f s"):format(dt))
  t0 = sys.now()
  ok(cmd(p, 0x3C, "", false, 3))
  ok(sys.now() - t0 >= 0.35, "chip erase time")
end)

test("bad options exit 2 with a message", function()
  local out = helpers.tmpdir() .. "/err"
  local pid = sys.spawn({ helpers.build .. "/ncpsim", "--raw", "127.0.0.1:0", "--fault", "bogus:1" },
    { stderr = out })
  eq(sys.wait(pid, 5), 2)
  match(helpers.readfile(out), "bad fault spec")
end)

test("fault pd: PD keep-alives during a slow erase", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "pd:100", "--fault", "stall:3C:0.45" }
  local p <close> = open(sim)
  ok(handshake(p))
  p:write(frame(0x3C))
  local got = p:read(10, 2)
  eq(got, "PDPDPDPDOK")
end)

test("fault powerloss:N:dead keeps running but never answers", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0", "--fault", "powerloss:10:dead" }
  local p <close> = open(sim)
  ok(handshake(p))
  p:write(frame(0x31, u32(0) .. string.rep("\0", 20)))
  eq(p:read(2, 0.3), "")
  eq(sys.wait(sim.pid, 0), nil, "still running")
  ok(not handshake(p, 0.3))
  sim:stop()
  eq(sim:flash():sub(1, 12), string.rep("\0", 10) .. "\xFF\xFF")
end)

test("--wiring swaps and inverts the lines; --power-on flash; --profile", function()
  local dir = helpers.tmpdir()
  local st = dir .. "/st"
  sys.mkdirs(st)
  helpers.writefile(st .. "/flash.bin", "BFNP" .. string.rep("\xFF", 1024 * 1024 - 4))
  helpers.writefile(dir .. "/small.profile", table.concat({
    "# a 1 MiB variant whose app talks at 115200",
    "flash-size = 1M", "app-baud=115200", "jedec = c8 60 14 00",
    "wiring = dtr=en,rts=boot,invert=boot", "power-on = flash", "" }, "\n"))
  local sim <close> = helpers.ncpsim{ "--profile", dir .. "/small.profile", "--state", st }
  local p <close> = open(sim, 115200)
  ok(p:expect("tick", 1.5), "power-on into the application")
  -- BOOT is RTS, inverted: asserted = high = download; CHIP_EN is DTR
  ok(p:set_rts(true))
  ok(p:set_dtr(true)); sys.sleep(0.02); ok(p:set_dtr(false))
  sys.sleep(0.05)
  p:flush_input()
  ok(handshake(p), "download mode through the swapped, inverted wiring")
  local _, d = cmd(p, 0x36, "", true)
  eq(d, "\xc8\x60\x14\x00")
  local code = select(2, cmd(p, 0x32, two(0x100000, 4), true))
  eq(code, 0x0005, "1 MiB flash")
end)

test("fault strap-hold: BOOT counts only when raised before CHIP_EN falls and held long enough", function()
  local sim <close> = helpers.ncpsim{ "--fault", "strap-hold:200" }
  local p <close> = open(sim, 2000000)
  ok(handshake(p), "power-on download")
  ok(cmd(p, 0x30, two(0, 0xFFF)))
  ok(cmd(p, 0x31, u32(0) .. "BFNP"))
  -- BOOT raised only after CHIP_EN fell: the flash boots
  ok(p:set_dtr(true)); ok(p:set_rts(true)); ok(p:set_dtr(false))
  sys.sleep(0.3)
  ok(p:set_rts(false))
  ok(p:expect("ST67W611M1", 1.0), "the application talks")
  -- BOOT high first, CHIP_EN low for 250 ms: the ROM
  ok(p:set_rts(true))
  sys.sleep(0.25)
  ok(p:set_rts(false))
  sys.sleep(0.05)
  p:flush_input()
  ok(handshake(p), "download mode after a proper strap sequence")
end)
