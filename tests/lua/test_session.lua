-- Session: boot-info decoding, sync/JEDEC arithmetic, handshake classification, and the
-- connect sequence as ncpsim sees it (reset lines, A0 timeout variant, baud switch).
local romcodec = require "ncpflash.romcodec"
local handshake = require "ncpflash.handshake"
local chip = require "ncpflash.chips.bl616"
local codec = require "ncpflash.core.codec"

test("ST67W611M1 boot info (28 bytes, protocol.md §6.1)", function()
  local bi = romcodec.decode_boot_info(chip,
    codec.unhex("0200160601000100a7128201dcd2037b82401c008f758090e8805be3"))
  eq(bi.rom_version, 0x06160002)
  eq(bi.sign, 1)
  eq(bi.secure_boot, true)
  eq(bi.encrypt, 0)
  eq(bi.sw_cfg0, 0x018212A7)
  eq(bi.flash_pin, 0x08)
  eq(bi.chip_id, "40827b03d2dc")
  eq(bi.length, 28)
end)

test("BL616 dev board boot info (24 bytes)", function()
  local bi = romcodec.decode_boot_info(chip, codec.unhex("0100160600000100279280013197" ..
    "35cf0eb417000f758010"))
  eq(bi.rom_version, 0x06160001)
  eq(bi.sign, 0)
  eq(bi.sw_cfg0, 0x01809227)
  eq(bi.flash_pin, 0x02)
  eq(bi.chip_id, "b40ecf359731")
end)

test("boot info of an unexpected length is a protocol error", function()
  raises(function() romcodec.decode_boot_info(chip, string.rep("\0", 20)) end, "protocol")
end)

test("sync burst length and JEDEC size", function()
  eq(handshake.sync_count(chip, 500000), 300)
  eq(handshake.sync_count(chip, 2000000), 1200)
  eq(handshake.sync_count(chip, 115200), 69)
  eq(romcodec.jedec_size(0x16), 4 * 1024 * 1024)
  eq(romcodec.jedec_size(0x15), 2 * 1024 * 1024)
  eq(romcodec.jedec_size(0x00), nil)
end)

test("handshake classification: OK pair, nothing, echo, garbage", function()
  eq(handshake.classify("\0OK"), "ok")
  eq(handshake.classify(""), "nothing")
  eq(handshake.classify(string.rep("\x55", 40) .. "\x15"), "echo")
  eq(handshake.classify("\xc1\x27\xbd" .. string.rep("\x41", 30)), "garbage")
  eq(handshake.classify("O\x00K"), "garbage")       -- a lone O or K is not an answer
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local function log_of(sim)
  return table.concat(sim:log_lines(), "\n")
end

test("connect: BOOT high while CHIP_EN rises, 0x23 10 s, 0x22 to 2 Mbaud, flash set", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "info", "--no-images" }
  eq(r.code, 0, r.err)
  local log = log_of(sim)
  match(log, "lines dtr=0 rts=1")                    -- BOOT high (DTR released), CHIP_EN low
  match(log, "lines dtr=0 rts=0")                    -- CHIP_EN rises with BOOT high
  match(log, "handshake baud=500000 %-> OK")
  match(log, "0x23 set_timeout plen=4 timeout_ms=10000")
  match(log, "0x22 clk_set plen=8 irq=1 baud=2000000")
  match(log, "flash_set=0x01014108")                 -- pin 0x08 from sw_cfg0, clk 0x41, io 1, delay 1
  -- as the vendor's flasher: 0x3B with flash_set alone at connect; the 84-byte block goes before
  -- each region that is written (test_conformance), not here
  match(log, "0x3B flash_set_para plen=4 ")
  nomatch(log, "0x3B flash_set_para plen=88")
  match(r.out, "flash%s+C46016 GT25Q32A")
end)

test("A0 ROM (0x06160001): timeout by memory write, not 0x23", function()
  local sim <close> = helpers.ncpsim{ "--boot-info", "0100160600000100279280013197" ..
    "35cf0eb417000f758010" }
  local r = helpers.run{ "--port", sim.url, "info", "--no-images" }
  eq(r.code, 0, r.err)
  local log = log_of(sim)
  match(log, "0x50 memory_write plen=8 addr=0x6102df04 value=0x27101200")
  nomatch(log, "0x23 set_timeout")
  match(r.out, "sw_cfg0%s+0x01809227")
end)

test("--load-baud equal to the handshake speed: no baud switch", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "--load-baud", "500000", "info", "--no-images" }
  eq(r.code, 0, r.err)
  nomatch(log_of(sim), "0x22 clk_set")
  match(r.out, "at 500000 baud")
end)

test("probe: a live ROM session at the handshake speed skips reset and sync", function()
  local sim <close> = helpers.ncpsim{}
  eq(helpers.run{ "--port", sim.url, "--load-baud", "500000", "info", "--no-images" }.code, 0)
  local n = #sim:log_lines()
  local r = helpers.run{ "--port", sim.url, "--load-baud", "500000", "info", "--no-images" }
  eq(r.code, 0, r.err)
  local lines = sim:log_lines()
  for i = n + 1, #lines do
    ok(not lines[i]:match("^handshake"), "no second handshake: " .. lines[i])
  end
end)

test("a port without modem lines warns once and still connects (chip already in download mode)", function()
  local sim <close> = helpers.ncpsim{ "--raw", "127.0.0.1:0" }
  local r = helpers.run{ "--port", sim.url, "--load-baud", "500000", "info", "--no-images" }
  eq(r.code, 0, r.err)
  local _, n = r.err:gsub("cannot drive the reset lines", "")
  eq(n, 1)
end)

test("FL on flash_set_para during connect: exit 4 naming the command and code", function()
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3B:0008" }
  local r = helpers.run{ "--port", sim.url, "info" }
  eq(r.code, 4)
  match(r.err, "flash_set_para")
  match(r.err, "0x0008")
end)

test("idle longer than the ROM timeout: the next command re-syncs at the current speed", function()
  local sim <close> = helpers.ncpsim{}
  local script = helpers.writefile(helpers.tmpdir() .. "/idle.lua", [[
    return { help = "t", args = {}, run = function(ctx)
      local sys = require "ncpflash.core.sys"
      local s <close> = ctx:connect()
      s:set_rom_timeout(0.3)
      sys.sleep(0.6)
      local d = s:sha256(0, 4096)
      ctx.ev:info("sha " .. #d .. " resyncs " .. tostring(s.rehandshakes))
    end }]])
  local r = helpers.run{ "--port", sim.url, script }
  eq(r.code, 0, r.err)
  match(r.out, "sha 32 resyncs 1")
  local log = table.concat(sim:log_lines(), "\n")
  match(log, "inactivity")
  match(log, "handshake baud=2000000 %-> OK")
end)

test("reset wiring is board data: a user board with swapped lines", function()
  local xdg = helpers.tmpdir()
  assert(require("ncpflash.core.sys").mkdirs(xdg .. "/ncpflash/boards"))
  helpers.writefile(xdg .. "/ncpflash/boards/swapped.lua", [[
    local b = {}
    for k, v in pairs(require("ncpflash.boards.st67w611m1")) do b[k] = v end
    b.name = "swapped"
    b.reset = { lines = { en = "dtr", boot = "rts" }, active = "low",
      enter = { { boot = 1, en = 0 }, { wait = 0.05 }, { en = 1 }, { wait = 0.1 }, { boot = 0 } },
      run = { { boot = 0, en = 0 }, { wait = 0.05 }, { en = 1 } } }
    return b]])
  local sim <close> = helpers.ncpsim{ "--wiring", "rts=boot,dtr=en", "--power-on", "flash" }
  local env = { XDG_CONFIG_HOME = xdg }
  local r = helpers.run({ "--port", sim.url, "info", "--no-images" }, { env = env })
  eq(r.code, 3, "the default wiring cannot enter download mode")
  match(r.err, "handshake failed")
  r = helpers.run({ "--port", sim.url, "--board", "swapped", "info", "--no-images" }, { env = env })
  eq(r.code, 0, r.err)
  match(r.out, "chip id%s+" .. sim.chip_id)
end)

test("flaky handshakes: retried up to the chip's sync.retries", function()
  local sim <close> = helpers.ncpsim{ "--fault", "flaky:2" }
  local r = helpers.run{ "--port", sim.url, "info", "--no-images" }
  eq(r.code, 0, r.err)
  local sim2 <close> = helpers.ncpsim{ "--fault", "flaky:3" }
  r = helpers.run{ "--port", sim2.url, "info", "--no-images" }
  eq(r.code, 3)
  match(r.err, "after 3 attempts")
end)
