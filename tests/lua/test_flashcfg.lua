-- The flash-part table (chips/bl616_flash.lua) and the 84-byte packer (ncpflash.romcodec),
-- checked against what the vendor's flasher sent (../shared/conformance/vendor/*/wire.trace).
local rc = require "ncpflash.romcodec"
local codec = require "ncpflash.core.codec"
local sys = require "ncpflash.core.sys"

local CONF = helpers.root .. "/../shared/conformance"
local have_conf = sys.stat(CONF .. "/vendor/st_t02/wire.trace") ~= nil

-- the 0x3B frames (TX lines "3b<cs><len>...") of a vendor wire.trace: list of payloads
local function set_para_frames(path)
  local out = {}
  for line in io.lines(path) do
    local hex = line:match("^%s*[%d.]+ TX (3b%x+)$")
    if hex then
      local f = codec.unhex(hex)
      local len = string.unpack("<I2", f, 3)
      eq(#f, 4 + len, "one frame per TX line")
      out[#out + 1] = f:sub(5)
    end
  end
  return out
end

test("C4 60 16: the packed GT25Q32A entry is the block the vendor sent, in every recording", function()
  if not have_conf then skip("../shared/conformance not present") end
  local e = rc.flash_part("c46016")
  eq(e.name, "GT25Q32A")
  eq(#e.block, 84)
  local seen = 0
  for _, flow in ipairs(assert(sys.listdir(CONF .. "/vendor"))) do
    local trace = CONF .. "/vendor/" .. flow .. "/wire.trace"
    if sys.stat(trace) then
      for _, p in ipairs(set_para_frames(trace)) do
        if #p == 88 then
          eq(p:sub(5), e.block, flow .. ": 0x3B block")
          seen = seen + 1
        else
          eq(#p, 4, flow .. ": 0x3B is 4 or 88 bytes")
        end
      end
    end
  end
  ok(seen >= 10, ("88-byte 0x3B frames compared: %d"):format(seen))
  eq(rc.flash_part(codec.unhex("c46016")).block, e.block, "lookup by the JEDEC bytes")
end)

test("the committed table is the vendor's files, regenerated", function()
  if not have_conf then skip("../shared/conformance not present") end
  local gen = assert(loadfile(helpers.root .. "/tools/gen_flash_table.lua"))("--lib")
  local files = gen.read_dir(CONF .. "/flash-table/bl616")
  eq(#files, 93, "one entry per .conf file")
  eq(gen.build(files), helpers.readfile(helpers.root .. "/lua/ncpflash/chips/bl616_flash.lua"),
    "run tools/gen_flash_table.lua to refresh chips/bl616_flash.lua")
  -- and each file's values survive base + overrides
  for _, f in ipairs(files) do
    local e = rc.flash_part(f.jedec)
    eq(e.name, f.name)
    for k, v in pairs(f.values) do eq(e.values[k], v, f.name .. "." .. k) end
  end
end)

test("pack/unpack: layout, unknown ids, values that do not fit", function()
  local e = rc.flash_part("c84016")
  eq(e.name, "GD25Q32C")
  local v = rc.unpack_flash_cfg(e.block)
  eq(v.mfg_id, 0xC8); eq(v.page_size, 256); eq(v.chip_erase_time, 33000)
  eq(v.clk_delay, 0); eq(v.reg_write_cmd1, 0x31)
  eq(rc.pack_flash_cfg(v), e.block, "round trip")
  eq(rc.flash_part("123456"), nil, "unknown JEDEC id")
  raises(function() rc.pack_flash_cfg({ page_size = 70000 }) end, "page_size: 70000 does not fit 2 byte")
  raises(function() rc.pack_flash_cfg({ io_mode = -1 }) end, "io_mode")
  local big = rc.flash_part("852019")   -- PY25Q256HB lists a 240000 ms chip erase
  eq(big.values.chip_erase_time, 240000, "the table's value is kept for deadlines")
  eq(rc.unpack_flash_cfg(big.block).chip_erase_time, 0xFFFF, "the u16 field saturates")
end)

test("diff names the fields where ST's flash_para.bin and the GT25Q32A entry differ", function()
  local st = helpers.fixtures
    and helpers.fixtures .. "/Binaries/QConn_Flash/chips/qcc743/efuse_bootheader/flash_para.bin"
  if not (st and sys.stat(st)) then skip("ST's release folder not present") end
  local d = rc.diff_flash_cfg(helpers.readfile(st), rc.flash_part("c46016").block)
  local names = {}
  for _, x in ipairs(d) do names[#names + 1] = x.name end
  eq(table.concat(names, " "), "mfg_id qe_reg_write_len reg_write_cmd1 cont_read_code sector_erase_time "
    .. "blk32k_erase_time blk64k_erase_time page_prog_time chip_erase_time")
end)
