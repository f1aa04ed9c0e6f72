-- Issue 13 (integrity): eFuse files are the two formats there are; lock-out fields are named
-- and need a flag that names them; a write that was sent is never recorded as "not written".
-- Items 3 and 4.
local sys = require "ncpflash.core.sys"
local codec = require "ncpflash.core.codec"
local efuse = require "ncpflash.efuse"
local E = require "efusedata"

local map = efuse.load_map("bl616", "st67w611m1")

local efuse_writes = E.efuse_writes

local function burn(sim, file, extra, env)
  local argv = { "--port", sim.url, "efuse", "burn", file, "--insecure-write" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  return helpers.run(argv, env and { env = env } or nil)
end

test("3: only the 512-byte raw image and the 4608-byte saved format are eFuse files (exit 7)", function()
  local dir = helpers.tmpdir()
  local saved = efuse.encode_saved(E.st_like(E.ST_HASH), map)
  local sim <close> = helpers.ncpsim{}
  for _, n in ipairs({ 1, 100, 511, 513, 4607, 4609 }) do
    local f = helpers.writefile(dir .. "/cut" .. n .. ".bin", (saved .. saved):sub(1, n))
    local r = burn(sim, f, { "--confirm-efuse-burn", "--yes" })
    eq(r.code, 7, n .. " bytes: " .. r.err)
    match(r.err, "cut" .. n .. "%.bin: file size .*expected 512 bytes %(raw eFuse image%) or 4608 bytes "
      .. "%(saved format%), found " .. n .. " bytes")
  end
  eq(#sim:log_lines(), 0, "nothing reached the device")
  -- the two real formats are taken (dry runs)
  local raw = helpers.writefile(dir .. "/raw.bin", E.u32(E.ZERO, 0, 0x0C000000))
  eq(burn(sim, raw).code, 0)
  local r = helpers.run{ "efuse", "decode", helpers.writefile(dir .. "/saved.bin", saved) }
  eq(r.code, 0, r.err)
end)

test("3: the plan names every lock-out field; UART-download disable and encryption need a flag naming them",
  function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{}
  -- JTAG disable + a write lock: named as lock-out fields, no extra flag
  local jt = helpers.writefile(dir .. "/jtag.bin", E.u32(E.u32(E.ZERO, 0, 0x0C000000), 0x7C, 0x00008000))
  local r = burn(sim, jt, {})
  eq(r.code, 0, r.err)
  match(r.out, "LOCK%-OUT ef_dbg_jtag_0_dis")
  match(r.out, "LOCK%-OUT wr_lock_dbg_pwd")
  -- UART disable bits and the AES mode: refused without the flag, even confirmed
  local ud = helpers.writefile(dir .. "/uart.bin", E.u32(E.ZERO, 0, 0x000003C1))
  r = burn(sim, ud, {})
  eq(r.code, 0, "the dry run shows the plan: " .. r.err)
  match(r.out, "LOCK%-OUT ef_uart_dis")
  match(r.out, "LOCK%-OUT ef_sf_aes_mode")
  match(r.err, "a real burn needs %-%-allow%-lockout ef_sf_aes_mode,ef_uart_dis")
  r = burn(sim, ud, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/a" })
  eq(r.code, 6, r.err)
  match(r.err, "ef_uart_dis %(UART disable bits%)")
  match(r.err, "%-%-allow%-lockout ef_sf_aes_mode,ef_uart_dis")
  eq(efuse_writes(sim), 0, "nothing burnt")
  r = burn(sim, ud, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/a", "--allow-lockout", "ef_uart_dis" })
  eq(r.code, 6, "one of the two named is not enough: " .. r.err)
  match(r.err, "%-%-allow%-lockout ef_sf_aes_mode")
  r = burn(sim, ud, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/a", "--allow-lockout",
    "ef_uart_dis,ef_sf_aes_mode" })
  eq(r.code, 0, r.err)
  sim:stop()
  eq(string.unpack("<I4", sim:efuse(), 1) & 0x3C3, 0x3C1)
end)

-- item 4: sent, outcome unknown
local function audit_lines(path)
  local out = {}
  for l in helpers.readfile(path):gmatch("[^\n]+") do out[#out + 1] = helpers.json_decode(l) end
  return out
end

local function region_status(rec, name)
  for _, r in ipairs(rec.regions or {}) do if r.region == name then return r.status end end
end

test("4: a write sent but not acknowledged (stall) is read back in the same session; the audit has the truth",
  function()
  local dir = helpers.tmpdir()
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.u32(E.ZERO, 0x100, 0x11), 0, 0x0C000000))
  -- the second write (region 0..127) is done, but its reply comes 7 s late (after the 5 s deadline)
  local sim <close> = helpers.ncpsim{ "--fault", "stall:40:7:2" }
  local audit = dir .. "/audit.jsonl"
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", audit })
  ok(r.code ~= 0, "the burn reports the failed write")
  nomatch(r.err, "not written: 0%.%.127")
  match(r.err, "0%.%.127: written %(read back%)")
  sim:stop()
  local rec = audit_lines(audit)[1]
  eq(region_status(rec, "0..127"), "written (read back)")
  eq(region_status(rec, "256..511"), "written")
  eq(rec.after, codec.hex(sim:efuse()), "the audit's after-state is the chip's")
end)

test("4: the link lost while a write is unanswered: 'sent, outcome unknown', read back at the next connect",
  function()
  local dir = helpers.tmpdir()
  local state = dir .. "/state"
  local env = { XDG_STATE_HOME = dir .. "/xdg" }
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.u32(E.ZERO, 0x100, 0x11), 0, 0x0C000000))
  local audit = dir .. "/audit.jsonl"
  local sim = helpers.ncpsim{ "--state", state, "--fault", "stall:40:60:2" }
  local argv = { "env", "XDG_STATE_HOME=" .. env.XDG_STATE_HOME }
  for _, a in ipairs(helpers.ncpflash_argv{ "--port", sim.url, "efuse", "burn", file, "--insecure-write",
      "--confirm-efuse-burn", "--yes", "--audit", audit }) do argv[#argv + 1] = a end
  local p <close> = helpers.spawn(argv)
  -- wait until the stalled write has set its bits (ncpsim saves a dirty state within a second)
  local deadline = sys.now() + 20
  while sys.now() < deadline do
    local st = sys.stat(state .. "/efuse.bin")
    if st and (string.unpack("<I4", helpers.readfile(state .. "/efuse.bin"), 1) & 0x0C000000) ~= 0 then break end
    sys.sleep(0.1)
  end
  sim:stop()                                  -- the device goes away with the reply unsent
  local code = sys.wait(p.pid, 30)
  eq(code, 4, helpers.readfile(p.err))
  local err = helpers.readfile(p.err)
  match(err, "0%.%.127: sent, outcome unknown")
  local rec = audit_lines(audit)
  eq(#rec, 1)
  eq(region_status(rec[1], "0..127"), "sent, outcome unknown")
  -- the next session on this chip reads it back and records the real after-state
  local sim2 <close> = helpers.ncpsim{ "--state", state }
  local r = helpers.run({ "--port", sim2.url, "info" }, { env = env })
  eq(r.code, 0, r.err)
  match(r.err .. r.out, "the eFuse burn of .* was interrupted: read back now")
  sim2:stop()
  rec = audit_lines(audit)
  eq(#rec, 2, "a second audit record")
  eq(rec[2].result, "read back after an interrupted burn")
  eq(rec[2].after, codec.hex(sim2:efuse()))
  eq(region_status(rec[2], "0..127"), "written (read back)")
  -- and only once
  local sim3 <close> = helpers.ncpsim{ "--state", state }
  eq(helpers.run({ "--port", sim3.url, "info" }, { env = env }).code, 0)
  eq(#audit_lines(audit), 2)
end)
