-- flash --provision: per-unit data from a CSV, claimed under a file lock by concurrent devices,
-- marked used only after verify; a failed unit gives its row back.
local provision = require "ncpflash.provision"
local codec = require "ncpflash.core.codec"

local boot_info = helpers.boot_info

local EXAMPLE = helpers.root .. "/docs/examples/provision-mac.lua"

test("CSV lines with quotes and commas", function()
  eq(provision.split_csv_line('a,"b,c",,"d""e"'), { "a", "b,c", "", 'd"e' })
  eq(provision.split_csv_line(""), { "" })
end)

test("5 devices at once take 5 distinct rows; the failing one releases its row", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(20 * 1024, 9))
  local csv = { "serial,mac,calib" }
  for i = 1, 7 do csv[#csv + 1] = ("SN%03d,02:00:00:00:00:%02x,%s"):format(i, i, ("c%d"):format(i):rep(2)) end
  helpers.writefile(dir .. "/units.csv", table.concat(csv, "\n") .. "\n")
  local sims, argv = {}, {}
  for k = 1, 5 do
    local a = { "--boot-info", boot_info(k) }
    if k == 5 then a[#a + 1] = "--fault"; a[#a + 1] = "fl:3E:0005:0" end   -- SHA-256 refused: no verify
    sims[k] = helpers.ncpsim(a)
    argv[#argv + 1] = "--port"; argv[#argv + 1] = sims[k].url
  end
  for _, x in ipairs({ "--json", "flash", "--provision", EXAMPLE, "0x10000", dir .. "/fw.bin" }) do
    argv[#argv + 1] = x
  end
  local r = helpers.run(argv, { env = { UNITS_CSV = dir .. "/units.csv" } })
  eq(r.code, 4, r.out .. r.err)
  local sum = helpers.json_lines(r.out)
  sum = sum[#sum]
  eq(sum.ok, 4)
  -- the CSV: four rows used, each by a different chip; the failed chip's row is free again
  local text = helpers.readfile(dir .. "/units.csv")
  local lines = {}
  for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
  eq(lines[1], "serial,mac,calib,status")
  local used, chips = 0, {}
  local mac_of = {}
  for i = 2, #lines do
    local cells = provision.split_csv_line(lines[i])
    local chip = cells[4]:match("^used (%x+) %d")
    if chip then
      used = used + 1
      ok(not chips[chip], "one row per chip")
      chips[chip] = true
      mac_of[chip] = cells[2]
    else
      eq(cells[4], "", "row " .. (i - 1) .. " free: " .. lines[i])
    end
  end
  eq(used, 4)
  ok(not chips["40827b03d205"], "the failing device did not mark a row used")
  -- every good device carries the MAC of its own row in its MFD record
  for k = 1, 4 do
    local chip = ("40827b03d2%02x"):format(k)
    ok(mac_of[chip], "chip " .. chip .. " got a row")
    sims[k]:stop()
    local rec = sims[k]:flash():sub(0x3FF000 + 1, 0x3FF000 + 4 + 16 + 6)
    eq(rec:sub(1, 4), "MFD1")
    eq(codec.hex(rec:sub(21, 26)), mac_of[chip]:gsub(":", ""), "MAC in the MFD record of board " .. k)
  end
end)

test("a rerun on the same chip gets its reserved row back", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/u.csv", "serial,mac,calib,status\nA,02:00:00:00:00:01,,reserved 40827b03d201\n"
    .. "B,02:00:00:00:00:02,,\n")
  local c = provision.csv(dir .. "/u.csv")
  eq(c:claim({ chip_id = "40827b03d201" }).serial, "A")
  local row = c:claim({ chip_id = "ffff" })
  eq(row.serial, "B")
  raises(function() c:claim({ chip_id = "eeee" }) end, "input")
  ok(c:commit(row, { chip_id = "ffff" }))
  eq(c:commit(row, { chip_id = "ffff" }), false, "commit twice: no longer reserved")
  match(helpers.readfile(dir .. "/u.csv"), "B,02:00:00:00:00:02,,used ffff ")
end)

test("jobs.lock: a second lock on the same file waits, even in the same process", function()
  local jobs = require "ncpflash.core.jobs"
  local sys = require "ncpflash.core.sys"
  local path = helpers.tmpdir() .. "/x.lock"
  local a = jobs.lock(path, 1)
  local t0 = sys.now()
  local e = raises(function() jobs.lock(path, 0.2) end, "timeout")
  match(e.message, "locked")
  ok(sys.now() - t0 >= 0.19)
  a:unlock()
  local b <close> = jobs.lock(path, 0.2)
  ok(b)
end)
