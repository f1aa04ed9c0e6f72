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

---------------------------------------------------------------------------------------------------
-- the four defects left after issue 13 (hostile trial): a burn killed at any moment leaves a record,
-- an audit path that cannot be written is a refusal, read-locked bytes are not called verified,
-- and `flash --efuse` refuses before it flashes

local function pending_files(xdg)
  return sys.listdir(xdg .. "/ncpflash/efuse-pending") or {}
end

local function shell_quote(a) return "'" .. tostring(a):gsub("'", "'\\''") .. "'" end

test("a burn killed with SIGKILL while a write is unanswered leaves a pending record; the next connect settles it",
  function()
  helpers.skip_on_windows("SIGKILL to wine does not stop the program the same way")
  local dir = helpers.tmpdir()
  local state, xdg = dir .. "/state", dir .. "/xdg"
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.u32(E.ZERO, 0x100, 0x11), 0, 0x0C000000))
  local audit = dir .. "/audit.jsonl"
  local sim = helpers.ncpsim{ "--state", state, "--fault", "stall:40:60:2" }
  local argv = { "env", "XDG_STATE_HOME=" .. xdg }
  for _, a in ipairs(helpers.ncpflash_argv{ "--port", sim.url, "efuse", "burn", file, "--insecure-write",
      "--confirm-efuse-burn", "--yes", "--audit", audit }) do argv[#argv + 1] = a end
  local p <close> = helpers.spawn(argv)
  local deadline = sys.now() + 20
  while sys.now() < deadline do
    if sys.stat(state .. "/efuse.bin")
        and (string.unpack("<I4", helpers.readfile(state .. "/efuse.bin"), 1) & 0x0C000000) ~= 0 then break end
    sys.sleep(0.1)
  end
  sys.kill(p.pid, "KILL")                      -- no handler runs: only what is on disk counts
  eq(sys.wait(p.pid, 10), 128 + 9)
  p.status = 128 + 9
  sim:stop()
  eq(sim:efuse():byte(0x101), 0x11, "the first write is on the chip")
  eq(#helpers.read_lines(audit), 0, "the killed process appended nothing")
  eq(#pending_files(xdg), 1, "the pending record was on disk before the write")
  local pend = helpers.json_decode(helpers.readfile(xdg .. "/ncpflash/efuse-pending/" .. pending_files(xdg)[1]))
  eq(region_status(pend, "256..511"), "written", "the acknowledged write")
  eq(region_status(pend, "0..127"), "sent, outcome unknown", "the write in flight")
  -- the next connect to this chip reads back and appends the real after-state
  local sim2 <close> = helpers.ncpsim{ "--state", state }
  local r = helpers.run({ "--port", sim2.url, "info" }, { env = { XDG_STATE_HOME = xdg } })
  eq(r.code, 0, r.err)
  match(r.err, "was interrupted: read back now")
  sim2:stop()
  local rec = audit_lines(audit)
  eq(#rec, 1)
  eq(rec[1].result, "read back after an interrupted burn")
  eq(rec[1].after, codec.hex(sim2:efuse()))
  eq(region_status(rec[1], "0..127"), "written (read back)")
  eq(region_status(rec[1], "256..511"), "written")
  eq(#pending_files(xdg), 0, "settled once")
end)

test("a closed stdout pipe (| head -n 1) does not stop a burn: every write, the verify and the audit happen",
  function()
  helpers.skip_on_windows("needs bash and a POSIX pipe")
  local dir = helpers.tmpdir()
  local xdg = dir .. "/xdg"
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.u32(E.ZERO, 0x100, 0x11), 0, 0x0C000000))
  local audit = dir .. "/audit.jsonl"
  local sim <close> = helpers.ncpsim{}
  local words = {}
  for _, a in ipairs(helpers.ncpflash_argv{ "--port", sim.url, "efuse", "burn", file, "--insecure-write",
      "--confirm-efuse-burn", "--yes", "--audit", audit }) do words[#words + 1] = shell_quote(a) end
  -- sys.spawn gives bash (and so ncpflash) the default SIGPIPE action, as a user's shell has
  local script = ("XDG_STATE_HOME=%s %s 2>&1 | head -n 1 >/dev/null; echo ${PIPESTATUS[0]} > %s")
    :format(shell_quote(xdg), table.concat(words, " "), shell_quote(dir .. "/code"))
  local pid = assert(sys.spawn({ "bash", "-c", script }, { stdin = "null", stdout = "null", stderr = "null" }))
  ok(sys.wait(pid, 60), "bash ended")
  eq(helpers.readfile(dir .. "/code"), "0\n", "ncpflash's exit status (141 = killed by SIGPIPE)")
  sim:stop()
  eq(sim:efuse():byte(0x101), 0x11)
  eq(string.unpack("<I4", sim:efuse(), 1) & 0x0C000000, 0x0C000000)
  local rec = audit_lines(audit)
  eq(#rec, 1)
  eq(rec[1].result, "ok")
  eq(rec[1].after, codec.hex(sim:efuse()))
  eq(#pending_files(xdg), 0, "no pending record after an audited burn")
end)

test("an audit file or pending-record folder that cannot be written is a refusal before anything is sent",
  function()
  local dir = helpers.tmpdir()
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.ZERO, 0x100, 0x11))
  local sim <close> = helpers.ncpsim{}
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/nonexistent/audit.jsonl" })
  eq(r.code, 7, r.err)
  match(r.err, "nonexistent/audit%.jsonl")
  match(r.err, "No such file or directory")
  nomatch(r.out .. r.err, "appended")
  eq(#sim:log_lines(), 0, "nothing reached the device")
  -- the pending-record folder: XDG_STATE_HOME is a file
  local notdir = helpers.writefile(dir .. "/notdir", "x")
  r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/a.jsonl" }, { XDG_STATE_HOME = notdir })
  eq(r.code, 7, r.err)
  match(r.err, "notdir/ncpflash/efuse%-pending")
  eq(#sim:log_lines(), 0, "nothing reached the device")
  -- a dry run needs neither
  eq(burn(sim, file, { "--audit", dir .. "/nonexistent/audit.jsonl" }).code, 0)
  eq(efuse_writes(sim), 0)
end)

test("an audit append that fails after the burn is not claimed: the record stays pending for the next connect",
  function()
  helpers.skip_on_windows("/dev/full is a Linux device")
  local dir = helpers.tmpdir()
  local xdg = dir .. "/xdg"
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.ZERO, 0x100, 0x11))
  local sim <close> = helpers.ncpsim{}
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", "/dev/full" }, { XDG_STATE_HOME = xdg })
  nomatch(r.out .. r.err, "audit record appended")
  match(r.err, "could not append the audit record to /dev/full")
  match(r.out, "audit record NOT appended")
  eq(#pending_files(xdg), 1, "kept for the next connect")
end)

test("a key slot burnt with its read lock: the read-locked bytes are reported burnt but unverified, in the audit too",
  function()
  local dir = helpers.tmpdir()
  -- key slot 2 (0x3C..0x4B) and rd_lock_key_slot_2 (0x7C bit 29)
  local key = string.char(table.unpack({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }))
  local file = helpers.writefile(dir .. "/key2.bin", E.u32(E.put(E.ZERO, 0x3C, key), 0x7C, 1 << 29))
  local audit = dir .. "/audit.jsonl"
  local sim <close> = helpers.ncpsim{}
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", audit })
  eq(r.code, 0, "every readable bit verified: " .. r.err)
  nomatch(r.out, "read back and verified;")
  match(r.out, "verified 1 bit; 33 bits in 16 bytes 0x03C%.%.0x04B read%-locked %(rd_lock_key_slot_2%), cannot be "
    .. "read back: burnt but unverified")
  sim:stop()
  eq(sim:efuse():sub(0x3D, 0x4C), key, "the key is on the chip")
  local rec = audit_lines(audit)[1]
  eq(rec.result, "ok")
  eq(rec.verified_bits, 1)
  eq(#rec.unverified, 1)
  eq(rec.unverified[1].range, "0x03C..0x04B")
  eq(rec.unverified[1].bits, 33)
  eq(rec.unverified[1].lock, "rd_lock_key_slot_2")
end)

-- the flash commands that change flash, in an ncpsim log
local function flash_changes(sim)
  local n = 0
  for _, l in ipairs(sim:log_lines()) do
    if l:match("^0x30 ") or l:match("^0x31 ") or l:match("^0x3C ") or l:match("^0x3F ") then n = n + 1 end
  end
  return n
end

test("flash --efuse: every refusal of the eFuse step comes before anything is flashed", function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(65536, 5))
  local sim <close> = helpers.ncpsim{}
  local function flash_efuse(ef, extra)
    local argv = { "--port", sim.url, "flash", "0x10000", fw, "--efuse", ef, "--confirm-efuse-burn", "--yes",
      "--insecure-write", "--audit", dir .. "/audit.jsonl" }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    return helpers.run(argv)
  end
  -- file side (no chip needed): a lock-out field without --allow-lockout, an audit path that cannot be written
  local ud = helpers.writefile(dir .. "/uartdis.bin", E.u32(E.ZERO, 0, 1 << 6))
  local r = flash_efuse(ud)
  eq(r.code, 6, r.err)
  match(r.err, "ef_uart_dis .*%-%-allow%-lockout ef_uart_dis")
  match(r.err, "nothing was flashed")
  eq(#sim:log_lines(), 0, "refused before connecting")
  local ok_file = helpers.writefile(dir .. "/ok.bin", E.u32(E.ZERO, 0x100, 0x11))
  r = flash_efuse(ok_file, { "--audit", dir .. "/nonexistent/audit.jsonl" })
  eq(r.code, 7, r.err)
  match(r.err, "nonexistent/audit%.jsonl: No such file or directory")
  eq(#sim:log_lines(), 0, "refused before connecting")
  -- chip side (a plan against the chip's eFuse): a conflict is refused after connect, before any flash command
  eq(burn(sim, ok_file, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/audit.jsonl" }).code, 0)
  local before_log = #sim:log_lines()
  local want = helpers.writefile(dir .. "/b.bin", E.u32(E.ZERO, 0x100, 0x22))
  local mask = helpers.writefile(dir .. "/b_mask.bin", E.u32(E.ZERO, 0x100, 0xFF))
  r = flash_efuse(want, { "--efuse-mask", mask })
  eq(r.code, 6, r.err)
  match(r.err, "refusing to burn: .*conflict")
  match(r.err, "nothing was flashed")
  sim:stop()
  local lines = sim:log_lines()
  ok(#lines > before_log, "it connected and read the eFuse")
  eq(flash_changes(sim), 0, "no erase or write reached the flash")
  ok(sim:flash():sub(0x10001, 0x20000) ~= helpers.readfile(fw), "fw.bin is not on the chip")
  eq(sim:flash(), string.rep("\xFF", #sim:flash()), "flash.bin unchanged (blank)")
end)

test("a pending record that cannot be settled is never overwritten: the next burn on that chip is refused", function()
  local dir = helpers.tmpdir()
  local xdg = dir .. "/xdg"
  local sim <close> = helpers.ncpsim{}
  ok(sim.chip_id, "ncpsim's chip id")
  assert(sys.mkdirs(xdg .. "/ncpflash/efuse-pending"))
  local pend = xdg .. "/ncpflash/efuse-pending/" .. sim.chip_id .. ".json"
  helpers.writefile(pend, ('{"v":1,"chip_id":"%s","file":"old.bin","to_set":"%s","spans":[[256,256]],'
    .. '"regions":[{"region":"256..511","status":"sent, outcome unknown"}],"audit":"%s/gone/audit.jsonl",'
    .. '"chip":"bl616","board":"st67w611m1"}'):format(sim.chip_id, string.rep("00", 512), dir))
  local file = helpers.writefile(dir .. "/ef.bin", E.u32(E.ZERO, 0x100, 0x11))
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", dir .. "/a.jsonl" }, { XDG_STATE_HOME = xdg })
  eq(r.code, 6, r.err)
  match(r.err, "could not read back the eFuse of an interrupted burn")
  match(r.err, "not settled yet")
  eq(efuse_writes(sim), 0, "nothing burnt")
  eq(helpers.readfile(pend):match('"file":"(.-)"'), "old.bin", "the old record is kept")
end)

test("flash --efuse: the secure-boot guard runs over the images as they will be, before anything is flashed",
  function()
  local dir = helpers.tmpdir()
  local fw = helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(65536, 9))
  local ef = helpers.writefile(dir .. "/st.bin", E.st_like(E.ST_HASH))
  local sim <close> = helpers.ncpsim{}
  local r = helpers.run{ "--port", sim.url, "flash", "0x10000", fw, "--efuse", ef, "--confirm-efuse-burn", "--yes",
    "--insecure-write", "--audit", dir .. "/audit.jsonl" }
  eq(r.code, 6, r.err)
  match(r.err, "refusing to enable secure boot: no boot image at boot2 @0x0 .*%(nothing was flashed or burnt%)")
  sim:stop()
  eq(flash_changes(sim), 0, "no erase or write reached the flash")
  eq(efuse_writes(sim), 0)
  eq(sim:flash(), string.rep("\xFF", #sim:flash()), "flash.bin unchanged (blank)")
end)
