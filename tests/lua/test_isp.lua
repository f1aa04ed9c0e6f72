-- ncpflash.core.isp: opcodes, frames, reply parsing, and the command path against
-- build/tests/ncppeer (a raw TCP peer that sends scripted bytes and logs what it gets).
local isp = require "ncpflash.core.isp"
local sys = require "ncpflash.core.sys"

local function unhex(s) return (s:gsub("%s", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

---------------------------------------------------------------------------------------------------
-- pure functions

test("opcode tables: names both ways", function()
  eq(isp.op.GET_BOOT_INFO, 0x10)
  eq(isp.op.FLASH_ERASE, 0x30)
  eq(isp.op.FLASH_DECOMPRESS_WRITE, 0x3F)
  eq(isp.op.FLASH_XIP_READ_SHA, 0x3E)
  eq(isp.op.CLK_SET, 0x22)
  eq(isp.op.SET_TIMEOUT, 0x23)
  eq(isp.op.OPT_FINISH, 0x23)
  eq(isp.op.ECDH_GET_PK, 0x90)
  eq(isp.op_name[0x10], "get_boot_info")
  eq(isp.op_name[0x30], "flash_erase")
  eq(isp.op_name[0x23], "set_timeout")
  eq(isp.op_name[0x99], nil)
  for name, code in pairs(isp.op) do
    ok(isp.op_name[code], "op_name has " .. name)
  end
  ok(isp.reply_data[0x10] and isp.reply_data[0x36] and not isp.reply_data[0x30])
end)

test("FL code names (protocol.md §7.1)", function()
  eq(isp.fl_name[0x0003], "FLASH_ERASE_ERROR")
  eq(isp.fl_name[0x0103], "CMD_CRC_ERROR")
  eq(isp.fl_name[0x000C], "FLASH_WRITE_XZ_ERROR")
  eq(isp.fl_name[0xFFFF], "FAIL")
  eq(isp.fl.FLASH_WRITE_XZ_ERROR, 0x000C)
  eq(isp.fl_name[0x4242], nil)
  ok(isp.fl_hint(0x0A0A):find("protected"))
end)

test("frame: worked examples of protocol.md §5.1 and Appendix A", function()
  eq(hex(isp.frame(isp.op.CLK_SET, string.pack("<I4I4", 1, 2000000), true)), "222b08000100000080841e00")
  eq(hex(isp.frame(isp.op.FLASH_SET_PARA, unhex("08 41 01 01"), true)), "3b4f040008410101")
  eq(hex(isp.frame(0x30, string.pack("<I4I4", 0x10000, 0x10000 + 1489024 - 1))), "30570800000001007fb81700")
  eq(hex(isp.frame("flash_xip_read_sha", string.pack("<I4I4", 0x10000, 1489024))), "3e5708000000010080b81600")
  eq(hex(isp.frame(isp.op.EFUSE_READ, string.pack("<I4I4", 0, 512), true)), "410a08000000000000020000")
  eq(hex(isp.frame(isp.op.SET_TIMEOUT, string.pack("<I4", 10000), false)), "2300040010270000")
  eq(hex(isp.frame(isp.op.GET_BOOT_INFO)), "10000000")
  eq(hex(isp.frame("FLASH_CHIP_ERASE", "")), "3c000000")
  eq(isp.checksum(unhex("08 41 01 01")), 0x4F)
end)

test("frame: argument errors", function()
  raises(function() isp.frame(256, "") end, "0..255")
  raises(function() isp.frame("NO_SUCH_OP", "") end, "unknown opcode")
  raises(function() isp.frame(0x31, string.rep("x", 65536)) end, "65535")
  eq(#isp.frame(0x31, string.rep("x", 65535)), 65539)
end)

test("parse: every reply form", function()
  local r = isp.parse("OK", false)
  eq(r.status, "ok"); eq(r.consumed, 2)
  r = isp.parse("OK\x04\x00\xc8\x60\x16\x00", true)
  eq(r.status, "data"); eq(r.data, "\xc8\x60\x16\x00"); eq(r.consumed, 8)
  r = isp.parse("OKOK\x02\x00hi", true)
  eq(r.status, "data"); eq(r.data, "hi"); eq(r.ok_pairs, 2)
  r = isp.parse("FL\x03\x00", false)
  eq(r.status, "fl"); eq(r.fl, 3); eq(r.fl_name, "FLASH_ERASE_ERROR")
  r = isp.parse("FL\x03\x01", true)
  eq(r.fl, 0x0103)
  eq(isp.parse("PD", false).status, "pd")
  r = isp.parse("OK\x10\x00abc", true)
  eq(r.status, "need"); eq(r.need, 13)
  eq(isp.parse("", true).need, 2)
  r = isp.parse("\x55\x55OK", false)
  eq(r.status, "malformed"); eq(r.bad_offset, 0)
end)

test("parse: random garbage never breaks it", function()
  local x = 99
  for _ = 1, 3000 do
    local t = {}
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    for i = 1, x % 40 do
      x = (x * 1103515245 + 12345) & 0x7FFFFFFF
      t[i] = ("OKFLPD\0\1\255"):sub(x % 9 + 1, x % 9 + 1)
    end
    local s = table.concat(t)
    local r = isp.parse(s, x % 2 == 0)
    ok(r.status, "status")
    if r.consumed then ok(r.consumed <= #s, "consumed inside input") end
  end
end)

---------------------------------------------------------------------------------------------------
-- the command path against ncppeer

local port = require "ncpflash.core.port"
local PEER = helpers.ncppeer

-- Starts ncppeer --raw sending `reply` (bytes) on connect; returns the handle with .url, .log.
local function peer(reply)
  local args = { "--raw", "0" }
  if reply and #reply > 0 then
    args[#args + 1] = "--send"; args[#args + 1] = hex(reply)
  end
  return helpers.peer(args)
end

-- Everything the peer received (concatenated "data HEX" lines), waiting up to 3 s for `n` bytes.
local function received(p, n)
  local deadline = sys.now() + 3
  local got
  repeat
    local t = {}
    for h in (helpers.readfile(p.log) or ""):gmatch("data (%x+)") do t[#t + 1] = h end
    got = unhex(table.concat(t))
    if #got >= (n or 0) then break end
    sys.sleep(0.02)
  until sys.now() > deadline
  return got
end

-- Runs isp.command against a peer that answers `reply`; returns pcall results and the peer.
local function run(reply, cmd, payload, opts)
  local pr <close> = peer(reply)
  local p <close> = port.open(pr.url)
  sys.sleep(0.05) -- let the scripted reply arrive
  local res = table.pack(pcall(isp.command, p, cmd, payload, opts))
  local sent = received(pr, 4 + #(payload or ""))
  return res, sent
end

skip_if(sys.stat(PEER) == nil, "build/tests/ncppeer not built")

test("command: plain OK, and the frame on the wire carries the checksum", function()
  local res, sent = run("OK", isp.op.FLASH_SET_PARA, unhex("08 41 01 01"))
  ok(res[1], tostring(res[2]))
  eq(res[2], true)
  eq(hex(sent), "3b4f040008410101")
end)

test("command: checksum=false sends 0", function()
  local res, sent = run("OK", isp.op.SET_TIMEOUT, string.pack("<I4", 10000), { checksum = false })
  ok(res[1], tostring(res[2]))
  eq(hex(sent), "2300040010270000")
end)

test("command: OK + data", function()
  local res = run("OK\x04\x00\xc8\x60\x16\x00", isp.op.FLASH_READ_JEDEC_ID, "", { data = true })
  ok(res[1], tostring(res[2]))
  eq(res[2], "\xc8\x60\x16\x00")
end)

test("command: a long data reply (beyond the small reply buffer)", function()
  local data = {}
  for i = 1, 1000 do data[i] = string.char((i * 31) % 256) end
  data = table.concat(data)
  local res = run("OKOK" .. string.pack("<I2", #data) .. data, isp.op.FLASH_READ,
    string.pack("<I4I4", 0, #data), { data = true, timeout = 2 })
  ok(res[1], tostring(res[2]))
  eq(res[2], data)
end)

test("command: duplicated OK before the length is tolerated", function()
  local res = run("OKOKOK\x02\x00\x12\x34", "efuse_read", string.pack("<I4I4", 0, 2), { data = true })
  ok(res[1], tostring(res[2]))
  eq(res[2], "\x12\x34")
end)

test("command: FL raises a device error with fl, fl_name, op", function()
  local res = run("FL\x03\x00", isp.op.FLASH_ERASE, string.pack("<I4I4", 0, 4095))
  eq(res[1], false)
  local e = res[2]
  eq(e.code, "device")
  eq(e.fl, 3)
  eq(e.fl_name, "FLASH_ERASE_ERROR")
  eq(e.op, "flash_erase")
  eq(e.message, "flash_erase (0x30): device answered FL 0x0003 FLASH_ERASE_ERROR")
end)

test("command: FL with an unknown code and a hint", function()
  local res = run("FL\x0a\x0a", isp.op.GET_BOOT_INFO, "", { data = true })
  local e = res[2]
  eq(e.code, "device"); eq(e.fl, 0x0A0A)
  match(e.message, "FL 0x0A0A %(unknown code%) %(chip is protected or closed%)")
end)

test("command: no reply is a timeout with op and got", function()
  local t0 = sys.now()
  local res = run("", isp.op.GET_BOOT_INFO, "", { timeout = 0.1, data = true })
  local dt = sys.now() - t0
  local e = res[2]
  eq(e.code, "timeout")
  eq(e.op, "get_boot_info")
  eq(e.got, "")
  eq(e.message, "get_boot_info (0x10): no reply within 0.10 s (received 0 bytes)")
  ok(dt < 2, "returned promptly")
end)

test("command: timeout = 0 still takes a reply that is already there", function()
  local res = run("OK", isp.op.RESET, "", { timeout = 0 })
  ok(res[1], tostring(res[2]))
  res = run("OK\x02\x00ab", "memory_read", string.pack("<I4I4", 0, 2), { timeout = 0, data = true })
  ok(res[1], tostring(res[2]))
  eq(res[2], "ab")
end)

test("command: a truncated data reply is a timeout showing the bytes", function()
  local res = run("OK\x04\x00\xc8\x60", isp.op.FLASH_READ_JEDEC_ID, "", { timeout = 0.2, data = true })
  local e = res[2]
  eq(e.code, "timeout")
  eq(e.got, "OK\x04\x00\xc8\x60")
  match(e.message, "incomplete reply within 0%.20 s %(received 6 bytes: 4F 4B 04 00 C8 60%)")
end)

test("command: garbage is a protocol error", function()
  local res = run("\x55\x55OK", isp.op.GET_BOOT_INFO, "", { timeout = 0.5, data = true })
  local e = res[2]
  eq(e.code, "protocol")
  eq(e.op, "get_boot_info")
  match(e.message, "malformed reply")
  match(e.message, "55 55")
end)

test("command: PD is accepted only with pending=true", function()
  local res = run("PDPDOK", isp.op.FLASH_CHIP_ERASE, "", { pending = true, timeout = 1 })
  ok(res[1], tostring(res[2]))
  eq(res[2], true)
  res = run("PDOK", isp.op.FLASH_CHIP_ERASE, "", { timeout = 1 })
  eq(res[2].code, "protocol")
  match(res[2].message, "PD")
  res = run("PDPD", isp.op.FLASH_CHIP_ERASE, "", { pending = true, timeout = 0.2 })
  eq(res[2].code, "timeout")
  match(res[2].message, "PD")
end)

test("command: the reply of one command does not eat the next one's", function()
  local pr <close> = peer("OKOK\x02\x00ab")
  local p <close> = port.open(pr.url)
  sys.sleep(0.05)
  eq(isp.command(p, isp.op.RESET, "", { timeout = 1 }), true)
  eq(isp.command(p, isp.op.MEMORY_READ, string.pack("<I4I4", 0, 2), { timeout = 1, data = true }), "ab")
end)

test("command: argument errors", function()
  local pr <close> = peer("")
  local p <close> = port.open(pr.url)
  raises(function() isp.command(p, 0x100, "") end, "0..255")
  raises(function() isp.command(p, 0x10, "", { timeout = -1 }) end, "opts%.timeout must be a number")
  raises(function() isp.command({}, 0x10, "") end)
end)

test("sync writes count x 0x55", function()
  local pr <close> = peer("")
  local p <close> = port.open(pr.url)
  isp.sync(p, 300)
  isp.sync(p, 0)
  local got = received(pr, 300)
  eq(got, string.rep("\x55", 300))
end)
