-- ST's update jobs on synthetic X-CUBE-ST67W61 releases (issue 15, points 1 and 2): the 1.3.0
-- layout (template inis, several versions with .bin.ota/.xz.ota beside them), 1.2.0 and 1.1.0;
-- --version; flash --config on a template; the eFuse step (dry run, burn, second run = 0 bits,
-- root key in the release, refusals before anything is sent); the retry of a failed flash.
local sys = require "ncpflash.core.sys"
local codec = require "ncpflash.core.codec"
local layout = require "ncpflash.release_layout"
local board = require "ncpflash.boards.st67w611m1"
local SR = require "strelease"
local E = require "efusedata"

local SIZE = 4 * 1024 * 1024

local function orb(a, b)
  local out = {}
  for i = 1, #a do out[i] = string.char(a:byte(i) | b:byte(i)) end
  return table.concat(out)
end

local function run(sim, args, opts)
  local argv = { "--port", sim.url }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return helpers.run(argv, opts)
end

local efuse_writes = E.efuse_writes

local function commands(sim)
  local n = 0
  for _, l in ipairs(sim:log_lines()) do if l:match("^0x%x%x ") then n = n + 1 end end
  return n
end

local function result(out)
  local res
  for _, e in ipairs(helpers.json_lines(out)) do if e.event == "result" then res = e end end
  return res
end

-- the flash must equal the release's set on an erased chip, byte for byte
local function same_flash(got, want, what)
  if got == want then return end
  for i = 1, #want do
    if got:byte(i) ~= want:byte(i) then
      error(("%s: flash differs first at 0x%X (0x%02X, expected 0x%02X)"):format(what or "flash", i - 1,
        got:byte(i), want:byte(i)), 2)
    end
  end
end

---------------------------------------------------------------------------------------------------
-- selection (pure)

test("version order is numeric per component (2.0.106 after 2.0.97), text forms are checked", function()
  ok(layout.compare("2.0.89", "2.0.97"))
  ok(layout.compare("2.0.97", "2.0.106"))
  ok(layout.compare("2.0.9", "2.0.10"))
  ok(not layout.compare("2.0.106", "2.0.106"))
  ok(layout.compare("2.0", "2.0.1"))
  eq(select(2, layout.parse_version("v2.0.106")), "2.0.106")
  eq(layout.parse_version("2..0"), nil)
  eq(layout.parse_version("2.0."), nil)
  eq(layout.parse_version("latest"), nil)
  eq(layout.version_list({ "2.0.106", "2.0.89", "2.0.97" }), "2.0.89, 2.0.97, 2.0.106")
end)

test("1.3.0 layout: the template ini, the newest of three versions, --version, a missing version", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.3" })
  -- a leftover of ST's script and a file that is no firmware must not count
  helpers.writefile(R.nb .. "/mission_t02_flash_prog_cfg_auto.ini", "[cfg]\nerase = 2\n")
  helpers.writefile(R.nb .. "/st67w611m_mission_t02_v9.9.9.bin.ota", "x")
  local sel = layout.select(board, "mission_t02", R.root)
  eq(sel.ini, R.nb .. "/mission_t02_flash_prog_cfg.ini")
  eq(sel.version, "2.0.106")
  eq(sel.versions, { "2.0.89", "2.0.97", "2.0.106" })
  ok(sel.template)
  eq(sel.firmware, R.nb .. "/st67w611m_mission_t02_v2.0.106.bin")
  eq(sel.substitute, { ["st67w611m_mission_t02_vxxx.bin"] = "st67w611m_mission_t02_v2.0.106.bin" })
  match(layout.describe(sel, "mission_t02"), "st67w611m_mission_t02_v2%.0%.106%.bin %(the newest of 2%.0%.89, "
    .. "2%.0%.97, 2%.0%.106")
  sel = layout.select(board, "mission_t02", R.nb, "v2.0.97")
  eq(sel.version, "2.0.97")
  match(layout.describe(sel, "mission_t02"), "asked for with %-%-version")
  local e = raises(function() layout.select(board, "mission_t02", R.root, "2.0.100") end, "input")
  match(e.message, "firmware version 2%.0%.100 is not in .*NCP_Binaries %(present: 2%.0%.89, 2%.0%.97, 2%.0%.106%)")
  e = raises(function() layout.select(board, "mission_t02", R.root, "newest") end, "usage")
  match(e.message, "expected a version like 2%.0%.106")
  -- the ini itself works as FOLDER too
  eq(layout.select(board, "mfg", R.nb .. "/mfg_flash_prog_cfg.ini").version, "2.0.106")
  -- a template with one version left: that one; with none: said so
  for _, v in ipairs({ "2.0.89", "2.0.97" }) do os.remove(R.nb .. "/st67w611m_mfg_v" .. v .. ".bin") end
  sel = layout.select(board, "mfg", R.root)
  eq(sel.version, "2.0.106")
  match(layout.describe(sel, "mfg"), "the only version there")
  os.remove(R.nb .. "/st67w611m_mfg_v2.0.106.bin")
  e = raises(function() layout.select(board, "mfg", R.root) end, "input")
  match(e.message, "mfg_flash_prog_cfg%.ini:%d+: %[FW%] filedir %./st67w611m_mfg_vxxx%.bin is a template, and .* holds "
    .. "no st67w611m_mfg_v<version>%.bin")
end)

test("1.2.0 layout: the main ini names the newest, the _v2.0.89 copy the older one", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.2", versions = { "2.0.89", "2.0.97" } })
  local sel = layout.select(board, "mission_t01", R.root)
  eq(sel.ini, R.nb .. "/mission_t01_flash_prog_cfg.ini")
  eq(sel.version, "2.0.97")
  ok(not sel.template)
  sel = layout.select(board, "mission_t01", R.root, "2.0.89")
  eq(sel.ini, R.nb .. "/mission_t01_flash_prog_cfg_v2.0.89.ini")
  -- 1.1.0: one ini, one version
  local R1 = SR.build(helpers.tmpdir(), { layout = "1.1", versions = { "2.0.89" } })
  eq(layout.select(board, "mfg", R1.root).version, "2.0.89")
  raises(function() layout.select(board, "mfg", R1.root, "2.0.97") end, "input")
end)

test("the real v2.0.89 release folder (fixtures)", function()
  if not helpers.have_fixtures() then skip("ST fixtures absent (../shared/fixtures/st67w611m1)") end
  for _, p in ipairs({ "mission_t01", "mission_t02", "mfg" }) do
    local sel = layout.select(board, p, helpers.fixtures)
    eq(sel.version, "2.0.89")
    match(sel.ini, p .. "_flash_prog_cfg_v2%.0%.89%.ini$")
  end
end)

skip_if(not io.open(helpers.build .. "/ncpsim"), "build/ncpsim not built")

---------------------------------------------------------------------------------------------------
-- flashing

test("mission_t02 on a 1.3.0 release: the newest lands byte-exact, --version another; it says which", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.3" })
  local sim <close> = helpers.ncpsim{}
  local r = run(sim, { "st67w611m1/mission_t02", R.root, "--no-efuse" })
  eq(r.code, 0, r.err)
  match(r.out, "mission_t02: firmware st67w611m_mission_t02_v2%.0%.106%.bin %(the newest of 2%.0%.89, 2%.0%.97, "
    .. "2%.0%.106; %-%-version X%.Y%.Z picks another%)")
  match(r.out, "st67w611m_mission_t02_v2%.0%.106%.bin flashed and verified")
  match(r.err, "eFuse step skipped %(%-%-no%-efuse%)")
  sim:stop()
  same_flash(sim:flash(), R.expected("mission_t02", "2.0.106", SIZE), "newest")
  local sim2 <close> = helpers.ncpsim{}
  r = run(sim2, { "--json", "st67w611m1/mission_t02", R.root, "--version", "2.0.89", "--no-efuse" })
  eq(r.code, 0, r.err)
  local res = result(r.out)
  eq(res.version, "2.0.89")
  eq(res.firmware, R.nb .. "/st67w611m_mission_t02_v2.0.89.bin")
  eq(res.efuse, "skipped")
  sim2:stop()
  same_flash(sim2:flash(), R.expected("mission_t02", "2.0.89", SIZE), "--version 2.0.89")
end)

test("a version that is not there: exit 7 listing those that are, nothing sent", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.3" })
  local sim <close> = helpers.ncpsim{}
  local r = run(sim, { "st67w611m1/mission_t01", R.root, "--version=2.0.100" })
  eq(r.code, 7, r.err)
  match(r.err, "firmware version 2%.0%.100 is not in .* %(present: 2%.0%.89, 2%.0%.97, 2%.0%.106%)")
  match(r.err, "drop %-%-version for the newest %(2%.0%.106%)")
  eq(commands(sim), 0, "ncpsim saw no command")
end)

test("flash --config on a 1.3.0 template explains how to choose (exit 7, nothing sent)", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.3" })
  local sim <close> = helpers.ncpsim{}
  local ini = R.nb .. "/mission_t02_flash_prog_cfg.ini"
  local r = run(sim, { "flash", "--config", ini })
  eq(r.code, 7, r.err)
  match(r.err, "mission_t02_flash_prog_cfg%.ini:%d+: %[FW%] filedir %./st67w611m_mission_t02_vxxx%.bin is a template")
  match(r.err, "holds versions 2%.0%.89, 2%.0%.97, 2%.0%.106")
  match(r.err, "ncpflash st67w611m1/mission_t02 " .. ini:gsub("%p", "%%%0") .. "` takes the newest")
  match(r.err, "%-%-version X%.Y%.Z")
  eq(commands(sim), 0)
  -- and the profile recipe given that ini does the job
  r = run(sim, { "st67w611m1/mission_t02", ini, "--version", "2.0.97", "--no-efuse" })
  eq(r.code, 0, r.err)
  sim:stop()
  same_flash(sim:flash(), R.expected("mission_t02", "2.0.97", SIZE))
end)

test("mfg on a 1.2.0 release (erase = 1 keeps the other sectors)", function()
  local R = SR.build(helpers.tmpdir(), { layout = "1.2", versions = { "2.0.89", "2.0.97" } })
  local dir = helpers.tmpdir()
  local base = helpers.random_bytes(SIZE, 77)
  helpers.writefile(dir .. "/flash.bin", base)
  local sim <close> = helpers.ncpsim{ "--state", dir }
  local r = run(sim, { "st67w611m1/mfg", R.root, "--version", "2.0.89", "--no-efuse" })
  eq(r.code, 0, r.err)
  match(r.out, "mfg_flash_prog_cfg_v2%.0%.89%.ini")
  sim:stop()
  local got = sim:flash()
  eq(got:sub(0x10000 + 1, 0x10000 + #R.images.mfg["2.0.89"]), R.images.mfg["2.0.89"])
  eq(got:sub(0x3F0000 + 1, 0x3F1000), base:sub(0x3F0000 + 1, 0x3F1000), "a sector no file covers is as it was")
end)

---------------------------------------------------------------------------------------------------
-- the eFuse step

test("eFuse step: a dry run by default (flash done, eFuse untouched, the module said NOT locked)", function()
  local R = SR.build(helpers.tmpdir(), { key = SR.sim_key() })
  local sim <close> = helpers.ncpsim{}
  local r = run(sim, { "st67w611m1/mission_t02", R.root })
  eq(r.code, 0, r.err)
  match(r.err, "ST's scripts lock the module with efusedata%.bin on every flash %(JTAG Disabled, Public Key Filled, "
    .. "Anti%-rollback Enabled")
  match(r.out, "root key: .*QConn_Flash/utils/pem/room_root_publickey_ecc%.pem %(found in the release%)")
  match(r.out, "plan: %d+ bits to set")
  match(r.out, "dry run: nothing was written")
  match(r.out, "eFuse: dry run, the module is NOT locked yet")
  eq(efuse_writes(sim), 0)
  sim:stop()
  local before = sim:efuse()
  eq(before:sub(0x1D, 0x3C), string.rep("\0", 32), "no key hash burnt")
  same_flash(sim:flash(), R.expected("mission_t02", "2.0.106", SIZE))
end)

test("eFuse step burnt (--confirm-efuse-burn --yes): exactly efusedata.bin's bits, audit; a second run "
  .. "burns nothing", function()
  local dir = helpers.tmpdir()
  local R = SR.build(dir, { key = SR.sim_key(), key_at = "ncp_info" })
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local audit = dir .. "/audit.jsonl"
  -- the eFuse before: read with the plain command
  local raw = dir .. "/before.bin"
  eq(run(sim, { "efuse", "read", "--raw", raw }).code, 0)
  local before = helpers.readfile(raw)
  local r = run(sim, { "--yes", "--json", "st67w611m1/mission_t01", R.root, "--confirm-efuse-burn", "--audit", audit })
  eq(r.code, 0, r.err)
  local res = result(r.out)
  eq(res.efuse, "burnt")
  eq(res.version, "2.0.106")
  match(table.concat(res.summary, "\n"), "eFuse: %d+ bits burnt, read back and verified")
  local n = efuse_writes(sim)
  eq(n, 2, "two secure writes (128..255, 0..127)")
  local recs = helpers.json_lines(helpers.readfile(audit))
  eq(#recs, 1)
  eq(recs[1].result, "ok")
  match(recs[1].command, "st67w611m1/mission_t01 %(eFuse step%)")
  eq(recs[1].file_sha256, codec.hex(codec.sha256(helpers.readfile(R.nb .. "/efusedata.bin"))))
  -- the second run: flashed again, nothing to burn
  r = run(sim, { "--yes", "st67w611m1/mission_t01", R.root, "--confirm-efuse-burn", "--audit", audit })
  eq(r.code, 0, r.err)
  match(r.out, "nothing to burn: every wanted bit is already set")
  match(r.out, "eFuse: the module already holds efusedata%.bin %(%d+ bits set, 0 to set%): nothing burnt")
  eq(efuse_writes(sim), n, "no second burn")
  sim:stop()
  eq(sim:efuse(), orb(before, R.efuse_data))
  same_flash(sim:flash(), R.expected("mission_t01", "2.0.106", SIZE))
end)

test("a module burnt before with the same data (by ST's tool): 0 bits to set, no eFuse write", function()
  local dir = helpers.tmpdir()
  local R = SR.build(dir, { key = SR.sim_key() })
  -- ncpsim's factory eFuse, then ST's data on top, as the state a locked module starts in
  local sim0 <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  sim0:stop()
  helpers.writefile(dir .. "/state/efuse.bin", orb(sim0:efuse(), R.efuse_data))
  local sim <close> = helpers.ncpsim{ "--state", dir .. "/state" }
  local r = run(sim, { "--yes", "--json", "st67w611m1/mission_t02", R.root, "--confirm-efuse-burn",
    "--audit", dir .. "/a" })
  eq(r.code, 0, r.err)
  local res = result(r.out)
  eq(res.efuse, "already")
  eq(efuse_writes(sim), 0)
  ok(not sys.stat(dir .. "/a"), "no audit record: nothing was burnt")
end)

test("eFuse refusals happen before anything is sent", function()
  local R = SR.build(helpers.tmpdir(), { key = false })
  local sim <close> = helpers.ncpsim{}
  -- no root key in the release, burn asked for
  local r = run(sim, { "--yes", "st67w611m1/mission_t02", R.root, "--confirm-efuse-burn" })
  eq(r.code, 6, r.err)
  match(r.err, "the release has none %(looked at .*Binaries/QConn_Flash/utils/pem/room_root_publickey_ecc%.pem, "
    .. ".*Binaries/NCP_info/utils/pem/room_root_publickey_ecc%.pem%): give %-%-root%-key PEM %(nothing was flashed%)")
  -- --yes alone
  r = run(sim, { "--yes", "st67w611m1/mission_t02", R.root })
  eq(r.code, 6)
  match(r.err, "%-%-yes alone does not burn eFuses")
  -- confirmed, but nobody to type BURN
  r = run(sim, { "st67w611m1/mission_t02", R.root, "--confirm-efuse-burn", "--root-key", R.nb .. "/partition.bin" })
  eq(r.code, 6)
  match(r.err, "not one; add %-%-yes for automation %(nothing was flashed%)")
  eq(commands(sim), 0, "ncpsim saw no command")
  -- without a key the dry run works (it needs none)
  r = run(sim, { "st67w611m1/mission_t02", R.root })
  eq(r.code, 0, r.err)
  match(r.out, "dry run: nothing was written")
  -- no efusedata.bin
  sim:stop()
  local sim2 <close> = helpers.ncpsim{}
  os.remove(R.nb .. "/efusedata.bin")
  r = run(sim2, { "st67w611m1/mission_t02", R.root })
  eq(r.code, 7)
  match(r.err, "efusedata%.bin not found next to")
  match(r.err, "%-%-no%-efuse flashes without the eFuse step")
  eq(commands(sim2), 0, "ncpsim saw no command")
  r = run(sim2, { "st67w611m1/mission_t02", R.root, "--no-efuse", "--confirm-efuse-burn" })
  eq(r.code, 2)
  match(r.err, "contradict")
end)

---------------------------------------------------------------------------------------------------
-- the retry

test("a failed flash is retried once (handshake ignored 3 times): a new connect, the whole set", function()
  local R = SR.build(helpers.tmpdir(), {})
  local sim <close> = helpers.ncpsim{ "--fault", "flaky:3" }
  local r = run(sim, { "--json", "st67w611m1/mission_t02", R.root, "--no-efuse" })
  eq(r.code, 0, r.err)
  local warned
  for _, e in ipairs(helpers.json_lines(r.out)) do
    if e.event == "warn" and e.retry then warned = e.message end
  end
  ok(warned, "a retry warning")
  match(warned, "retrying once in 1 s, as ST's script does: a new reset and handshake, then the whole image set "
    .. "again %(the chip erase included%); the eFuse step had not begun")
  eq(result(r.out).attempts, 2)
  sim:stop()
  same_flash(sim:flash(), R.expected("mission_t02", "2.0.106", SIZE))
  -- --no-retry: the same fault is the end
  local sim2 <close> = helpers.ncpsim{ "--fault", "flaky:3" }
  r = run(sim2, { "st67w611m1/mission_t02", R.root, "--no-efuse", "--no-retry" })
  eq(r.code, 3, r.err)
end)

test("a device error every time: retried once, then exit 4 saying so", function()
  local R = SR.build(helpers.tmpdir(), {})
  local sim <close> = helpers.ncpsim{ "--fault", "fl:3A:0031:0" }
  local r = run(sim, { "st67w611m1/mission_t02", R.root, "--no-efuse" })
  eq(r.code, 4, r.err)
  match(r.err, "retrying once")
  match(r.err, "%(after one retry%)")
  local n = 0
  for _, l in ipairs(sim:log_lines()) do if l:match("^0x3A ") then n = n + 1 end end
  eq(n, 4, "the first region's write check: twice in each of the two runs")
end)

test("a failure inside the eFuse burn is not retried (bits may be burnt): exit 4, regions named", function()
  local dir = helpers.tmpdir()
  local R = SR.build(dir, { key = SR.sim_key() })
  local sim <close> = helpers.ncpsim{ "--fault", "fl:80:0403:2" }
  local r = run(sim, { "--yes", "st67w611m1/mission_t02", R.root, "--confirm-efuse-burn", "--audit", dir .. "/a" })
  eq(r.code, 4, r.err)
  match(r.err, "not retried: the eFuse step had started")
  match(r.err, "eFuse regions written: 128%.%.255; not written: 0%.%.127")
  ok(not r.err:find("retrying once"), "no retry")
  local rec = helpers.json_lines(helpers.readfile(dir .. "/a"))[1]
  eq(rec.result, "failed")
  -- a rerun re-reads the chip and burns only what is missing
  local sim_state = sim.state
  sim:stop()
  local sim2 <close> = helpers.ncpsim{ "--state", sim_state }
  r = run(sim2, { "--yes", "st67w611m1/mission_t02", R.root, "--confirm-efuse-burn", "--audit", dir .. "/a" })
  eq(r.code, 0, r.err)
  eq(efuse_writes(sim2), 1, "only region 0..127 is written the second time")
  sim2:stop()
  eq(sim2:efuse():sub(0x1D, 0x3C), codec.sha256(SR.PK))
  eq(string.unpack("<I4", sim2:efuse(), 0x7C + 1) & 0x00061000, 0x00061000)
  local _ = E
end)
