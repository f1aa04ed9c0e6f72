-- ncpflash.romcodec: what the boot ROM sends and takes, as bytes <-> tables, with the chip's
-- layout (protocol.md §6.1, §6.2, §4.3). Pure functions: no port, no session.
--
--   romcodec.decode_boot_info(chip, bytes) -> {rom_version=, sign=, encrypt=, chip_id=, ...}
--   romcodec.flash_cfg_bytes(chip)         -> the 84-byte SPI flash configuration
--   romcodec.jedec_size(capacity_byte)     -> flash size in bytes, or nil
--
-- Used by ncpflash.detect and ncpflash.session (boot info), ncpflash.header (flash configuration
-- inside a boot header) and ncpflash.session (0x3B flash parameters).
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")

local M = {}

-- Boot-info decoding with the chip's layout (protocol.md §6.1).
function M.decode_boot_info(chip, data)
  local L = chip.boot_info
  if L.lengths and not L.lengths[#data] then
    errors.raise("protocol", string.format("get_boot_info: unexpected reply length %d (%s)", #data,
      util.hex_prefix(data, 32)), { op = "get_boot_info", got = data })
  end
  local bi = { raw = data, length = #data }
  bi.rom_version = string.unpack("<I4", data, L.rom_version + 1)
  bi.sign = data:byte(L.sign + 1)
  bi.encrypt = data:byte(L.encrypt + 1)
  if L.sw_cfg0 then bi.sw_cfg0 = string.unpack("<I4", data, L.sw_cfg0 + 1) end
  if L.sw_cfg1 and #data >= L.sw_cfg1 + 4 then bi.sw_cfg1 = string.unpack("<I4", data, L.sw_cfg1 + 1) end
  local id = data:sub(L.chip_id.first + 1, L.chip_id.last + 1)
  if L.chip_id.reverse then id = id:reverse() end
  bi.chip_id = codec.hex(id)
  local fp = chip.flash_pin_from_boot_info
  if fp and bi.sw_cfg0 then bi.flash_pin = (bi.sw_cfg0 >> fp.shift) & fp.mask end
  bi.rom_name = chip.rom_versions and chip.rom_versions[bi.rom_version]
  bi.secure_boot = bi.sign ~= 0
  bi.encrypted = bi.encrypt ~= 0
  return bi
end

-- The 84-byte flash configuration built from the chip's named fields.
function M.flash_cfg_bytes(chip)
  local out = {}
  for _, f in ipairs(chip.flash_cfg) do
    local name, size, v = f[1], f[2], f[3]
    if type(v) == "table" then
      assert(#v == size, "flash_cfg." .. name .. ": wrong length")
      for _, b in ipairs(v) do out[#out + 1] = string.char(b) end
    elseif size == 1 then out[#out + 1] = string.pack("B", v)
    elseif size == 2 then out[#out + 1] = string.pack("<I2", v)
    else out[#out + 1] = string.pack("<I4", v) end
  end
  local s = table.concat(out)
  assert(#s == 84, "flash_cfg must describe 84 bytes, got " .. #s)
  return s
end

-- Flash size in bytes from the JEDEC capacity byte (protocol.md §4.3).
function M.jedec_size(cap)
  local e = (cap & 0x1F) - 0x13
  if e < 0 or e > 12 then return nil end
  return (1 << e) * 512 * 1024
end

return M
