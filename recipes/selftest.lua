-- selftest: what a real module accepts, measured safely, recorded for a bug report (issue 14).
local codec = require("ncpflash.core.codec")
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local partition = require("ncpflash.partition")
local util = require("ncpflash.util")
local json = require("ncpflash.json")

local SECTOR = 4096

-- What the default (strict) ncpsim answers; a real module that answers otherwise is worth a
-- report, with the ncpsim option that models it.
local NCPSIM = { boot_info_len = 28, jedec = "C46016", jedec_flag = 0x00, probe = "FL 0x0102",
  sector_ms = 45 }

local function ms(t) return t and string.format("%.1f ms", t * 1000) or "-" end

-- A sector for the write test: --sector, else one the partition table leaves free (highest
-- first), else the last sector of a partition of type "reserved". Never the boot area (boot2
-- and the partition tables, below the firmware start).
local function pick_sector(s, a, layout)
  local size = s.flash_size or 0x400000
  local low = layout.firmware or 0x10000
  if a.sector then
    if a.sector % SECTOR ~= 0 or a.sector + SECTOR > size then
      errors.raise("usage", string.format("--sector 0x%X: give a 4 KiB-aligned address below 0x%X", a.sector, size))
    end
    if a.sector < low then
      errors.raise("safety", string.format("--sector 0x%X is in the boot area (below 0x%X: boot2, partition tables)",
        a.sector, low))
    end
    return a.sector, "given with --sector"
  end
  local pt, where
  for _, addr in ipairs(layout.partition_table or {}) do
    local ok, t = pcall(partition.parse, s:read(addr, 4096), { file = string.format("flash@0x%X", addr) })
    if ok then pt, where = t, addr; break end
  end
  if not pt then
    errors.raise("usage", "selftest --write-test: no valid partition table on flash, so no sector is known to be "
      .. "unused; give --sector ADDR of a sector you can lose (it is restored afterwards)")
  end
  local used = { { 0, low } }
  for _, e in ipairs(pt.entries) do
    if e.size0 > 0 then used[#used + 1] = { e.address0, e.address0 + e.size0 } end
    if e.size1 > 0 then used[#used + 1] = { e.address1, e.address1 + e.size1 } end
  end
  for addr = size - SECTOR, low, -SECTOR do
    local free = true
    for _, u in ipairs(used) do if addr < u[2] and addr + SECTOR > u[1] then free = false; break end end
    if free then return addr, string.format("not in any entry of the partition table at 0x%X", where) end
  end
  for _, e in ipairs(pt.entries) do
    if e.type_name == "reserved" and e.size0 >= SECTOR then
      return e.address0 + e.size0 - SECTOR, string.format("last sector of '%s', a reserved partition (the table at "
        .. "0x%X leaves no gap)", e.name, where)
    end
  end
  errors.raise("usage", "selftest --write-test: the partition table leaves no sector unused; give --sector ADDR")
end

-- 4 KiB of a pattern no flash holds by chance, the same for the same chip and address (a replay
-- of the trace sends the same bytes).
local function pattern(chip_id, addr)
  local out, h = {}, codec.sha256(chip_id .. string.format("%08x", addr))
  while #out * 32 < SECTOR do h = codec.sha256(h); out[#out + 1] = h end
  return table.concat(out):sub(1, SECTOR)
end

local function write_test(ctx, s, a, rep)
  local layout = (s.board and s.board.flash_layout) or s.chip.flash_layout or {}
  local addr, why = pick_sector(s, a, layout)
  local w = { address = addr, why = why }
  rep.write_test = w
  ctx.ev:stage("selftest-write", { address = addr, detail = string.format("sector 0x%X (%s)", addr, why) })
  local orig = s:read(addr, SECTOR)
  w.saved = a.save or string.format("ncpflash-selftest-sector-%06X.bin", addr)
  util.writefile(w.saved, orig)   -- the original, in case the restore is interrupted
  local ff = string.rep("\255", SECTOR)
  local data = pattern(s:boot_info().chip_id, addr)
  local ok, err = errors.catch(function()
    s:flash_config()
    local t0 = sys.now()
    s:erase(addr, SECTOR)
    w.erase_seconds = sys.now() - t0
    w.erased = s:sha256(addr, SECTOR) == codec.sha256(ff)
    local rt = s.chip.rom_timeout
    if rt then s:set_rom_timeout(rt.short) end
    t0 = sys.now()
    s:write(addr, data, { compress = false })
    s:write_check()
    w.write_seconds = sys.now() - t0
    w.written = s:sha256(addr, SECTOR) == codec.sha256(data)
  end)
  -- restore whatever happened above
  local rok, rerr = errors.catch(function()
    local t0 = sys.now()
    s:erase(addr, SECTOR)
    w.erase2_seconds = sys.now() - t0
    if orig ~= ff then s:write(addr, orig, { compress = false }); s:write_check() end
    w.restored = s:sha256(addr, SECTOR) == codec.sha256(orig)
  end)
  if not rok or not w.restored then
    errors.raise("verify", string.format("selftest: sector 0x%X could not be restored (%s); its original content is "
      .. "in %s: write it back with 'ncpflash flash 0x%X %s'", addr, rok and "its SHA-256 differs" or
      tostring(rerr.message or rerr), w.saved, addr, w.saved), { address = addr, saved = w.saved })
  end
  if not ok then error(err, 0) end
  if w.restored then os.remove(w.saved); w.saved = nil end
  return w
end

return {
  help = "measure a real module safely and record the session for a report: handshake, boot info, eFuse, "
    .. "JEDEC id, the frame-size probe, timings; --write-test also erases, writes and restores one unused sector",
  args = {
    { "--write-test", flag = true, help = "also erase, write, verify and restore one sector the partition table "
      .. "marks unused (its content is saved to a file first)" },
    { "--sector", type = "u32", help = "with --write-test: this sector instead (4 KiB-aligned, not the boot area)" },
    { "--save", type = "path", help = "with --write-test: where to save the sector first "
      .. "(default ncpflash-selftest-sector-ADDR.bin)" },
    { "--out", type = "path", help = "also write the report as JSON to this file" },
  },
  run = function(ctx, a)
    -- the whole session goes to a trace unless one was asked for: it is the point of the report
    if not ctx.opts.trace_file and not ctx.opts.trace then
      ctx.opts.trace_file = "ncpflash-selftest-" .. os.date("%Y%m%d-%H%M%S") .. ".trace"
    end
    local rep = { command = "selftest", trace = ctx.opts.trace_file or "stderr", differs = {} }
    local function differs(fmt, ...)
      rep.differs[#rep.differs + 1] = string.format(fmt, ...)
    end
    local t0 = sys.now()
    local s <close> = ctx:connect({ frame_size = false })
    rep.connect_seconds = sys.now() - t0
    local bi = s:boot_info()
    rep.handshake = { probed = s.probed or false, attempts = s.attempts and #s.attempts or 0,
      strategy = s.handshake and s.handshake.strategy, seconds = s.handshake and s.handshake.seconds,
      sync_to_ok = s.stats.sync_ok, baud = s.handshake and s.handshake.baud }
    rep.clk_set = { baud = s.baud, ack_seconds = s.stats.clk_set, wait = s.chip.baud_switch_guard,
      first_command_seconds = s.stats.first_command }
    rep.boot_info = { hex = codec.hex(bi.raw), length = bi.length, rom_version = bi.rom_version,
      chip_id = bi.chip_id, secure_boot = bi.secure_boot, encrypted = bi.encrypted }
    if bi.length ~= NCPSIM.boot_info_len then
      differs("boot info is %d bytes, ncpsim's %d (ncpsim --boot-info %s)", bi.length, NCPSIM.boot_info_len,
        rep.boot_info.hex)
    end
    -- eFuse, plain read
    local ef = s:cmd("EFUSE_READ", string.pack("<I4I4", 0, 512), { data = true, timeout = 5 })
    local set = 0
    for i = 1, #ef do if ef:byte(i) ~= 0 then set = set + 1 end end
    rep.efuse = { bytes = #ef, nonzero = set, sha256 = codec.hex(codec.sha256(ef)) }
    -- flash
    local jedec, size, jid = s:jedec()
    rep.flash = { jedec = jedec, flag = jid and jid.flag, size = size, part = s.flash_part and s.flash_part.name,
      config = s.flash_config_source }
    if jedec ~= NCPSIM.jedec then differs("flash %s, ncpsim's %s (ncpsim --jedec %s00)", jedec, NCPSIM.jedec,
      jedec:lower()) end
    if jid and jid.flag ~= NCPSIM.jedec_flag then differs("JEDEC flag 0x%02X, ncpsim's 0x00", jid.flag) end
    -- the frame probe (harmless: 0xFF at the end of the flash, a read there)
    s:probe_frames(ctx.opts.frame_size or 4096)
    rep.frames = s.frame_probe
    if rep.frames and rep.frames.write and rep.frames.write ~= NCPSIM.probe then
      differs("a %d-byte 0x31 frame: %s, ncpsim's %s (ncpsim %s)", rep.frames.size, rep.frames.write, NCPSIM.probe,
        rep.frames.write == "accepted" and "--max-payload " .. (rep.frames.size + 4) or
        rep.frames.write == "no reply" and "--oversize silent" or "(a new answer: please report it)")
    end
    if rep.frames and rep.frames.read and rep.frames.read ~= NCPSIM.probe then
      differs("a %d-byte 0x32 read: %s, ncpsim's %s", rep.frames.size, rep.frames.read, NCPSIM.probe)
    end
    -- speeds, read-only
    s:flash_config()
    local n = math.min(1024 * 1024, size or 1024 * 1024)
    local t = sys.now()
    s:sha256(0, n)
    rep.xip_sha = { bytes = n, seconds = sys.now() - t }
    t = sys.now()
    s:read(0, 65536)
    rep.read = { bytes = 65536, seconds = sys.now() - t, chunk = s.read_chunk or s.chip.read_chunk }
    if a.write_test then
      local w = write_test(ctx, s, a, rep)
      if w.erase_seconds and w.erase_seconds * 1000 > 4 * NCPSIM.sector_ms then
        differs("a sector erase took %s, ncpsim models %d ms typical (ncpsim --sector-ms %.0f)", ms(w.erase_seconds),
          NCPSIM.sector_ms, w.erase_seconds * 1000)
      end
      if w.erased == false then differs("after erasing, sector 0x%X did not read 0xFF", w.address) end
      if w.written == false then differs("the test pattern written to 0x%X did not read back", w.address) end
    end
    rep.seconds = sys.now() - t0
    -- the short report
    local L = {
      string.format("selftest: %s ROM 0x%08X, chip id %s, secure boot %s", bi.rom_name or "chip", bi.rom_version,
        bi.chip_id, bi.secure_boot and "ON" or "off"),
      string.format("  handshake    %s%s", rep.handshake.probed and "the ROM was already listening" or
        string.format("OK after %d attempt(s), burst -> OK %s, reset + sync %s", rep.handshake.attempts,
          ms(rep.handshake.sync_to_ok), ms(rep.handshake.seconds)), ""),
      string.format("  0x22         %d baud: acked in %s; after %s the next command took %s", rep.clk_set.baud,
        ms(rep.clk_set.ack_seconds), ms(rep.clk_set.wait), ms(rep.clk_set.first_command_seconds)),
      string.format("  boot info    %d bytes: %s", bi.length, rep.boot_info.hex),
      string.format("  eFuse        %d bytes read, %d not zero", #ef, set),
      string.format("  flash        JEDEC %s (flag 0x%02X) %s, %s; 0x3B block: %s", jedec, jid and jid.flag or 0,
        rep.flash.part or "(not in the flash table)", size and util.fmt_size(size) or "size unknown",
        rep.flash.config or "none"),
      rep.frames and string.format("  frames       %d-byte probe: write %s, read %s -> %d per write, %d per read",
        rep.frames.size, rep.frames.write or "-", rep.frames.read or "-", rep.frames.tx_chunk, rep.frames.read_chunk)
        or "  frames       (no probe)",
      string.format("  XIP SHA-256  %s in %s (%.2f MiB/s)", util.fmt_size(n), ms(rep.xip_sha.seconds),
        n / 1048576 / math.max(rep.xip_sha.seconds, 1e-6)),
      string.format("  0x32 read    64 KiB in %s (%d-byte frames)", ms(rep.read.seconds), rep.read.chunk),
    }
    if rep.write_test then
      local w = rep.write_test
      L[#L + 1] = string.format("  write test   sector 0x%X (%s): erase %s, write 4 KiB %s, erase again %s, %s",
        w.address, w.why, ms(w.erase_seconds), ms(w.write_seconds), ms(w.erase2_seconds),
        w.restored and "restored and verified" or "NOT restored")
    end
    if #rep.differs == 0 then
      L[#L + 1] = "  ncpsim       every reply as ncpsim's defaults"
    else
      for _, d in ipairs(rep.differs) do L[#L + 1] = "  differs      " .. d end
    end
    L[#L + 1] = string.format("  trace        %s: send it with this report (README \"Hardware self-test\")", rep.trace)
    for _, l in ipairs(L) do ctx.ev:info(l) end
    setmetatable(rep.differs, json.array)
    if a.out then util.writefile(a.out, json.encode(rep) .. "\n") end
    rep.summary = string.format("selftest done in %.1f s: %d difference(s) from ncpsim%s", rep.seconds, #rep.differs,
      rep.write_test and ", write test passed" or "")
    ctx.ev:result(rep)
  end,
}
