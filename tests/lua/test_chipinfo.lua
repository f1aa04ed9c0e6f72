-- ST's chip information (issue 15, point 4): every field ST's NCP_get_chip_info prints, with
-- ST's values (ST's read_chip_info, X-CUBE-ST67W61 Binaries/NCP_info), on synthetic eFuse images: each trim row,
-- invalid parity, disabled rows, negative offsets, a part number without terminator, the
-- worked example; then through info, efuse read, efuse decode and st67w611m1/chip_info.
local chipinfo = require "ncpflash.chipinfo"
local be = require "ncpflash.boards.st67w611m1_efuse"
local spec = be.chip_info

local ZERO = string.rep("\0", 512)

local function put(img, off, s) return img:sub(1, off) .. s .. img:sub(off + #s + 1) end
-- OR `v` into the little-endian word at `off`
local function orw(img, off, v)
  local w = string.unpack("<I4", img, off + 1)
  return put(img, off, string.pack("<I4", (w | v) & 0xFFFFFFFF))
end
local function parity(v)
  local n = 0
  while v ~= 0 do n = n + (v & 1); v = v >> 1 end
  return n & 1
end
-- a trim row: value at (word, first bit), enable bit, parity bit (right unless `bad`)
local function trim(img, en_w, en_b, val_w, first, v, par_w, par_b, bad)
  img = orw(img, en_w, 1 << en_b)
  img = orw(img, val_w, v << first)
  local p = parity(v)
  if bad then p = 1 - p end
  if p == 1 then img = orw(img, par_w, 1 << par_b) end
  return img
end
-- 5-bit two's-complement pieces -> value
local function pieces(list)
  local v = 0
  for i, x in ipairs(list) do v = v | ((x & 0x1F) << (5 * (i - 1))) end
  return v
end

local WORKED = { 3, 3, 4, 4, 4, 5, 5, 4, 3, 1, 0, -1, -2, -3 }   -- the team notes' worked example

-- An image where every field ST prints has a value of its own.
local function full_image()
  local img = ZERO
  img = orw(img, 0x00, 3 << 26)                                        -- JTAG disabled
  img = put(img, 0x1C, string.rep("\x5A", 32))                         -- public key hash
  img = orw(img, 0x7C, 1 << 12)                                        -- anti-rollback enabled
  img = put(img, 0x170, string.rep("\xFF", 8) .. "\x03\0\0\0\0\0\0\0") -- lower half ignored; upper: 0x...03
  img = put(img, 0x180, string.rep("\0", 16) .. "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x80")  -- 128 bits
  img = put(img, 0x14, "\xDC\xD2\x03\x7B\x82\x40")                     -- default MAC (reversed)
  img = put(img, 0x64, "\x55\x44\x33\x22\x11\x02")
  img = put(img, 0x70, "\xEE\xDD\xCC\xBB\xAA\x02")
  img = put(img, 0x100, "ST67W611M1A6B\3garbage")
  img = put(img, 0x118, "\x01\x02")                                    -- BOM id bytes in order
  img = put(img, 0x11A, "\x19\x07")                                    -- year 25, week 7
  -- Wi-Fi HP: the worked example in row 0
  img = trim(img, 0xCC, 26, 0xC0, 0, pieces({ 3, 5, -2 }), 0xC0, 15)
  -- Wi-Fi LP: row 0 valid, row 1 valid later (overwrites), row 2 with a bad parity (ignored)
  img = trim(img, 0xCC, 29, 0xC4, 16, pieces({ 1, 1, 1 }), 0xC4, 31)
  img = trim(img, 0xCC, 30, 0xC8, 0, pieces({ -6, 0, 6 }), 0xC8, 15)
  img = trim(img, 0xCC, 31, 0xC8, 16, pieces({ 9, 9, 9 }), 0xC8, 31, true)
  -- BLE: row 1 only (negative pieces)
  img = trim(img, 0xD0, 27, 0xD0, 0, pieces({ 1, -1, 15, -16, 0 }), 0xD0, 25)
  -- xtal: row 1 (value in 0xF4 bits 26..31, enable and parity in 0xF0)
  img = trim(img, 0xF0, 31, 0xF4, 26, 45, 0xF0, 30)
  return img
end

test("every ST field from one image, in ST's order and ST's text", function()
  local info = chipinfo.decode(full_image(), spec)
  local v = info.values
  eq(v["JTAG"], "Disabled")
  eq(v["Public Key"], "Filled")
  eq(v["Anti-rollback"], "Enabled")
  eq(v["Anti-rollback Bootloader"], 2, "0x03 in the upper half: bit length 2")
  eq(v["Anti-rollback Application"], 128)
  eq(v["Default MAC Address"], "40:82:7B:03:D2:DC")
  eq(v["Customer MAC Address1"], "02:11:22:33:44:55")
  eq(v["Customer MAC Address2"], "02:AA:BB:CC:DD:EE")
  eq(v["Part Number"], "ST67W611M1A6B")
  eq(v["Manufacturing Year/Week"], "Year 2025 | Week 07")
  eq(v["BOM Id"], "0102")
  eq(v.wifi_hp_poffset, WORKED)
  -- row 1 [-6, 0, 6]: step 100, entries 1..5 = floor((100k+50)/100) - 6, 7..11 from 0, 13 = 7
  eq(v.wifi_lp_poffset, { -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 })
  eq(v.ble_poffset, { 1, -1, 15, -16, 0 })
  eq(v.xtal, 45)
  eq(info.order, { "JTAG", "Public Key", "Anti-rollback", "Anti-rollback Bootloader", "Anti-rollback Application",
    "Default MAC Address", "Customer MAC Address1", "Customer MAC Address2", "Part Number",
    "Manufacturing Year/Week", "BOM Id", "wifi_hp_poffset", "wifi_lp_poffset", "ble_poffset", "xtal" })
  local lines = chipinfo.lines(info)
  eq(lines[1], "JTAG                          : Disabled")
  eq(lines[10], "Manufacturing Year/Week       : Year 2025 | Week 07")
  eq(lines[12], "wifi_hp_poffset               : [3, 3, 4, 4, 4, 5, 5, 4, 3, 1, 0, -1, -2, -3]")
  eq(lines[14], "ble_poffset                   : [1, -1, 15, -16, 0]")
  eq(lines[15], "xtal                          : 45")
  -- the bad-parity row is named in ncpflash's remarks, not in ST's lines
  local notes = table.concat(chipinfo.row_notes(info), "\n")
  match(notes, "wifi_lp_poffset2: enabled, but its parity bit does not match")
end)

test("each trim row on its own: its field appears only when enabled with a matching parity", function()
  for _, t in ipairs(spec.trims) do
    local field = t[1]:gsub("%d$", "")
    local v = t.kind == "xtal" and 0x2B or t.kind == "ble" and pieces({ 2, -3, 4, -5, 6 }) or pieces({ -2, 4, 1 })
    local good = trim(ZERO, t.en[1], t.en[2], t.value[1], t.value[2], v, t.parity[1], t.parity[2])
    local info = chipinfo.decode(good, spec)
    ok(info.values[field] ~= nil, t[1] .. ": shown")
    if t.kind == "xtal" then eq(info.values[field], 43, t[1])
    elseif t.kind == "ble" then eq(info.values[field], { 2, -3, 4, -5, 6 }, t[1])
    else
      -- [-2, 4, 1]: step 100 up to entry 6, then floor(-300/6) = -50
      eq(info.values[field], { -2, -1, 0, 1, 2, 3, 4, 4, 3, 3, 2, 2, 1, 1 }, t[1])
    end
    local others = 0
    for _, r in ipairs(info.rows) do if r.shown then others = others + 1 end end
    eq(others, 1, t[1] .. ": no other row is shown")
    -- parity wrong: not shown
    local badp = trim(ZERO, t.en[1], t.en[2], t.value[1], t.value[2], v, t.parity[1], t.parity[2], true)
    eq(chipinfo.decode(badp, spec).values[field], nil, t[1] .. " with a bad parity bit")
    -- not enabled: not shown (the value and parity are there)
    local off = trim(ZERO, t.en[1], t.en[2], t.value[1], t.value[2], v, t.parity[1], t.parity[2])
    off = put(off, t.en[1], string.pack("<I4", string.unpack("<I4", off, t.en[1] + 1) & ~(1 << t.en[2])))
    eq(chipinfo.decode(off, spec).values[field], nil, t[1] .. " disabled")
  end
end)

test("an empty eFuse, odd values: Enabled JTAG, Empty key, no part number terminator, wide counters", function()
  local info = chipinfo.decode(ZERO, spec)
  eq(info.values["JTAG"], "Enabled")
  eq(info.values["Public Key"], "Empty")
  eq(info.values["Anti-rollback"], "Disabled")
  eq(info.values["Anti-rollback Bootloader"], 0)
  eq(info.values["Part Number"], "Invalid Part Number")
  eq(info.values["Manufacturing Year/Week"], "Year 2000 | Week 00")
  eq(info.values["BOM Id"], "0000")
  eq(info.values["Customer MAC Address1"], "00:00:00:00:00:00")
  eq(#info.order, 11, "no trim field without a valid row")
  -- JTAG: only both bits mean Disabled
  eq(chipinfo.decode(orw(ZERO, 0, 2 << 26), spec).values["JTAG"], "Enabled")
  -- 24 bytes of text and no 0x03 anywhere: invalid; a 0x03 at the last byte: the 23 before it
  eq(chipinfo.decode(put(ZERO, 0x100, ("A"):rep(24)), spec).values["Part Number"], "Invalid Part Number")
  eq(chipinfo.decode(put(ZERO, 0x100, ("B"):rep(23) .. "\3"), spec).values["Part Number"], ("B"):rep(23))
  -- bytes before the terminator are kept as they are (a NUL too), bytes above 0x7F escaped with a note
  eq(chipinfo.decode(put(ZERO, 0x100, "AB\0C\3"), spec).values["Part Number"], "AB\0C")
  local hi = chipinfo.decode(put(ZERO, 0x100, "AB\xC3\3"), spec)
  eq(hi.values["Part Number"], "AB\\xC3")
  match(table.concat(chipinfo.row_notes(hi), "\n"), "above 0x7F")
  -- the counters: the most significant byte of the upper half is the last one
  eq(chipinfo.decode(put(ZERO, 0x17F, "\x80"), spec).values["Anti-rollback Bootloader"], 64)
  eq(chipinfo.decode(put(ZERO, 0x177, "\xFF"), spec).values["Anti-rollback Bootloader"], 0, "the lower half")
  eq(chipinfo.decode(put(ZERO, 0x190, "\x05"), spec).values["Anti-rollback Application"], 3)
  -- a year of three digits prints as Python's {:02} does
  eq(chipinfo.decode(put(ZERO, 0x11A, "\x7B\x34"), spec).values["Manufacturing Year/Week"], "Year 20123 | Week 52")
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

local function result(out)
  local res
  for _, e in ipairs(helpers.json_lines(out)) do if e.event == "result" then res = e end end
  return res
end

test("info, efuse read, efuse decode and st67w611m1/chip_info show the same fields and values", function()
  local dir = helpers.tmpdir()
  local img = full_image()
  require("ncpflash.core.sys").mkdirs(dir .. "/state")
  helpers.writefile(dir .. "/state/efuse.bin", img)
  local file = helpers.writefile(dir .. "/chip.bin", img)
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local want = { ["JTAG"] = "Disabled", ["Public Key"] = "Filled", ["Anti-rollback"] = "Enabled",
    ["Anti-rollback Bootloader"] = 2, ["Anti-rollback Application"] = 128,
    ["Default MAC Address"] = "40:82:7B:03:D2:DC", ["Customer MAC Address1"] = "02:11:22:33:44:55",
    ["Customer MAC Address2"] = "02:AA:BB:CC:DD:EE", ["Part Number"] = "ST67W611M1A6B",
    ["Manufacturing Year/Week"] = "Year 2025 | Week 07", ["BOM Id"] = "0102", wifi_hp_poffset = WORKED,
    wifi_lp_poffset = { -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 }, ble_poffset = { 1, -1, 15, -16, 0 },
    xtal = 45 }
  for _, argv in ipairs({ { "--port", sim.url, "info" }, { "--port", sim.url, "efuse", "read" },
    { "efuse", "decode", file }, { "--port", sim.url, "st67w611m1/chip_info" } }) do
    local what = table.concat(argv, " ", argv[1] == "--port" and 3 or 1)
    local j = { "--json" }
    for _, a in ipairs(argv) do j[#j + 1] = a end
    local r = helpers.run(j)
    eq(r.code, 0, what .. ": " .. r.err)
    eq(result(r.out).chip_info, want, what)
    local h = helpers.run(argv)
    eq(h.code, 0, h.err)
    match(h.out, "chip information, as ST's NCP_get_chip_info prints it:\nJTAG                          : Disabled\n"
      .. "Public Key                    : Filled\n", what)
    match(h.out, "\nwifi_hp_poffset               : %[3, 3, 4, 4, 4, 5, 5, 4, 3, 1, 0, %-1, %-2, %-3%]\n", what)
    match(h.out, "\nxtal                          : 45\n", what)
    match(h.out, "wifi_lp_poffset2: enabled, but its parity bit does not match", what)
  end
end)
