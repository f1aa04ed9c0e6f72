-- signing: real ECDSA-P256 keys and signed synthetic boot images for the tests, made with the
-- openssl command-line tool (Debian package openssl). ncpflash itself never signs.
--
--   signing.available()              -> true when the openssl tool is there
--   signing.keypair()                -> {priv = PEM text, pub = PEM text, xy = 64 bytes X||Y}
--                                      (kept in memory: usable in every test of a file)
--   signing.sign(key, data)          -> 64-byte r||s over SHA-256(data) (what Bouffalo's image
--                                      tool signs: the image bytes whose SHA-256 the header holds)
--   signing.image(chip, key, opts)   -> header.build(chip, opts) signed with key
local sys = require "ncpflash.core.sys"
local crypto = require "ncpflash.core.crypto"
local header = require "ncpflash.header"
local helpers = require "helpers"

local M = {}

local seq = 0

local function run(argv, dir)
  seq = seq + 1
  local out, err = ("%s/openssl-%d.out"):format(dir, seq), ("%s/openssl-%d.err"):format(dir, seq)
  local pid = assert(sys.spawn(argv, { stdout = out, stderr = err, stdin = "null" }))
  local code = sys.wait(pid, 30)
  if code ~= 0 then
    local f = io.open(err, "rb")
    local text = f and f:read("a") or ""
    if f then f:close() end
    error("openssl " .. table.concat(argv, " ", 2) .. " failed: " .. text, 2)
  end
end

function M.available()
  -- inside ncpflash.exe (make test-win) /usr/bin/openssl is a Linux program wine cannot start
  return sys.platform ~= "windows" and sys.stat("/usr/bin/openssl") ~= nil
end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

function M.keypair()
  local dir = helpers.tmpdir()
  local priv, pub = dir .. "/key.pem", dir .. "/key.pub.pem"
  run({ "/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", priv }, dir)
  run({ "/usr/bin/openssl", "ec", "-in", priv, "-pubout", "-out", pub }, dir)
  local k = { priv = readfile(priv), pub = readfile(pub) }
  k.xy = crypto.pem_public_xy(k.pub)
  return k
end

-- DER ECDSA-Sig-Value -> r||s (32 bytes each)
local function der_to_rs(der)
  local pos = 3
  if der:byte(2) & 0x80 ~= 0 then pos = pos + (der:byte(2) & 0x7F) end
  local function int()
    assert(der:byte(pos) == 0x02, "DER: INTEGER expected")
    local n = der:byte(pos + 1)
    local v = der:sub(pos + 2, pos + 1 + n)
    pos = pos + 2 + n
    v = v:gsub("^%z+", "")
    return string.rep("\0", 32 - #v) .. v
  end
  return int() .. int()
end

function M.sign(key, data)
  local dir = helpers.tmpdir()
  local kf, f = dir .. "/key.pem", dir .. "/data.bin"
  helpers.writefile(kf, key.priv)
  helpers.writefile(f, data)
  local sig = f .. ".sig"
  run({ "/usr/bin/openssl", "dgst", "-sha256", "-sign", kf, "-out", sig, f }, dir)
  return der_to_rs(readfile(sig))
end

function M.image(chip, key, opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.sign, o.public_key = 1, key.xy
  o.signature = M.sign(key, opts.image)
  return header.build(chip, o)
end

return M
