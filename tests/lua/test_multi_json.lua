-- JSON event schema v2 (several devices): every line carries the device, stage, bytes, elapsed;
-- a "done" event per device and a final "summary".  README "JSON events" documents it.
local boot_info = helpers.boot_info

local KINDS = { stage = true, progress = true, info = true, warn = true, debug = true, result = true, error = true,
  done = true, summary = true }

test("--json with several ports: schema v2 on every line", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(40 * 1024, 3))
  local good <close> = helpers.ncpsim{ "--boot-info", boot_info(1) }
  local bad <close> = helpers.ncpsim{ "--boot-info", boot_info(2), "--fault", "fl:31:0005:0", "--fault",
    "fl:3F:0005:0" }
  local r = helpers.run{ "--json", "--port", good.url, "--port", bad.url, "flash", "0x10000", dir .. "/fw.bin" }
  eq(r.code, 4, r.err)
  eq(r.err, "", "nothing on stderr with --json")
  local evs = helpers.json_lines(r.out)
  ok(#evs > 6)
  local per = { {}, {} }
  for i, e in ipairs(evs) do
    eq(e.v, 2, "schema version on line " .. i)
    ok(KINDS[e.event], "known event kind " .. tostring(e.event))
    eq(type(e.t), "number")
    if e.event ~= "summary" then
      ok(type(e.device) == "table", "device on line " .. i)
      ok(e.device.index == 1 or e.device.index == 2)
      eq(e.device.port, e.device.index == 1 and good.url or bad.url)
      eq(type(e.elapsed), "number")
      eq(type(e.stage), "string")
      eq(type(e.bytes), "number")
      table.insert(per[e.device.index], e)
    end
  end
  eq(evs[#evs].event, "summary", "the summary comes last")
  local sum = evs[#evs]
  eq(sum.exit, 4)
  eq(sum.ok, 1)
  eq(sum.failed, 1)
  eq(#sum.devices, 2)
  eq(sum.devices[1].result, "ok")
  eq(sum.devices[1].chip_id, "40827b03d201")
  eq(sum.devices[1].mac, "40:82:7b:03:d2:01")
  eq(sum.devices[2].result, "failed")
  eq(sum.devices[2].code, "device")
  eq(sum.devices[2].exit, 4)
  for k = 1, 2 do
    local evk = per[k]
    local done = evk[#evk]
    eq(done.event, "done", "device " .. k .. " ends with done")
    eq(done.exit, k == 1 and 0 or 4)
    eq(done.result, k == 1 and "ok" or "failed")
    eq(done.device.chip_id, ("40827b03d2%02x"):format(k), "chip id once known")
    eq(done.device.mac, ("40:82:7b:03:d2:%02x"):format(k))
    local first = evk[1]
    eq(first.event, "stage")
    eq(first.name, "connect")
    eq(first.device.chip_id, nil, "chip id unknown before connect")
  end
  local last_progress
  for _, e in ipairs(per[1]) do if e.event == "progress" then last_progress = e end end
  ok(last_progress, "progress events")
  eq(last_progress.stage, "write")
  eq(last_progress.bytes, 40 * 1024)
  eq(last_progress.done, 40 * 1024)
  local err
  for _, e in ipairs(per[2]) do if e.event == "error" then err = e end end
  eq(err.code, "device")
  eq(err.exit, 4)
  eq(err.fl, 5)
end)

test("single port --json stays schema v1", function()
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--json", "--port", sim.url, "info" }
  eq(r.code, 0, r.err)
  for _, e in ipairs(helpers.json_lines(r.out)) do eq(e.v, 1); eq(e.device, nil) end
end)
