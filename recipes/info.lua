-- info: what the chip and its flash hold.
local codec = require("ncpflash.core.codec")
local partition = require("ncpflash.partition")
local header = require("ncpflash.header")
local util = require("ncpflash.util")
local json = require("ncpflash.json")
local errors = require("ncpflash.errors")
local efuse = require("ncpflash.efuse")
local burn = require("ncpflash.efuse_burn")
local chipinfo = require("ncpflash.chipinfo")

-- Read and parse the partition table at `addr`; returns pt or nil, reason.
local function read_table(s, addr)
  local head = s:read(addr, partition.HEADER_SIZE)
  if not partition.is_table(head) then
    if head == string.rep("\xFF", #head) then return nil, "empty (erased)" end
    return nil, "no BFPT magic"
  end
  local count = string.unpack("<I2", head, 7)
  if count > partition.MAX_ENTRIES then return nil, "bad entry count " .. count end
  local data = s:read(addr, partition.HEADER_SIZE + partition.ENTRY_SIZE * count + 4)
  local ok, pt = pcall(partition.parse, data, { file = string.format("flash@0x%X", addr) })
  if not ok then return nil, tostring(pt) end
  return pt
end

-- Look at one flash address: a boot-header image of the connected chip's layout (size, hashes)
-- or raw data.
local function probe_image(s, addr, limit)
  local head = s:read(addr, s.chip.header.size + 72)
  if head == string.rep("\xFF", #head) then return { address = addr, kind = "empty" } end
  if not header.is_header(head) then return { address = addr, kind = "data" } end
  local h = header.parse(s.chip, head, { file = string.format("flash@0x%X", addr) })
  local r = { address = addr, kind = "image", signed = h.signed, encrypted = h.encrypted,
    header_ok = h.header_crc_ok ~= false and h.flash_cfg_crc_ok ~= false }
  if h.public_key_hash then r.public_key_sha256 = codec.hex(h.public_key_hash) end
  if h.image_len then
    r.image_offset, r.image_len = h.image_offset, h.image_len
    r.size = h.image_offset + h.image_len
    r.header_sha256 = codec.hex(h.sha256)
    if r.size <= (limit or math.huge) then
      local got = s:sha256(addr + h.image_offset, h.image_len)
      r.sha256 = codec.hex(got)
      r.sha_ok = got == h.sha256
    else
      r.sha_ok = false
      r.note = "image length exceeds its partition"
    end
  end
  return r
end

return {
  help = "show the chip (ROM, secure boot, chip id, MAC, flash, ST's chip information) and what its flash holds",
  args = {
    { "--no-images", flag = true, help = "do not look for images on flash" },
  },
  run = function(ctx, a)
    local s <close> = ctx:connect()
    local bi = s:boot_info()
    local jedec, size = s:jedec()
    local lines = {
      string.format("ROM version   0x%08X%s (boot info %d bytes)", bi.rom_version,
        bi.rom_name and (" " .. bi.rom_name) or "", bi.length),
      string.format("secure boot   %s (sign %d, encrypt %d)", bi.secure_boot and "ON" or "off", bi.sign, bi.encrypt),
      string.format("chip id       %s", bi.chip_id),
      string.format("MAC           %s", s:mac()),
      string.format("flash         JEDEC %s%s, %s, pin 0x%02X", jedec, s.flash_part and (" " .. s.flash_part.name) or
        " (not in the flash table)", size and util.fmt_size(size) or "size unknown", bi.flash_pin or 0),
      string.format("flash config  %s", s.flash_config_source or "none"),
      bi.sw_cfg0 and string.format("sw_cfg0       0x%08X", bi.sw_cfg0) or "sw_cfg0       (not in this boot info)",
    }
    if bi.chip then lines[#lines + 1] = string.format("chip file     %s%s", bi.chip,
      s.loader_running and " (flashing through its RAM eflash_loader)" or "") end
    local res = { command = "info", rom_version = bi.rom_version, secure_boot = bi.secure_boot,
      sign = bi.sign, encrypt = bi.encrypt, chip_id = bi.chip_id, mac = s:mac(), jedec = jedec,
      flash_part = s.flash_part and s.flash_part.name, flash_config = s.flash_config_source,
      flash_size = size, sw_cfg0 = bi.sw_cfg0 }
    -- the board's chip information view of the eFuse (ST's NCP_get_chip_info fields), under chip_info
    local mok, map, board_efuse = errors.catch(efuse.map_for, ctx)
    if mok and board_efuse and board_efuse.chip_info then
      local rok, bytes = errors.catch(burn.read, s, map)
      if rok then
        for _, l in ipairs(chipinfo.report(bytes, board_efuse, res)) do lines[#lines + 1] = l end
      elseif bytes.code == "interrupted" or bytes.code == "port" then
        error(bytes, 0)
      else
        ctx.ev:warn("chip information: the eFuse read failed: " .. bytes.message)
        lines[#lines + 1] = "chip information: not available (the eFuse read failed)"
      end
    end
    local layout = (s.board and s.board.flash_layout) or s.chip.flash_layout or {}   -- a board may move the tables
    local pt
    for i, addr in ipairs(layout.partition_table or {}) do
      local t, why = read_table(s, addr)
      if t then
        lines[#lines + 1] = string.format("partition table copy %d @0x%X: %d entries, age %d", i - 1, addr, t.count,
          t.age)
        if not pt or t.age > pt.age then pt = t end
      else
        lines[#lines + 1] = string.format("partition table copy %d @0x%X: %s", i - 1, addr, why)
      end
    end
    if pt then
      res.partitions = {}
      for _, e in ipairs(pt.entries) do
        res.partitions[#res.partitions + 1] = { name = e.name, type = e.type, address0 = e.address0,
          address1 = e.address1, size0 = e.size0, size1 = e.size1, active_index = e.active_index }
      end
      setmetatable(res.partitions, json.array)
      for _, l in ipairs(partition.describe(pt)) do lines[#lines + 1] = l end
      if not a.no_images then
        res.images = setmetatable({}, json.array)
        lines[#lines + 1] = "images on flash:"
        local seen = {}
        for _, e in ipairs(pt.entries) do
          for slot, addr in ipairs({ e.address0, e.address1 }) do
            if (slot == 1 or addr ~= 0) and not seen[addr] then
              seen[addr] = true
              local limit = slot == 1 and e.size0 or e.size1
              local r = probe_image(s, addr, limit)
              r.partition, r.slot = e.name, slot - 1
              res.images[#res.images + 1] = r
              local desc
              if r.kind == "image" then
                desc = string.format("%s image, %d bytes (code %d at +0x%X), SHA-256 %s %s",
                  r.signed and "signed" or "unsigned", r.size or 0, r.image_len or 0, r.image_offset or 0,
                  (r.sha256 or r.header_sha256 or "?"):sub(1, 16),
                  r.sha_ok and "ok" or ("MISMATCH" .. (r.note and (" (" .. r.note .. ")") or "")))
              else
                desc = r.kind
              end
              lines[#lines + 1] = string.format("  %-8s slot %d @0x%06X: %s", e.name, slot - 1, addr, desc)
            end
          end
        end
      end
    end
    res.summary = lines
    ctx.ev:result(res)
  end,
}
