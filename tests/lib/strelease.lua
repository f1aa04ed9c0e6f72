-- strelease: synthetic X-CUBE-ST67W61 release folders (no vendor files), in the layouts of
-- st67w611m1.md §1: "1.3" (one template ini per profile naming ./st67w611m_<profile>_vxxx.bin,
-- several versions of each image with .bin.ota and .xz.ota beside them), "1.2" (the main ini
-- naming the newest firmware plus *_v<oldest>.ini copies) and "1.1" (one ini naming one file).
--
--   local R = strelease.build(dir, {layout = "1.3", versions = {...}, key = PEM text | false,
--                                   key_at = "qconn" | "ncp_info", efuse = true, hosts = true})
--   R.root (ST67W6X_Scripts), R.bin (Binaries), R.nb (NCP_Binaries), R.versions
--   R.images[profile][version] = bytes, R.boot2, R.partition, R.littlefs, R.efuse_data (512 B)
--   R.expected(profile, version, size) -> the flash a chip-erased module holds afterwards
--   R.hostfile(board, name) -> path of a host file in <BOARD>_Binaries
-- Images are boot headers signed with one synthetic P-256 key (R.pk, tests/lib/signing.lua), and
-- efusedata.bin names that key's hash (the bits of ST's file, st67w611m1.md §2.6), so the
-- secure-boot guard (key hash, image hash and signature) accepts them.
local codec = require "ncpflash.core.codec"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"
local efuse = require "ncpflash.efuse"
local synth = require "synth"
local E = require "efusedata"
local helpers = require "helpers"

local M = {}

-- a real P-256 key (the secure-boot guard verifies every image's signature); without the
-- openssl tool a random "key" (the eFuse steps' guard then refuses)
local signing = require "signing"
M.KEY = signing.available() and signing.keypair() or nil
M.PK = M.KEY and M.KEY.xy or helpers.random_bytes(64, 0x57A61E)

local function signed(opts)
  if M.KEY then return signing.image(bl616, M.KEY, opts) end
  opts.sign, opts.public_key = 1, M.PK
  return header.build(bl616, opts)
end
M.PROFILES = { "mission_t01", "mission_t02", "mfg" }

local function mkdir(p) assert(require("ncpflash.core.sys").mkdirs(p)) end

local function ota(payload, kind, version)
  local body = payload
  if kind == "XZ" then
    local e = codec.xz_encoder{}
    body = e:feed(payload) .. e:finish()
  end
  local h = "QCC74X_OTAVer1.0" .. (kind == "XZ" and "XZ  " or "RAW ") .. string.pack("<I4", #body)
    .. "\1\2\3\4\5\6\7\8" .. ("QCC_Module_v1.1" .. string.rep("\0", 16)):sub(1, 16)
    .. (version .. string.rep("\0", 16)):sub(1, 16) .. codec.sha256(body)
  return h .. string.rep("\xFF", 512 - #h) .. body
end

local function ini_text(profile, fw_name, erase)
  local t = { "[cfg]", ("erase = %d"):format(erase), "skip_mode = 0x0, 0x0", "boot2_isp_mode = 0", "",
    "[boot2]", "filedir = ./st67w611m_boot2_v8.1.9.bin", "address = 0x000000", "",
    "[partition]", "filedir = ./partition.bin", "address = 0xE000", "" }
  if profile ~= "mfg" then
    for _, l in ipairs({ "[littlefs]", "filedir = ./../../LittleFS/littlefs/littlefs.bin", "address = 0x378000",
      "" }) do t[#t + 1] = l end
  end
  for _, l in ipairs({ "[FW]", "filedir = ./" .. fw_name, "address = @partition", "" }) do t[#t + 1] = l end
  return table.concat(t, "\r\n")
end

M.HOST_FILES = {
  ["NUCLEO-U575ZI-Q"] = { "Bootloader.bin", "UART_bypass.bin", "ST67W6X_CLI.bin", "ST67W6X_CLI_LWIP.bin" },
  ["NUCLEO-H563ZI"] = { "Bootloader.bin", "UART_bypass.bin", "ST67W6X_CLI.bin", "ST67W6X_CLI_LWIP.bin" },
  ["NUCLEO-H7S3L8"] = { "Bootloader.bin", "UART_bypass.bin", "ST67W6X_CLI_Boot.bin", "ST67W6X_CLI_Appli.bin",
    "ST67W6X_CLI_LWIP_Boot.bin", "ST67W6X_CLI_LWIP_Appli.bin" },
  ["NUCLEO-N657X0-Q"] = { "Bootloader.bin", "UART_bypass.bin", "ST67W6X_CLI_FSBL.bin", "ST67W6X_CLI_LWIP_FSBL.bin" },
}

function M.build(dir, opts)
  opts = opts or {}
  local layout = opts.layout or "1.3"
  local versions = opts.versions or { "2.0.89", "2.0.97", "2.0.106" }
  local R = { root = dir .. "/ST67W6X_Scripts", versions = versions, images = {}, pk = M.PK }
  R.bin = R.root .. "/Binaries"
  R.nb = R.bin .. "/NCP_Binaries"
  mkdir(R.nb)
  mkdir(R.root .. "/LittleFS/littlefs")
  R.boot2 = signed({ image = synth.compressible(9000, 3), offset = 0x2000 })
  R.partition = synth.partition_table()
  R.littlefs = ("littlefs"):rep(64) .. string.rep("\255", 8192 - 512)
  helpers.writefile(R.nb .. "/st67w611m_boot2_v8.1.9.bin", R.boot2)
  helpers.writefile(R.nb .. "/partition.bin", R.partition)
  helpers.writefile(R.root .. "/LittleFS/littlefs/littlefs.bin", R.littlefs)
  for pi, profile in ipairs(M.PROFILES) do
    R.images[profile] = {}
    for vi, v in ipairs(versions) do
      -- each version a different image (and size), so a test sees which one landed
      local img = signed({ image = synth.compressible(6000 + 1000 * vi + 100 * pi, 10 * pi + vi), offset = 0x1000 })
      R.images[profile][v] = img
      local base = R.nb .. "/st67w611m_" .. profile .. "_v" .. v
      helpers.writefile(base .. ".bin", img)
      helpers.writefile(base .. ".bin.ota", ota(img, "RAW", v))
      helpers.writefile(base .. ".xz.ota", ota(img, "XZ", v))
    end
    local erase = profile == "mfg" and 1 or 2
    local name = profile .. "_flash_prog_cfg"
    local newest = versions[#versions]
    if layout == "1.3" then
      helpers.writefile(R.nb .. "/" .. name .. ".ini", ini_text(profile, "st67w611m_" .. profile .. "_vxxx.bin", erase))
    elseif layout == "1.2" then
      helpers.writefile(R.nb .. "/" .. name .. ".ini", ini_text(profile, "st67w611m_" .. profile .. "_v" .. newest
        .. ".bin", erase))
      helpers.writefile(R.nb .. "/" .. name .. "_v" .. versions[1] .. ".ini",
        ini_text(profile, "st67w611m_" .. profile .. "_v" .. versions[1] .. ".bin", erase))
    else
      helpers.writefile(R.nb .. "/" .. name .. ".ini", ini_text(profile, "st67w611m_" .. profile .. "_v" .. newest
        .. ".bin", erase))
    end
  end
  local map = efuse.load_map("bl616", "st67w611m1")
  R.efuse_data = E.st_like(codec.sha256(M.PK))
  if opts.efuse ~= false then helpers.writefile(R.nb .. "/efusedata.bin", efuse.encode_saved(R.efuse_data, map)) end
  if opts.key ~= false and opts.key then
    local at = opts.key_at == "ncp_info" and "/NCP_info/utils/pem" or "/QConn_Flash/utils/pem"
    mkdir(R.bin .. at)
    helpers.writefile(R.bin .. at .. "/room_root_publickey_ecc.pem", opts.key)
    R.key = R.bin .. at .. "/room_root_publickey_ecc.pem"
  end
  if opts.hosts ~= false then
    for board, files in pairs(M.HOST_FILES) do
      mkdir(R.bin .. "/" .. board .. "_Binaries")
      for _, f in ipairs(files) do
        helpers.writefile(R.bin .. "/" .. board .. "_Binaries/" .. f, board .. ":" .. f .. "\n")
      end
    end
  end
  function R.hostfile(board, name) return R.bin .. "/" .. board .. "_Binaries/" .. name end
  --- What a chip-erased flash of `size` bytes holds after the profile at `version`.
  function R.expected(profile, version, size, base)
    local img = base or string.rep("\255", size)
    local function put(addr, d) img = img:sub(1, addr) .. d .. img:sub(addr + #d + 1) end
    put(0, R.boot2)
    put(0xE000, R.partition)
    if profile ~= "mfg" then put(0x378000, R.littlefs) end
    put(0x10000, R.images[profile][version])
    return img
  end
  return R
end

--- ncpsim's challenge key as PEM text (the "room root" key of a synthetic release).
function M.sim_key()
  local sys = require "ncpflash.core.sys"
  local path = helpers.tmpdir() .. "/key.pem"
  local pid = assert(sys.spawn({ helpers.build .. "/ncpsim", "--print-test-key" }, { stdout = path }))
  assert(sys.wait(pid, 10) == 0)
  return helpers.readfile(path)
end

return M
