-- tests/fuzz/seeds.lua - writes the seed corpus tests/fuzz/corpus/TARGET/*
--   build/ncpflash run tests/fuzz/seeds.lua
-- Input byte 0 of the Lua targets is the mode byte (fuzz_lua.c): 1 = as is,
-- 0 = let the driver repair magic/CRCs.  The rfc2217 seeds start with an odd
-- byte (the harness then prepends a good negotiation).
local sys = require "ncpflash.core.sys"
local partition = require "ncpflash.partition"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"
local codec = require "ncpflash.core.codec"
local efuse = require "ncpflash.efuse"

local ROOT = "tests/fuzz/corpus"
local function put(target, name, data)
  assert(sys.mkdirs(ROOT .. "/" .. target))
  local f = assert(io.open(ROOT .. "/" .. target .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

put("isp", "ok", "OK")
put("isp", "data", "OK\x04\x00abcd")
put("isp", "dup_ok_data", "OKOK\x02\x00xy")
put("isp", "fl", "FL\x0c\x00")
put("isp", "pd_then_ok", "PDOK")
put("isp", "noise", "\x55\x00OK")

local IAC, SB, SE = "\xff", "\xfa", "\xf0"
put("rfc2217", "data", "\x01hello world")
put("rfc2217", "escaped", "\x01a\xff\xffb")
put("rfc2217", "notify", "\x01x" .. IAC .. SB .. "\x2c\x6b\x33" .. IAC .. SE .. "y"
  .. IAC .. SB .. "\x2c\x6a\x60" .. IAC .. SE)
put("rfc2217", "options", "\x01" .. IAC .. "\xfb\x01" .. IAC .. "\xfd\x05" .. IAC .. "\xfe\x2c" .. IAC .. "\xfc\x03z")
put("rfc2217", "acks", "\x01" .. IAC .. SB .. "\x2c\x69\x08" .. IAC .. SE .. IAC .. SB .. "\x2c\x69\x0b" .. IAC .. SE
  .. IAC .. SB .. "\x2c\x70\x01" .. IAC .. SE .. IAC .. SB .. "\x2c\x64" .. IAC .. SE)
put("rfc2217", "suspend", "\x01" .. IAC .. SB .. "\x2c\x6c" .. IAC .. SE .. "q" .. IAC .. SB .. "\x2c\x6d" .. IAC .. SE)
put("rfc2217", "no_comport", "\x00" .. IAC .. "\xfe\x2c")

local pt = partition.build{
  { name = "Boot2", type = 16, address0 = 0, size0 = 0xE000 },
  { name = "FW", type = 0, address0 = 0x10000, address1 = 0x110000, size0 = 0x100000, size1 = 0x100000,
    active_index = 1 },
  { name = "mfg", type = 10, address0 = 0x210000, size0 = 0x100 },
}
put("bfpt", "valid", "\1" .. pt)
put("bfpt", "repair", "\0" .. pt)
put("bfpt", "short", "\1BFPT")

local img = ("firmware"):rep(40)
put("bfnp", "valid", "\1" .. header.build(bl616, { image = img, offset = 0x1000 }))
put("bfnp", "signed", "\1" .. header.build(bl616, { image = img, offset = 0x1000, sign = 1 }))
put("bfnp", "header_only", "\0" .. header.build(bl616, { image = "", offset = 0x100 }):sub(1, 256))
put("bfnp", "ignore", "\1" .. header.build(bl616, { image = img, crc_ignore = 1, hash_ignore = 1 }))

local map = efuse.load_map("bl616", "st67w611m1")
local raw = ("\0"):rep(20) .. "\x11\x22\x33\x44\x55\x66" .. ("\0"):rep(98) .. "\x00\x00\x01\x00"
put("efuse", "raw", "\1" .. raw)
put("efuse", "saved", "\1" .. efuse.encode_saved(raw, map))
put("efuse", "repair", "\0" .. raw)
put("efuse", "full", "\1" .. ("\xA5"):rep(512))

local payload = ("ota payload "):rep(30)
local head = "QCC74X_OTAVer1.0" .. "RAW " .. string.pack("<I4", #payload) .. "\1\2\3\4\5\6\7\8"
  .. ("st67w611m1"):sub(1, 16) .. ("\0"):rep(6) .. "2.0.89" .. ("\0"):rep(10) .. codec.sha256(payload)
head = head .. ("\xff"):rep(512 - #head)
put("ota", "valid", "\1" .. head .. payload)
put("ota", "header", "\1" .. head)
put("ota", "repair", "\0" .. head .. "xz")

put("ini", "flat", "\1[cfg]\nerase = 1\nskip_mode = 0x0, 0x0\n\n[FW]\nfiledir = ./fw.bin\naddress = 0x10000\n")
put("ini", "partition", "\1[cfg]\nerase = 2\n\n[partition]\nfiledir = pt.bin\naddress = 0xE000\n\n"
  .. "[FW]\nfiledir = fw.bin\naddress = @partition\n\n[Boot2]\nfiledir = boot2_vxxx.bin\naddress = 0x0\n")
put("ini", "wildcard", "\1; comment\n[cfg]\nerase=0\n[a]\nfiledir = a_v*.bin\naddress = 0x1000\n")
put("ini", "chipname", "\1\xEF\xBB\xBF[cfg]\r\nboot2_isp_mode = 1\r\n[mfg]\r\nfiledir = \"$(CHIPNAME)/../fw.bin\"\r\n"
  .. "address = 210000\r\n")
print("seeds written to " .. ROOT)
