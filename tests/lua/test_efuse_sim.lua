-- eFuse against ncpsim: burn, repeat, conflicts, faults, dry runs, confirmation, guard rails,
-- MAC slots, the flash --efuse hook. The synthetic file has the same bits as ST's efusedata.bin
-- (st67w611m1.md §2.6) with the key hash of a synthetic signing key, in the same saved format;
-- the fixture tests burn ST's real file.
local sys = require "ncpflash.core.sys"
local codec = require "ncpflash.core.codec"
local efuse = require "ncpflash.efuse"
local header = require "ncpflash.header"
local bl616 = require "ncpflash.chips.bl616"

local signing = require "signing"

local map = efuse.load_map("bl616", "st67w611m1")
-- the synthetic signing key (real P-256: the secure-boot guard verifies the images' signatures)
skip_if(not signing.available(), "the openssl tool is not installed (Debian package openssl): no signed images")
local KEY = signing.available() and signing.keypair() or { xy = string.rep("\0", 64) }
local SYN_PK = KEY.xy
local E = require "efusedata"
local ZERO, ST_HASH, put, u32, st_like = E.ZERO, E.ST_HASH, E.put, E.u32, E.st_like

local function orb(a, b)
  local out = {}
  for i = 1, #a do out[i] = string.char(a:byte(i) | b:byte(i)) end
  return table.concat(out)
end

-- ncpsim's challenge key as a PEM file.
local function sim_key(dir)
  local path = dir .. "/ncpsim-test-key.pem"
  local pid = assert(sys.spawn({ helpers.build .. "/ncpsim", "--print-test-key" }, { stdout = path }))
  eq(sys.wait(pid, 10), 0)
  return path
end

local FOREIGN_PEM = "-----BEGIN PUBLIC KEY-----\n"
  .. "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0fW2TyTEOuuMJOZMNP/rui8vA2X+\n"
  .. "+EJ/7l7NmDz6KppwwwJ5HaE7kK/slcyNJSQDDr7itig+e/zjE2jZsHZATA==\n"
  .. "-----END PUBLIC KEY-----\n"

-- Signed boot images at 0x0 and 0x10000: signed with the synthetic key, or carrying another
-- public key `pk` (with a signature that does not matter: the key hash is refused first).
local function signed(opts, pk)
  if pk then
    opts.sign, opts.public_key = 1, pk
    return header.build(bl616, opts)
  end
  return signing.image(bl616, KEY, opts)
end

local function flash_signed(sim, dir, pk)
  local b2 = helpers.writefile(dir .. "/b2.bin", signed({ image = string.rep("\x5A", 4096), offset = 0x2000 }, pk))
  local fw = helpers.writefile(dir .. "/fw.bin", signed({ image = string.rep("\xA5", 8192), offset = 0x1000 }, pk))
  local r = helpers.run{ "--port", sim.url, "flash", "0", b2, "0x10000", fw }
  eq(r.code, 0, r.err)
end

local efuse_writes = E.efuse_writes

local function raw_efuse(sim, dir)
  local path = dir .. "/raw-" .. math.random(1, 1e9) .. ".bin"
  local r = helpers.run{ "--port", sim.url, "efuse", "read", "--raw", path }
  eq(r.code, 0, r.err)
  return helpers.readfile(path)
end

local function synthetic_file(dir)
  return helpers.writefile(dir .. "/efusedata.bin", efuse.encode_saved(st_like(codec.sha256(SYN_PK)), map))
end

local function burn(sim, file, extra)
  local argv = { "--port", sim.url, "efuse", "burn", file }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  return helpers.run(argv)
end

---------------------------------------------------------------------------------------------------
test("synthetic ST-equivalent file: burns exactly its bits; repeat burn plans nothing, writes nothing",
  function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  flash_signed(sim, dir)
  local before = raw_efuse(sim, dir)
  local audit = dir .. "/audit.jsonl"
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", audit })
  eq(r.code, 0, r.err)
  match(r.out, "burnt %d+ bits in 128%.%.255, 0%.%.127; read back and verified")
  match(r.err, "SECURE BOOT")
  local n = efuse_writes(sim)
  eq(n, 2)
  local r2 = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", audit })
  eq(r2.code, 0, r2.err)
  match(r2.out, "nothing to burn")
  eq(efuse_writes(sim), n, "the repeat burn wrote nothing")
  sim:stop()
  eq(sim:efuse(), orb(before, st_like(codec.sha256(SYN_PK))))
  local lines = helpers.json_lines(helpers.readfile(audit))
  eq(#lines, 1)
  eq(lines[1].result, "ok")
  eq(lines[1].before, codec.hex(before))
  eq(lines[1].after, codec.hex(sim:efuse()))
  eq(lines[1].file_sha256, codec.hex(codec.sha256(helpers.readfile(file))))
  ok(lines[1].chip_id and lines[1].mac and lines[1].time, "chip id, MAC and time recorded")
  -- the log shows the secure path in order: ECDH, challenge, two encrypted writes
  local seq = {}
  for _, l in ipairs(sim:log_lines()) do
    local op = l:match("^0x(%x%x) ")
    if op == "90" or op == "91" or op == "80" or op == "40" then
      seq[#seq + 1] = op .. (l:match("start=(%S+)") or "")
    end
  end
  eq(table.concat(seq, " "), "90 91 800x080 800x000")
end)

test("efuse read on the burnt chip shows the §2.6 field values (--json)", function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  flash_signed(sim, dir)
  eq(burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", dir .. "/a" }).code, 0)
  local r = helpers.run{ "--json", "--port", sim.url, "efuse", "read" }
  eq(r.code, 0, r.err)
  local res
  for _, e in ipairs(helpers.json_lines(r.out)) do if e.event == "result" then res = e end end
  local f = {}
  for _, d in ipairs(res.fields) do f[d.name] = d end
  eq(f.ef_dbg_jtag_0_dis.value, 3)
  eq(f.ef_dbg_jtag_0_dis.meaning, "disabled")
  eq(f.public_key_hash.value, codec.hex(codec.sha256(SYN_PK)))
  eq(f.sign_cfg.value, 1)
  eq(f.wr_lock_rsvd_1.value, 1)
  eq(f.wr_lock_key_slot_0.value, 1)
  eq(f.wr_lock_key_slot_1.value, 1)
  eq(f.unknown_0xdc_bit26.value, 1)
  eq(f.anti_rollback_boot2.value, 0)
  eq(f.anti_rollback_app.value, 0)
  eq(f.mac_slot_0.meaning, "programmed")
  local h = helpers.run{ "--port", sim.url, "efuse", "read" }
  match(h.out, "ef_dbg_jtag_0_dis%s+3 %(disabled%)")
  match(h.out, "sign_cfg%s+1 %(SECURE BOOT%)")
end)

test("ST's efusedata.bin burns exactly its decoded bits over ST-signed headers (fixture)", function()
  if not helpers.have_fixtures() then skip("ST fixtures absent (../shared/fixtures/st67w611m1)") end
  local nb = helpers.ncp_binaries
  local st_file = nb .. "/efusedata.bin"
  if not sys.stat(st_file) then skip("efusedata.bin absent from the fixtures") end
  local dir = helpers.tmpdir()
  local key = sim_key(dir)
  local sim <close> = helpers.ncpsim{}
  -- the whole images: the guard checks their on-chip hash and ST's signature
  local b2 = nb .. "/st67w611m_boot2_v8.1.9.bin"
  local fw = nb .. "/st67w611m_mission_t02_v2.0.89.bin"
  local fl = helpers.run{ "--port", sim.url, "flash", "0", b2, "0x10000", fw }
  eq(fl.code, 0, fl.err)
  local before = raw_efuse(sim, dir)
  local r = burn(sim, st_file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", dir .. "/a" })
  eq(r.code, 0, r.err)
  local decoded = efuse.load_file(st_file, map).data
  eq(decoded, st_like(ST_HASH))
  local r2 = burn(sim, st_file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", dir .. "/a" })
  match(r2.out, "nothing to burn")
  sim:stop()
  eq(sim:efuse(), orb(before, decoded))
end)

test("a conflicting file is refused with exit 6 and nothing is written", function()
  local dir = helpers.tmpdir()
  local key = sim_key(dir)
  local sim <close> = helpers.ncpsim{}
  local before = raw_efuse(sim, dir)
  -- the file wants MAC slot 0 all zero under an explicit mask; the chip has its factory MAC there
  local data = helpers.writefile(dir .. "/c.bin", u32(ZERO, 0, 0x0C000000))
  local mask = helpers.writefile(dir .. "/c_mask.bin", u32(put(ZERO, 0x14, string.rep("\xFF", 6)), 0, 0xFFFFFFFF))
  local r = burn(sim, data, { "--mask", mask, "--confirm-efuse-burn", "--yes", "--root-key", key })
  eq(r.code, 6, r.err)
  match(r.err, "refusing to burn: %d+ conflicts? %(first at 0x014, mac_slot_0")
  match(r.err, "nothing was written")
  eq(efuse_writes(sim), 0)
  sim:stop()
  eq(sim:efuse(), before)
end)

test("an injected fault mid-burn reports which regions were written", function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{ "--fault", "fl:80:0403:2" }
  flash_signed(sim, dir)
  local before = raw_efuse(sim, dir)
  local audit = dir .. "/audit.jsonl"
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", audit })
  eq(r.code, 4, r.err)
  match(r.err, "eFuse regions written: 128%.%.255; not written: 0%.%.127")
  local rec = helpers.json_lines(helpers.readfile(audit))[1]
  eq(rec.result, "failed")
  eq(rec.written[1], "128..255")
  eq(rec.not_written, "0..127")
  sim:stop()
  local after = sim:efuse()
  eq(after:sub(1, 128), before:sub(1, 128), "region 0..127 untouched")
  eq(after:byte(0xDC + 4), before:byte(0xDC + 4) | 0x04, "region 128..255 written")
end)

test("dry run writes nothing; --yes alone is not enough; unconfirmed non-interactive burn refuses", function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  flash_signed(sim, dir)
  local r = burn(sim, file, {})
  eq(r.code, 0, r.err)
  match(r.out, "plan: %d+ bits to set")
  match(r.out, "dry run: nothing was written")
  r = burn(sim, file, { "--root-key", key })
  eq(r.code, 0)
  r = helpers.run{ "--yes", "--port", sim.url, "efuse", "burn", file, "--root-key", key }
  eq(r.code, 6)
  match(r.err, "%-%-yes alone does not burn eFuses")
  r = burn(sim, file, { "--confirm-efuse-burn", "--root-key", key }, {})
  eq(r.code, 6)
  match(r.err, "not confirmed")
  eq(efuse_writes(sim), 0)
end)

test("secure path: no --root-key refuses; a foreign root key fails the challenge; nothing written", function()
  local dir = helpers.tmpdir()
  local file = synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  flash_signed(sim, dir)
  local audit = dir .. "/audit.jsonl"
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--audit", audit })
  eq(r.code, 6)
  match(r.err, "%-%-root%-key")
  match(r.err, "room_root_publickey_ecc%.pem")
  local foreign = helpers.writefile(dir .. "/foreign.pem", FOREIGN_PEM)
  r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", foreign, "--audit", audit })
  eq(r.code, 6)
  match(r.err, "challenge signature %(0x91%) does not verify")
  ok(not sys.stat(audit), "a refusal before the write phase leaves no audit record")
  local bad = helpers.writefile(dir .. "/bad.pem", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
  r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--root-key", bad, "--audit", audit })
  eq(r.code, 7)
  eq(efuse_writes(sim), 0)
end)

test("--insecure-write uses plain 0x40 writes", function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{}
  local file = helpers.writefile(dir .. "/j.bin", u32(ZERO, 0, 0x0C000000))
  local r = burn(sim, file, { "--confirm-efuse-burn", "--yes", "--insecure-write", "--audit", dir .. "/a" })
  eq(r.code, 0, r.err)
  local ops = {}
  for _, l in ipairs(sim:log_lines()) do
    local op = l:match("^0x(%x%x) ")
    if op == "40" or op == "80" or op == "90" then ops[#ops + 1] = op end
  end
  eq(table.concat(ops, " "), "40")
  sim:stop()
  eq(string.unpack("<I4", sim:efuse()), 0x0C000000)
end)

test("secure-boot guard: blank flash, unsigned images and another key are refused", function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  local args = { "--confirm-efuse-burn", "--yes", "--root-key", key }
  local r = burn(sim, file, args)
  eq(r.code, 6)
  match(r.err, "refusing to enable secure boot: no boot image at boot2 @0x0")
  flash_signed(sim, dir, helpers.random_bytes(64, 99))
  r = burn(sim, file, args)
  eq(r.code, 6)
  match(r.err, "signed with key SHA%-256 %x+, but the eFuse data holds")
  local un = helpers.writefile(dir .. "/u.bin",
    header.build(bl616, { image = string.rep("\1", 4096), offset = 0x2000 }))
  eq(helpers.run{ "--port", sim.url, "flash", "0", un }.code, 0)
  r = burn(sim, file, args)
  eq(r.code, 6)
  match(r.err, "is not signed")
  eq(efuse_writes(sim), 0)
end)

test("bad eFuse files exit 7 before connecting", function()
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{}
  local saved = efuse.encode_saved(st_like(codec.sha256(SYN_PK)), map)
  local crc = helpers.writefile(dir .. "/crc.bin", string.pack("<I4", 0x12345678) .. saved:sub(5))
  local r = burn(sim, crc, { "--confirm-efuse-burn", "--yes" })
  eq(r.code, 7)
  match(r.err, "crc%.bin: saved eFuse format: CRC32 of the decrypted data at offset 0 %(0x0%): expected 0x%x+, "
    .. "found 0x12345678")
  local size = helpers.writefile(dir .. "/size.bin", string.rep("\1", 1000))
  r = burn(sim, size, {})
  eq(r.code, 7)
  match(r.err, "size%.bin: file size")
  r = burn(sim, dir .. "/missing.bin", {})
  eq(r.code, 7)
  local n = 0
  for _ in pairs(sim:log_lines()) do n = n + 1 end
  eq(n, 0, "ncpsim saw no command")
end)

test("efuse mac set: next free customer slot, then the other, then refused", function()
  local dir = helpers.tmpdir()
  local key = sim_key(dir)
  local sim <close> = helpers.ncpsim{}
  local args = { "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", dir .. "/a" }
  local function mac(m, extra)
    local argv = { "--port", sim.url, "efuse", "mac", "set", m }
    for _, a in ipairs(extra or args) do argv[#argv + 1] = a end
    return helpers.run(argv)
  end
  local r = mac("02:11:22:33:44:55", {})
  eq(r.code, 0)
  match(r.out, "customer slot 0x64")
  match(r.out, "dry run")
  eq(mac("02:11:22:33:44:55").code, 0)
  r = mac("02:11:22:33:44:55")
  match(r.out, "already programmed")
  r = mac("02:AA:BB:CC:DD:EE")
  eq(r.code, 0, r.err)
  match(r.out, "slot 0x70")
  r = mac("02:00:00:00:00:03")
  eq(r.code, 6)
  match(r.err, "no free customer MAC slot")
  local rd = helpers.run{ "--port", sim.url, "efuse", "read" }
  match(rd.out, "mac_slot_1%s+02:11:22:33:44:55 %(programmed%)")
  match(rd.out, "mac_slot_2%s+02:AA:BB:CC:DD:EE %(programmed%)")
  sim:stop()
  eq(sim:efuse():sub(0x65, 0x6A), codec.unhex("554433221102"))
end)

test("flash --efuse burns after a successful flash; a refused job flashes nothing", function()
  local dir = helpers.tmpdir()
  local key, file = sim_key(dir), synthetic_file(dir)
  local sim <close> = helpers.ncpsim{}
  local b2 = helpers.writefile(dir .. "/b2.bin", signed({ image = string.rep("\x5A", 4096), offset = 0x2000 }))
  local fw = helpers.writefile(dir .. "/fw.bin", signed({ image = string.rep("\xA5", 8192), offset = 0x1000 }))
  local r = helpers.run{ "--port", sim.url, "flash", "0", b2, "0x10000", fw, "--efuse", file,
    "--confirm-efuse-burn", "--yes" }
  eq(r.code, 6)
  match(r.err, "%-%-root%-key")
  eq(#sim:log_lines(), 0, "nothing sent before the refusal")
  r = helpers.run{ "--port", sim.url, "flash", "0", b2, "0x10000", fw, "--efuse", file,
    "--confirm-efuse-burn", "--yes", "--root-key", key, "--audit", dir .. "/a" }
  eq(r.code, 0, r.err)
  match(r.out, "read back and verified")
  sim:stop()
  eq(sim:efuse():sub(0x1D, 0x3C), codec.sha256(SYN_PK))
end)

test("interactive confirmation: only typing BURN on a terminal burns", function()
  helpers.skip_on_windows("the prompt needs script(1)'s pseudo-terminal, and the .exe sees no Windows console")
  local script = sys.stat("/usr/bin/script") and "/usr/bin/script"
  if not script then skip("util-linux script(1) absent: no pseudo-terminal for the prompt") end
  local dir = helpers.tmpdir()
  local sim <close> = helpers.ncpsim{}
  local file = helpers.writefile(dir .. "/j.bin", u32(ZERO, 0, 0x0C000000))
  local function typed(word)
    local cmd = ("%s --port %s efuse burn %s --confirm-efuse-burn --insecure-write --audit %s/a")
      :format(helpers.ncpflash, sim.url, file, dir)
    local out = dir .. "/out-" .. word
    local pid = assert(sys.spawn({ script, "-qec", cmd, "/dev/null" },
      { stdin = helpers.writefile(dir .. "/in-" .. word, word .. "\n"), stdout = out, stderr = out .. ".err" }))
    return sys.wait(pid, 60), helpers.readfile(out)
  end
  local code, out = typed("yes")
  eq(code, 6)
  match(out, "Type BURN to continue")
  match(out, "not confirmed")
  eq(efuse_writes(sim), 0)
  code, out = typed("BURN")
  eq(code, 0, out)
  match(out, "read back and verified")
  eq(efuse_writes(sim), 1)
end)
