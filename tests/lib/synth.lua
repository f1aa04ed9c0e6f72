-- synth: synthetic ST67W611M1-like release sets (no vendor files needed).
--
-- synth.release(dir, opts) writes boot2, partition table, firmware and
-- LittleFS images plus a QConn-style flash_prog_cfg.ini into `dir` and
-- returns a table describing them:
--   { ini = path, files = { {name=, address=, path=, data=}, ... } }
-- opts: fw_size (default 600 KiB), littlefs (default true), erase (2),
-- seed, fw_name.
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"
local partition = require "ncpflash.partition"

local M = {}

local function lcg_text(n, seed)
  -- compressible, firmware-like bytes: repeated tokens with varying numbers
  local words = { "wifi_mgr", "ble_gap", "lwip_tcp", "task_", "spi_xfer", "\0\0\0\0", "\255\255\255\255" }
  local x = seed or 7
  local parts, len = {}, 0
  while len < n do
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    local w = words[x % #words + 1] .. string.pack("<I2", (x >> 8) % 65536)
    parts[#parts + 1] = w
    len = len + #w
  end
  return table.concat(parts):sub(1, n)
end
M.compressible = lcg_text

--- The ST v2.0.89 partition layout (st67w611m1.md §4).
function M.partition_table()
  return partition.build({
    { type = 16, name = "Boot2", address0 = 0x0, size0 = 0xE000 },
    { type = 0, name = "FW", address0 = 0x10000, address1 = 0x1C4000, size0 = 0x1B4000, size1 = 0x1B4000 },
    { type = 10, name = "mfg", address0 = 0x1C4000, size0 = 0x1B4000 },
    { type = 2, name = "media", address0 = 0x378000, size0 = 0x6D000 },
    { type = 4, name = "rsvd1", address0 = 0x3E5000, size0 = 0x4000 },
    { type = 3, name = "PSM", address0 = 0x3E9000, size0 = 0x8000 },
    { type = 8, name = "rsvd2", address0 = 0x3F1000, size0 = 0xE000 },
    { type = 9, name = "MFD", address0 = 0x3FF000, size0 = 0x1000 },
  })
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

function M.release(dir, opts)
  opts = opts or {}
  local seed = opts.seed or 1
  local files = {
    { name = "boot2", address = 0x0, file = "synth_boot2.bin",
      data = header.build(bl616, { image = lcg_text(45 * 1024, seed), offset = 0x2000 }) },
    { name = "partition", address = 0xE000, file = "partition.bin", data = M.partition_table() },
    { name = "FW", address = 0x10000, file = opts.fw_name or "synth_fw.bin", at = "@partition",
      data = header.build(bl616, { image = lcg_text(opts.fw_size or 600 * 1024, seed + 1), offset = 0x1000 }) },
  }
  if opts.littlefs ~= false then
    -- a LittleFS-like image: a little metadata, then erased blocks
    local fs = ("littlefs"):rep(64) .. string.rep("\255", 0x6D000 - 512)
    files[#files + 1] = { name = "littlefs", address = 0x378000, file = "littlefs.bin", data = fs }
  end
  local ini = { "[cfg]", ("erase = %d"):format(opts.erase or 2), "skip_mode = 0x0, 0x0",
    "boot2_isp_mode = 0", "" }
  for _, f in ipairs(files) do
    f.path = dir .. "/" .. f.file
    write(f.path, f.data)
    ini[#ini + 1] = "[" .. f.name .. "]"
    ini[#ini + 1] = "filedir = ./" .. f.file
    ini[#ini + 1] = "address = " .. (f.at or ("0x%06X"):format(f.address))
    ini[#ini + 1] = ""
  end
  local set = { ini = dir .. "/synth_flash_prog_cfg.ini", files = files, dir = dir }
  write(set.ini, table.concat(ini, "\n"))
  return set
end

--- Expected flash content after flashing `set` onto a chip-erased flash of
--- `size` bytes (0xFF elsewhere).
function M.expected_flash(set, size, base)
  local img = base or string.rep("\255", size)
  for _, f in ipairs(set.files) do
    img = img:sub(1, f.address) .. f.data .. img:sub(f.address + #f.data + 1)
  end
  return img
end

return M
