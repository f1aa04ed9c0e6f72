-- ncpflash.core.codec: crc32, sha256, XZ (protocol.md §4.5), hex, AES-128-CBC, ECDH P-256.
local codec = require "ncpflash.core.codec"
local sys = require "ncpflash.core.sys"

local hex, unhex = codec.hex, codec.unhex

local function pseudo_random(n, seed)
  local t, x = {}, seed or 1
  for i = 1, n do
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    t[i] = string.char((x >> 16) & 0xFF)
  end
  return table.concat(t)
end

local function compressible(n)
  local words = { "flash ", "erase ", "write ", "0x3F ", "BL616 ", "ROM " }
  local t, len, i = {}, 0, 0
  while len < n do
    i = i + 1
    local w = words[(i * 7 + i // 13) % #words + 1]
    t[#t + 1] = w
    len = len + #w
  end
  return table.concat(t):sub(1, n)
end

test("crc32 known values (zlib)", function()
  eq(codec.crc32("123456789"), 0xCBF43926)
  eq(codec.crc32(""), 0)
  eq(codec.crc32("a"), 0xE8B7BE43)
  eq(codec.crc32("The quick brown fox jumps over the lazy dog"), 0x414FA339)
end)

test("crc32 continues from a previous value", function()
  eq(codec.crc32("6789", codec.crc32("12345")), 0xCBF43926)
  raises(function() codec.crc32("x", -1) end)
end)

test("sha256 known vectors", function()
  eq(hex(codec.sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  eq(hex(codec.sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  eq(hex(codec.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
  eq(hex(codec.sha256(string.rep("a", 1000000))),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
end)

test("sha256 streaming equals one-shot", function()
  local data = pseudo_random(100003, 7)
  local h = codec.sha256_new()
  local pos = 1
  local sizes = { 1, 63, 64, 65, 4096, 7 }
  local k = 0
  while pos <= #data do
    k = k + 1
    local n = sizes[k % #sizes + 1]
    eq(h:update(data:sub(pos, pos + n - 1)), h, "update returns the hash")
    pos = pos + n
  end
  eq(h:final(), codec.sha256(data))
  raises(function() h:update("more") end, "finalised")
  raises(function() h:final() end, "finalised")
  h:close(); h:close()
end)

test("sha256_new empty, close and <close>", function()
  do
    local h <close> = codec.sha256_new()
    eq(hex(h:final()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  end
  local h = codec.sha256_new()
  h:close()
  raises(function() h:update("x") end, "closed")
end)

test("hex and unhex", function()
  eq(hex("\x00\x01\xab\xff"), "0001abff")
  eq(hex(""), "")
  eq(unhex("0001ABff"), "\x00\x01\xab\xff")
  local s = pseudo_random(300, 3)
  eq(unhex(hex(s)), s)
  raises(function() unhex("abc") end, "input")
  raises(function() unhex("zz") end, "input")
end)

-- XZ stream header (xz file format 1.0.4): magic, stream flags (check id), CRC32, then the
-- first block header: size, flags, filter id 0x21 (LZMA2), props size 1, dict-size byte.
local function xz_header(s)
  return {
    magic = s:sub(1, 6),
    check = s:byte(8),
    filter = s:byte(15),
    props_size = s:byte(16),
    dict_byte = s:byte(17),
    footer_magic = s:sub(-2),
    footer_check = s:byte(#s - 2),
  }
end

test("xz stream has LZMA2, 32 KiB dictionary and CRC32 check (protocol.md §4.5)", function()
  local data = compressible(100000)
  local e = codec.xz_encoder()
  local s = e:feed(data) .. e:finish()
  local h = xz_header(s)
  eq(h.magic, "\xfd7zXZ\0", "stream magic")
  eq(h.check, 0x01, "stream flags: CRC32")
  eq(h.filter, 0x21, "LZMA2 filter id")
  eq(h.props_size, 1)
  eq(h.dict_byte, 0x06, "dict byte 6 = 2 << 14 = 32768")
  eq(h.footer_magic, "YZ")
  eq(h.footer_check, 0x01)
  eq(codec.xz_decode(s), data)
  ok(#s < #data / 4, "compressible data compresses")
end)

test("xz_encoder options: dict, check, preset", function()
  local data = compressible(20000)
  local s = codec.xz(data, { dict = 65536, check = "crc64", preset = 1 })
  local h = xz_header(s)
  eq(h.dict_byte, 0x08, "dict 64 KiB")
  eq(h.check, 0x04, "CRC64")
  eq(codec.xz_decode(s), data)
  eq(xz_header(codec.xz(data, { check = "none" })).check, 0x00)
  eq(xz_header(codec.xz(data, { check = "sha256" })).check, 0x0A)
  eq(xz_header(codec.xz(data)).dict_byte, 0x06, "one-shot default dict")
  raises(function() codec.xz_encoder { dict = 100 } end, "dict")
  raises(function() codec.xz_encoder { preset = 10 } end, "preset")
  raises(function() codec.xz_encoder { check = "md5" } end, "check")
end)

test("xz round trip: random, compressible, empty, 1 byte", function()
  for _, data in ipairs { pseudo_random(70000, 11), compressible(300000), "", "x" } do
    local e = codec.xz_encoder { dict = 32768 }
    local s = e:feed(data) .. e:finish()
    eq(codec.xz_decode(s), data, "round trip of " .. #data .. " bytes")
  end
end)

test("xz streaming in pieces equals one-shot", function()
  local data = compressible(200000) .. pseudo_random(50000, 5)
  local one = codec.xz(data)
  local e = codec.xz_encoder()
  local parts, pos, produced_early = {}, 1, 0
  while pos <= #data do
    local piece = data:sub(pos, pos + 2047)
    pos = pos + #piece
    local out = e:feed(piece)
    produced_early = produced_early + #out
    parts[#parts + 1] = out
  end
  parts[#parts + 1] = e:finish()
  local s = table.concat(parts)
  eq(codec.xz_decode(s), data)
  eq(s, one, "same bytes as the one-shot encoder")
  ok(produced_early > 0, "feed yields compressed bytes before finish")
  local tin, tout = e:stats()
  eq(tin, #data)
  eq(tout, #s)
end)

test("xz encoder: finish once, close idempotent, <close>", function()
  local e = codec.xz_encoder()
  local s = e:feed("")
  eq(type(s), "string", "feed of nothing may already yield the stream header")
  s = s .. e:finish()
  eq(codec.xz_decode(s), "")
  raises(function() e:feed("x") end, "finished")
  raises(function() e:finish() end, "finished")
  e:close(); e:close()
  local e2 = codec.xz_encoder()
  e2:feed("abc")
  e2:close()
  raises(function() e2:feed("x") end, "closed")
  do
    local e3 <close> = codec.xz_encoder()
    e3:feed("abc")
  end
end)

test("xz_decode rejects corrupt and truncated streams", function()
  local s = codec.xz(compressible(50000))
  raises(function() codec.xz_decode("not xz at all") end, "input")
  raises(function() codec.xz_decode(s:sub(1, #s - 10)) end, "input")
  local bad = s:sub(1, 40) .. string.char(s:byte(41) ~ 0xFF) .. s:sub(42)
  raises(function() codec.xz_decode(bad) end, "input")
end)

test("xz stream decodes with the xz tool", function()
  local xz = nil
  for _, p in ipairs { "/usr/bin/xz", "/bin/xz", "/usr/local/bin/xz" } do
    if sys.stat(p) then xz = p; break end
  end
  if not xz then skip("no xz tool") end
  local data = compressible(123456)
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/a.xz", codec.xz(data))
  local pid = sys.spawn({ xz, "-dc", dir .. "/a.xz" }, { stdout = dir .. "/a", stderr = dir .. "/err" })
  eq(sys.wait(pid, 20), 0, "xz -dc exit status")
  eq(helpers.readfile(dir .. "/a"), data)
end)
