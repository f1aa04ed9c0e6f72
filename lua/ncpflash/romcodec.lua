-- ncpflash.romcodec: what the boot ROM sends and takes, as bytes <-> tables, with the chip's
-- layout (protocol.md §6.1, §6.2, §4.3). Pure functions: no port, no session.
--
--   romcodec.decode_boot_info(chip, bytes) -> {rom_version=, sign=, encrypt=, chip_id=, ...}
--   romcodec.flash_cfg_bytes(chip)         -> the 84-byte SPI flash configuration
--   romcodec.jedec_size(capacity_byte)     -> flash size in bytes, or nil
--   romcodec.pack_flash_cfg(values) / unpack_flash_cfg(block) / diff_flash_cfg(a, b)
--                                          -> the 84-byte block by field name
--   romcodec.flash_part(jedec, table)      -> the flash-table entry of a JEDEC id (name, block)
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

-- ---- the 84-byte SPI flash configuration, by field (protocol.md §6.2 "SPI_Flash_Cfg": the
-- block after flash_set in an 88-byte 0x3B, and the boot header's FCFG section). Field names are
-- the keys of Bouffalo's flash-part files (bflb-mcu-tool 1.10 utils/flash/<chip>/
-- PART_jedecid.conf, carried over in chips/bl616_flash.lua); clk_delay, clk_invert and the third
-- and fourth status-register commands are not in those files and pack as 0, which is what the
-- vendor's flasher sent for C4 60 16 (../shared/conformance/vendor/st_t02/wire.trace).

-- {name, bytes} in wire order; 2 = u16 little-endian.
M.FLASH_CFG_FIELDS = {
  {"io_mode", 1}, {"cont_read_support", 1}, {"clk_delay", 1}, {"clk_invert", 1},
  {"reset_en_cmd", 1}, {"reset_cmd", 1}, {"exit_contread_cmd", 1}, {"exit_contread_cmd_size", 1},
  {"jedecid_cmd", 1}, {"jedecid_cmd_dmy_clk", 1}, {"enter_32bits_addr_cmd", 1}, {"exit_32bits_addr_clk", 1},
  {"sector_size", 1}, {"mfg_id", 1}, {"page_size", 2},
  {"chip_erase_cmd", 1}, {"sector_erase_cmd", 1}, {"blk32k_erase_cmd", 1}, {"blk64k_erase_cmd", 1},
  {"write_enable_cmd", 1}, {"page_prog_cmd", 1}, {"qpage_prog_cmd", 1}, {"qual_page_prog_addr_mode", 1},
  {"fast_read_cmd", 1}, {"fast_read_dmy_clk", 1}, {"qpi_fast_read_cmd", 1}, {"qpi_fast_read_dmy_clk", 1},
  {"fast_read_do_cmd", 1}, {"fast_read_do_dmy_clk", 1}, {"fast_read_dio_cmd", 1}, {"fast_read_dio_dmy_clk", 1},
  {"fast_read_qo_cmd", 1}, {"fast_read_qo_dmy_clk", 1}, {"fast_read_qio_cmd", 1}, {"fast_read_qio_dmy_clk", 1},
  {"qpi_fast_read_qio_cmd", 1}, {"qpi_fast_read_qio_dmy_clk", 1}, {"qpi_page_prog_cmd", 1},
  {"write_vreg_enable_cmd", 1},
  {"wel_reg_index", 1}, {"qe_reg_index", 1}, {"busy_reg_index", 1},
  {"wel_bit_pos", 1}, {"qe_bit_pos", 1}, {"busy_bit_pos", 1},
  {"wel_reg_write_len", 1}, {"wel_reg_read_len", 1}, {"qe_reg_write_len", 1}, {"qe_reg_read_len", 1},
  {"release_power_down", 1}, {"busy_reg_read_len", 1},
  {"reg_read_cmd0", 1}, {"reg_read_cmd1", 1}, {"reg_read_cmd2", 1}, {"reg_read_cmd3", 1},
  {"reg_write_cmd0", 1}, {"reg_write_cmd1", 1}, {"reg_write_cmd2", 1}, {"reg_write_cmd3", 1},
  {"enter_qpi_cmd", 1}, {"exit_qpi_cmd", 1}, {"cont_read_code", 1}, {"cont_read_exit_code", 1},
  {"burst_wrap_cmd", 1}, {"burst_wrap_dmy_clk", 1}, {"burst_wrap_data_mode", 1}, {"burst_wrap_code", 1},
  {"de_burst_wrap_cmd", 1}, {"de_burst_wrap_cmd_dmy_clk", 1}, {"de_burst_wrap_code_mode", 1},
  {"de_burst_wrap_code", 1},
  {"sector_erase_time", 2}, {"blk32k_erase_time", 2}, {"blk64k_erase_time", 2}, {"page_prog_time", 2},
  {"chip_erase_time", 2}, {"power_down_delay", 1}, {"qe_data", 1},
}
M.FLASH_CFG_SIZE = 84

local offset, byname = 0, {}
for _, f in ipairs(M.FLASH_CFG_FIELDS) do
  byname[f[1]] = { offset = offset, size = f[2] }
  offset = offset + f[2]
end
assert(offset == M.FLASH_CFG_SIZE, "romcodec: the flash configuration layout is not 84 bytes")
M.flash_cfg_field = byname   -- name -> {offset, size}

--- 84 bytes from a table of field values (missing fields pack as 0). A value too large for
--- its field raises unless opts.saturate (then it is stored as the field's maximum: the
--- table lists chip-erase times above 65535 ms for a few 16/32 MiB parts).
function M.pack_flash_cfg(values, opts)
  local out = {}
  for _, f in ipairs(M.FLASH_CFG_FIELDS) do
    local name, size = f[1], f[2]
    local v = values[name] or 0
    local max = (1 << (8 * size)) - 1
    if math.type(v) ~= "integer" or v < 0 then
      error(("flash config field %s: %s is not a non-negative integer"):format(name, tostring(v)), 2)
    end
    if v > max then
      if not (opts and opts.saturate) then
        error(("flash config field %s: %d does not fit %d byte(s)"):format(name, v, size), 2)
      end
      v = max
    end
    out[#out + 1] = string.pack(size == 2 and "<I2" or "B", v)
  end
  return table.concat(out)
end

--- Field values of an 84-byte block.
function M.unpack_flash_cfg(block)
  assert(#block == M.FLASH_CFG_SIZE, "flash config block must be 84 bytes")
  local v = {}
  for name, f in pairs(byname) do
    v[name] = string.unpack(f.size == 2 and "<I2" or "B", block, f.offset + 1)
  end
  return v
end

--- Fields where two blocks differ: list of {name=, a=, b=} in wire order.
function M.diff_flash_cfg(a, b)
  local va, vb, out = M.unpack_flash_cfg(a), M.unpack_flash_cfg(b), {}
  for _, f in ipairs(M.FLASH_CFG_FIELDS) do
    if va[f[1]] ~= vb[f[1]] then out[#out + 1] = { name = f[1], a = va[f[1]], b = vb[f[1]] } end
  end
  return out
end

--- The table entry of a JEDEC id ("c46016" or bytes): {name=, jedec=, values=, block=} or nil.
--- `table_module` names the chip's table (default the BL616's).
function M.flash_part(jedec, table_module)
  if type(jedec) == "string" and #jedec == 3 then
    jedec = ("%02x%02x%02x"):format(jedec:byte(1, 3))
  end
  jedec = tostring(jedec):lower()
  local t = require(table_module or "ncpflash.chips.bl616_flash")
  local e = t.parts[jedec]
  if not e then return nil end
  local values = {}
  for k, v in pairs(t.base) do values[k] = v end
  for k, v in pairs(e) do if k ~= 1 then values[k] = v end end
  return { name = e[1], jedec = jedec, values = values, block = M.pack_flash_cfg(values, { saturate = true }),
    source = t.source }
end

return M
