-- The worked example of docs/new-module.md: a board file for a module with inverted reset
-- wiring and a different flash layout, loaded from a temporary directory (XDG_CONFIG_HOME and
-- --lua-path) by the installed binary. No C change, no rebuild: the board file is the one in
-- docs/examples/boards/acme_w1.lua, as a user would copy it.
local sys = require "ncpflash.core.sys"
local partition = require "ncpflash.partition"

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local EXAMPLE = helpers.root .. "/docs/examples/boards/acme_w1.lua"
local BOARD = helpers.readfile(EXAMPLE)

-- The module: non-inverting reset buffers (an asserted line is a high pin), 8 MiB flash, and it
-- boots its flash unless the straps say otherwise (so only a correct reset reaches the ROM).
local function acme()
  return helpers.ncpsim({ "--wiring", "rts=en,dtr=boot,invert=both", "--strap", "flash", "--power-on", "flash",
    "--jedec", "c4601700", "--flash-size", "8M" })
end

local function xdg_with_board()
  local xdg = helpers.tmpdir()
  sys.mkdirs(xdg .. "/ncpflash/boards")
  helpers.writefile(xdg .. "/ncpflash/boards/acme_w1.lua", BOARD)
  return xdg
end

local PT = {
  { name = "FW", type = 0, address0 = 0x20000, size0 = 0x200000 },
  { name = "media", type = 2, address0 = 0x220000, size0 = 0x100000 },
}

test("the stock board cannot reach the ROM of a module with inverted reset wiring (exit 3)", function()
  local sim <close> = acme()
  local r = helpers.run({ "--port", sim.url, "--retries", "1", "info", "--no-images" })
  eq(r.code, 3, r.err)
end)

test("acme_w1 from XDG_CONFIG_HOME: reset, flash at its layout, verify, info finds its partition table", function()
  local sim <close> = acme()
  local xdg = xdg_with_board()
  local env = { XDG_CONFIG_HOME = xdg }
  local dir = helpers.tmpdir()
  local fw = helpers.random_bytes(30000, 11)
  helpers.writefile(dir .. "/fw.bin", fw)
  local r = helpers.run({ "--board", "acme_w1", "image", "create", dir .. "/fw.bin", dir .. "/fw_hdr.bin" },
    { env = env })
  eq(r.code, 0, r.err)
  local img = helpers.readfile(dir .. "/fw_hdr.bin")
  eq(img:byte(13), 0x01, "board flash_cfg.io_mode in the header")
  eq(img:byte(26), 0xEF, "board flash_cfg.mfg_id in the header")
  helpers.writefile(dir .. "/pt.bin", partition.build(PT))
  r = helpers.run({ "--port", sim.url, "--board", "acme_w1", "flash", "0x8000", dir .. "/pt.bin", "0x9000",
    dir .. "/pt.bin", "0x20000", dir .. "/fw_hdr.bin" }, { env = env })
  eq(r.code, 0, r.err)
  r = helpers.run({ "--port", sim.url, "--board", "acme_w1", "--json", "info" }, { env = env })
  eq(r.code, 0, r.err)
  match(r.out, '"flash_size":8388608')
  match(r.out, '"name":"FW"', "partition table found at 0x8000 (the board's layout)")
  sim:stop()
  local flash = sim:flash()
  eq(#flash, 8 * 1024 * 1024)
  eq(flash:sub(0x20001, 0x20000 + #img), img)
  -- the reset went through the inverted lines: the ROM saw CHIP_EN rise with BOOT high
  local lines = 0
  for _, l in ipairs(sim:log_lines()) do if l:match("^lines ") then lines = lines + 1 end end
  ok(lines >= 2, "the board drove the lines")
end)

test("acme_w1 from --lua-path DIR works the same (development checkout, no rebuild)", function()
  local sim <close> = acme()
  local dir = helpers.tmpdir()
  sys.mkdirs(dir .. "/boards")
  helpers.writefile(dir .. "/boards/acme_w1.lua", BOARD)
  local r = helpers.run({ "--lua-path", dir, "--port", sim.url, "--board", "acme_w1", "info", "--no-images" })
  eq(r.code, 0, r.err)
  match(r.out, "8%.00 MiB")
  match(r.out, "partition table copy 0 @0x8000")
end)
