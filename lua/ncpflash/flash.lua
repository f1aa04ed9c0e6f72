-- ncpflash.flash: the flash engine.
--
--   local plan = flash.plan(regions, {flash_size=, skip=})   -- validates; nothing is sent
--   local s <close> = ctx:connect()
--   local summary = flash.run(ctx, s, plan, {erase=0|1|2, verify=true, skip_unchanged=false})
--
-- A region is {address=, file= | data=, name=, max_size=}. Validation errors are "input" errors
-- (exit 7) naming the region. run() erases (policy 0 none, 1 each region, 2 chip erase first),
-- writes (XZ decompress-write or plain), write-checks, verifies by on-chip SHA-256, retries a
-- failed region once, and reports progress and a summary through ctx.ev.
local sys = require("ncpflash.core.sys")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local header = require("ncpflash.header")

local M = {}

local function label(r)
  return string.format("%s @0x%X", r.name or "region", r.address)
end

local function input(r, msg, fields)
  fields = fields or {}
  fields.region = r.name
  fields.address = r.address
  errors.raise("input", label(r) .. ": " .. msg, fields)
end

local function readfile(r)
  local f, err = io.open(r.file, "rb")
  if not f then input(r, "cannot read " .. r.file .. ": " .. tostring(err), { file = r.file }) end
  local d = f:read("a")
  f:close()
  if not d then input(r, "cannot read " .. r.file, { file = r.file }) end
  return d
end

-- Cut the ranges in `skip` ({address=, length=}) out of the regions (QConn skip_mode).
local function apply_skip(regions, skip)
  if not skip or #skip == 0 then return regions end
  local out = {}
  for _, r in ipairs(regions) do
    local pieces = { { lo = r.address, hi = r.address + r.size } }
    for _, s in ipairs(skip) do
      local slo, shi = s.address, s.address + s.length
      local next_pieces = {}
      for _, p in ipairs(pieces) do
        if shi <= p.lo or slo >= p.hi then
          next_pieces[#next_pieces + 1] = p
        else
          if slo > p.lo then next_pieces[#next_pieces + 1] = { lo = p.lo, hi = slo } end
          if shi < p.hi then next_pieces[#next_pieces + 1] = { lo = shi, hi = p.hi } end
        end
      end
      pieces = next_pieces
    end
    if #pieces == 1 and pieces[1].lo == r.address and pieces[1].hi == r.address + r.size then
      out[#out + 1] = r
    else
      for _, p in ipairs(pieces) do
        local data = r.data:sub(p.lo - r.address + 1, p.hi - r.address)
        out[#out + 1] = { name = string.format("%s[0x%X..0x%X]", r.name, p.lo, p.hi), address = p.lo,
          data = data, size = #data, file = r.file, sha256 = codec.sha256(data), max_size = nil }
      end
    end
  end
  return out
end

-- A file that carries a known header must carry a sound one: a boot image (BFNP) with a wrong
-- header, flash-config or clock-config CRC32 (the ROM would not boot it), a partition table (BFPT)
-- that does not parse, or an OTA file (a transfer format, not a flash image) is an input error.
-- A boot image is checked with the layout whose header CRC fits (any chip's), else with `chip`'s.
local function check_content(r, chip)
  local d, file = r.data, r.file or r.name
  local function sound(fn)
    local ok, e = errors.catch(fn)
    if not ok then input(r, tostring(e.message), { file = r.file, cause = e }) end
  end
  local magic = d:sub(1, 4)
  if header.is_header(d) then
    local c = header.identify(d, chip) or chip
    if not c then
      input(r, "a boot header (BFNP) whose header CRC32 fits no chip's layout", { file = r.file })
    end
    sound(function() header.check(c, d, file) end)
  elseif magic == "BFPT" then
    sound(function() require("ncpflash.partition").parse(d, { file = file }) end)
  elseif require("ncpflash.ota").is_ota(d) then
    input(r, (r.file or "data") .. " is an OTA file (QCC74X_OTAVer1.0 header), not a flash image: flash the "
      .. ".bin it was made from", { file = r.file })
  end
end

-- Raise an "input" error naming the later of two regions ({name=, address=, size=}) that overlap.
function M.check_overlaps(regions)
  local sorted = {}
  for i, r in ipairs(regions) do sorted[i] = r end
  table.sort(sorted, function(a, b) return a.address < b.address end)
  for i = 2, #sorted do
    local a, b = sorted[i - 1], sorted[i]
    if a.address + a.size > b.address then
      input(b, string.format("overlaps %s (0x%X..0x%X)", label(a), a.address, a.address + a.size - 1),
        { other = a.name })
    end
  end
end

-- Validate and load. opts.flash_size (bytes, optional), opts.skip (list of ranges), opts.chip
-- (the chip table whose boot-header layout checks a boot image no layout identifies).
-- Returns {regions = {{name, address, size, data, file, sha256}}, bytes = total, chip =}.
function M.plan(regions, opts)
  opts = opts or {}
  if #regions == 0 then errors.raise("usage", "nothing to flash: no regions given") end
  local out = {}
  for i, src in ipairs(regions) do
    local r = { name = src.name or (src.file and src.file:match("([^/]+)$")) or ("region" .. i),
                address = src.address, file = src.file, max_size = src.max_size }
    if math.type(r.address) ~= "integer" or r.address < 0 or r.address > 0xFFFFFFFF then
      input(r, "bad address " .. tostring(src.address))
    end
    if src.data then r.data = src.data
    elseif src.file then r.data = readfile(r)
    else input(r, "no file or data") end
    r.size = #r.data
    if r.size == 0 then input(r, (r.file or "data") .. " is empty", { file = r.file }) end
    check_content(r, opts.chip)
    if r.max_size and r.size > r.max_size then
      input(r, string.format("%s is %d bytes, larger than its partition (%d bytes, 0x%X)", r.file or "data",
        r.size, r.max_size, r.max_size), { file = r.file, size = r.size, max_size = r.max_size })
    end
    if opts.flash_size and r.address + r.size > opts.flash_size then
      input(r, string.format("%d bytes end at 0x%X, beyond the %d-byte flash (0x%X)", r.size, r.address + r.size,
        opts.flash_size, opts.flash_size), { size = r.size, flash_size = opts.flash_size })
    end
    out[#out + 1] = r
  end
  M.check_overlaps(out)
  for _, r in ipairs(out) do r.sha256 = codec.sha256(r.data) end
  out = apply_skip(out, opts.skip)
  local total = 0
  for _, r in ipairs(out) do total = total + r.size end
  return { regions = out, bytes = total, flash_size = opts.flash_size, chip = opts.chip }
end

-- Re-check a plan against the connected chip's flash size.
function M.check_device(plan, s)
  local fs = s.flash_size
  if not fs then return end
  for _, r in ipairs(plan.regions) do
    if r.address + r.size > fs then
      input(r, string.format("%d bytes end at 0x%X, beyond the chip's %d-byte flash (JEDEC %s)", r.size,
        r.address + r.size, fs, s.jedec_hex or "?"), { size = r.size, flash_size = fs })
    end
  end
end

local function sha_hex(s) return codec.hex(s) end

-- Runs of whole sectors (`sector` bytes: the chip's sector_size) of `data` (to be placed at
-- `addr`) that are all 0xFF, at least BLANK_MIN sectors long: list of {lo=, hi=} byte offsets into
-- data (hi exclusive), ascending.
local BLANK_MIN = 4
local FF64 = string.rep("\255", 64)
function M.blank_runs(data, addr, sector)
  local runs, pos, n = {}, 1, #data
  while pos <= n do
    local a = data:find(FF64, pos, true)                 -- next stretch of 0xFF bytes
    if not a then break end
    local b = data:find("[^\255]", a) or (n + 1)        -- its end (1-based, exclusive)
    local lo = a - 1 + (sector - (addr + a - 1) % sector) % sector
    local hi = b - 1 - (addr + b - 1) % sector
    if hi - lo >= BLANK_MIN * sector then runs[#runs + 1] = { lo = lo, hi = hi } end
    pos = b + 1
  end
  return runs
end

-- The whole sectors (`sector` bytes) of [addr, addr+size) cut at 64 KiB boundaries: {lo=, hi=}
-- offsets from addr.
function M.blocks(addr, size, sector)
  local out = {}
  local a = addr + (sector - addr % sector) % sector
  local e = addr + size - (addr + size) % sector
  while a < e do
    local nxt = math.min(e, a - a % 65536 + 65536)
    out[#out + 1] = { lo = a - addr, hi = nxt - addr }
    a = nxt
  end
  return out
end

-- The parts of [0, size) outside `runs` (as from blank_runs), ascending, non-empty.
function M.complement(runs, size)
  local out, at = {}, 0
  for _, run in ipairs(runs) do
    if run.lo > at then out[#out + 1] = { lo = at, hi = run.lo } end
    at = run.hi
  end
  if at < size then out[#out + 1] = { lo = at, hi = size } end
  return out
end

-- Write one region (erase per policy, write, write-check, verify). Returns stats.
local function do_region(ctx, s, r, opts, attempt)
  local ev = ctx.ev
  local state = { erased = false, sent = 0 }
  r.state = state
  local sector = s.chip.sector_size
  if math.type(sector) ~= "integer" or sector <= 0 then
    errors.raise("usage", string.format("chip %s: sector_size (the flash erase sector in bytes) is missing",
      tostring(s.chip.name)), { hint = "add sector_size = 4096 to the chip file, or base it on a built-in chip" })
  end
  -- as the vendor's flasher, per region: 0x3B with the flash configuration, [erase], the short
  -- ROM timeout (0x23 2 s), the writes, write-check, XIP verify (../shared/conformance)
  s:flash_config()
  local runs = M.blank_runs(r.data, r.address, sector)
  if opts.erase == 1 or (attempt > 1 and opts.erase ~= 0) then
    ev:stage("erase", { region = r.name, address = r.address, size = r.size,
      detail = string.format("%s (%d bytes)", label(r), r.size) })
    -- the region's whole sectors from some 64 KiB block on that already read erased need no erase:
    -- the whole region on a blank chip, the tail behind a shorter previous image or a file
    -- system's free end. One XIP SHA-256 for the whole region, then a bisection for the first
    -- block of the erased tail (1 + log2(blocks) checks). A retry erases everything.
    local keep = {}
    local blocks = M.blocks(r.address, r.size, sector)
    if attempt == 1 and #blocks > 0 then
      local last, blank = blocks[#blocks].hi, {}
      local k = s:xip_sha(function(sha)
        local function erased_from(i)                -- blocks i..#blocks read 0xFF?
          local n = last - blocks[i].lo
          blank[n] = blank[n] or codec.sha256(string.rep("\255", n))
          return sha(r.address + blocks[i].lo, n) == blank[n]
        end
        if erased_from(1) then return 1 end
        local lo, hi = 2, #blocks + 1                -- erased_from(hi) holds (hi = #blocks + 1: none)
        while lo < hi do
          local mid = (lo + hi) // 2
          if erased_from(mid) then hi = mid else lo = mid + 1 end
        end
        return hi
      end)
      if k <= #blocks then keep[1] = { lo = blocks[k].lo, hi = last } end
    end
    for _, piece in ipairs(M.complement(keep, r.size)) do
      s:erase(r.address + piece.lo, piece.hi - piece.lo)
    end
    state.erased = true
  end
  local rt = s.chip.rom_timeout
  if rt then s:set_rom_timeout(rt.short) end
  ev:stage("write", { region = r.name, address = r.address, size = r.size, attempt = attempt,
    detail = string.format("%s (%d bytes)%s", label(r), r.size, attempt > 1 and ", second attempt" or "") })
  -- blank runs are erased now (chip erase, erased above, or found erased) and programming 0xFF
  -- changes no NOR bit: only the pieces between them are sent, each as its own stream
  local st = { sent = 0, written = r.size, frames = 0, compressed = false }
  for _, piece in ipairs(M.complement(runs, r.size)) do
    local ps = s:write(r.address + piece.lo, r.data:sub(piece.lo + 1, piece.hi), {
      compress = opts.compress,
      progress = function(done)            -- everything before the piece is written or blank
        state.sent = piece.lo + done
        ev:progress(piece.lo + done, r.size, { name = r.name })
      end,
    })
    st.sent, st.frames = st.sent + ps.sent, st.frames + ps.frames
    st.compressed = st.compressed or ps.compressed
  end
  if #runs > 0 then ev:progress(r.size, r.size, { name = r.name }) end
  state.written = true
  s:write_check()
  state.checked = true
  if opts.verify ~= false then
    local got = s:sha256(r.address, r.size)
    if got ~= r.sha256 then
      errors.raise("verify", string.format("%s: on-chip SHA-256 %s differs from the file's %s", label(r),
        sha_hex(got), sha_hex(r.sha256)), { region = r.name, address = r.address, got = sha_hex(got),
        expected = sha_hex(r.sha256) })
    end
    state.verified = true
  end
  return st
end

local function describe_state(st, r)
  if not st then return "untouched" end
  if st.checked and not st.verified then return "written, but its content does not match" end
  if st.written then return "written, write-check failed" end
  if st.sent and st.sent > 0 then
    return string.format("partially written (%d of %d bytes)", st.sent, r.size)
  end
  if st.erased then return "erased" end
  return "untouched or partially written"
end

-- Run a plan on a connected session. opts: erase (0|1|2, default 1), verify (default true),
-- skip_unchanged, compress (nil = auto). Returns the summary table (also sent as ev:result).
function M.run(ctx, s, plan, opts)
  opts = opts or {}
  if opts.erase == nil then opts.erase = 1 end
  local ev = ctx.ev
  local t0 = sys.now()
  if opts.before then opts.before(s, plan) end   -- e.g. provisioning adds per-unit regions
  M.check_device(plan, s)
  local sum = { regions = #plan.regions, written_regions = 0, skipped = 0, bytes = plan.bytes, sent = 0,
                written = 0, seconds = {}, retries = 0, erase = opts.erase }
  local before = { erase = s.stats.erase or 0, verify = s.stats.verify or 0, write = s.stats.write or 0 }
  if opts.erase == 2 and opts.skip_unchanged then
    ev:warn("--skip-unchanged has no effect with a chip erase (erase = 2); use --erase 1 or 0 to keep "
      .. "unchanged regions")
  end
  -- --resume (ncpflash.journal): no second chip erase, verified regions are not rewritten
  local jr = opts.resume and require("ncpflash.journal").open(ctx, s, plan, opts.erase) or nil
  local resume_erase = jr and opts.erase == 2 and jr:chip_erased()
  sum.resumed = 0
  if resume_erase then
    ev:info("resume: the chip erase of the interrupted run stands; only regions it had started are erased")
  elseif opts.erase == 2 then
    ev:stage("erase", { all = true, detail = "whole chip" })
    s:erase_all()
    if jr then jr:mark_chip_erased() end
  end
  for _, r in ipairs(plan.regions) do
    local skip = false
    if jr and jr:verified(r) and s:sha256(r.address, r.size) == r.sha256 then
      skip = true
      sum.resumed = sum.resumed + 1
      ev:info(string.format("%s: verified before the interruption and still matches, not rewritten", label(r)),
        { region = r.name, address = r.address, resumed = true })
    end
    if not skip and opts.skip_unchanged and opts.erase ~= 2 then
      local got = s:sha256(r.address, r.size)
      if got == r.sha256 then
        skip = true
        sum.skipped = sum.skipped + 1
        ev:info(string.format("%s: unchanged (%d bytes, SHA-256 %s), skipped", label(r), r.size,
          sha_hex(r.sha256):sub(1, 16)), { region = r.name, address = r.address, unchanged = true })
      end
    end
    if not skip then
      local ropts = opts
      if resume_erase then   -- chip-erased before: erase only what the interrupted run had started
        ropts = setmetatable({ erase = jr:started(r) and 1 or 0 }, { __index = opts })
      end
      if jr then jr:mark_started(r) end
      local ok, res = errors.catch(do_region, ctx, s, r, ropts, 1)
      if not ok then
        if res.code == "interrupted" or res.code == "port" then
          -- not retried, but the user must learn which region was left in what state
          local state = describe_state(r.state, r)
          res.message = string.format("%s: %s; region is now %s", label(r), res.message, state)
          res.region, res.address, res.state = r.name, r.address, state
          error(res, 0)
        end
        sum.retries = sum.retries + 1
        ev:warn(string.format("%s failed (%s); retrying once", label(r), tostring(res.message)),
          { region = r.name, code = res.code })
        if res.code == "timeout" or res.code == "protocol" then
          pcall(function() s.port:flush_input(); sys.sleep(0.1); s.port:flush_input() end)
          pcall(s._rehandshake, s)
        end
        local ok2, res2 = errors.catch(do_region, ctx, s, r, ropts, 2)
        if not ok2 then
          local state = describe_state(r.state, r)
          res2.message = string.format("%s failed twice, region is now %s: %s", label(r), state, res2.message)
          res2.region, res2.address, res2.state = r.name, r.address, state
          error(res2, 0)
        end
        res = res2
      end
      if jr and opts.verify ~= false then jr:mark_verified(r) end
      sum.written_regions = sum.written_regions + 1
      sum.sent = sum.sent + res.sent
      sum.written = sum.written + res.written
      ev:info(string.format("%s: %d bytes written (%d sent%s)", label(r), res.written, res.sent,
        res.compressed and string.format(", XZ %.0f%%", 100 * res.sent / math.max(res.written, 1)) or ""),
        { region = r.name, address = r.address, written = res.written, sent = res.sent,
          compressed = res.compressed })
    end
  end
  if jr then jr:complete() end
  sum.seconds.connect = s.stats.connect
  sum.seconds.erase = (s.stats.erase or 0) - before.erase
  sum.seconds.write = (s.stats.write or 0) - before.write
  sum.seconds.verify = (s.stats.verify or 0) - before.verify
  sum.seconds.total = sys.now() - t0
  local sec = sum.seconds
  sum.summary = {
    string.format("flashed %d of %d regions (%d unchanged), %d bytes written, %d bytes sent%s", sum.written_regions,
      sum.regions, sum.skipped, sum.written, sum.sent, (sum.retries > 0 and (", " .. sum.retries .. " retried") or "")
      .. (sum.resumed > 0 and (", " .. sum.resumed .. " verified before the interruption") or "")),
    string.format("time: connect %.2f s, erase %.2f s, write %.2f s%s, verify %.2f s, total %.2f s",
      sec.connect or 0, sec.erase, sec.write,
      sec.write > 0 and string.format(" (%.0f KiB/s)", sum.written / sec.write / 1024) or "", sec.verify,
      sec.total + (sec.connect or 0)),
  }
  if not opts.quiet then
    ev:result({ command = "flash", regions = sum.regions, written_regions = sum.written_regions,
      skipped = sum.skipped, resumed = sum.resumed, bytes_written = sum.written, bytes_sent = sum.sent,
      retries = sum.retries, seconds = sec, summary = sum.summary })
  end
  return sum
end

-- Compare on-chip SHA-256 of each region with the host's. Returns list of
-- {name, address, size, match, got, expected}; raises "verify" when opts.raise and any differs.
function M.verify(ctx, s, plan, opts)
  M.check_device(plan, s)
  local res, bad = {}, {}
  for _, r in ipairs(plan.regions) do
    local got = s:sha256(r.address, r.size)
    local m = got == r.sha256
    res[#res + 1] = { name = r.name, address = r.address, size = r.size, match = m, got = sha_hex(got),
      expected = sha_hex(r.sha256) }
    ctx.ev:info(string.format("%s: %d bytes %s", label(r), r.size, m and "match" or
      ("DIFFER (chip " .. sha_hex(got):sub(1, 16) .. ", file " .. sha_hex(r.sha256):sub(1, 16) .. ")")),
      { region = r.name, address = r.address, match = m })
    if not m then bad[#bad + 1] = label(r) end
  end
  if #bad > 0 and (not opts or opts.raise ~= false) then
    errors.raise("verify", string.format("%d of %d regions differ from the files: %s", #bad, #res,
      table.concat(bad, ", ")), { regions = bad })
  end
  return res
end

-- "ADDR FILE [ADDR FILE ...]" (strings) -> regions. Usage error on odd counts / bad addresses.
function M.parse_pairs(list)
  local util = require("ncpflash.util")
  if #list == 0 or #list % 2 ~= 0 then
    errors.raise("usage", "expected ADDR FILE pairs, got " .. #list .. " argument" .. (#list == 1 and "" or "s"),
      { hint = "e.g. ncpflash flash 0x10000 fw.bin 0x378000 littlefs.bin" })
  end
  local out = {}
  for i = 1, #list, 2 do
    local a, why = util.parse_u32(list[i])
    if not a then errors.raise("usage", string.format("bad address %q: %s", list[i], tostring(why))) end
    out[#out + 1] = { address = a, file = list[i + 1], name = list[i + 1]:match("([^/]+)$") }
  end
  return out
end

-- The plan of a loaded flash_prog_cfg.ini (progcfg.load's result) for `board` and `chip`.
function M.config_plan(cfg, board, chip)
  local regions = {}
  for _, r in ipairs(cfg.regions) do
    regions[#regions + 1] = { name = r.name, address = r.address, file = r.file, max_size = r.max_size }
  end
  return M.plan(regions, { flash_size = board.flash_size, skip = cfg.skip, chip = chip })
end

-- Flash a QConn/BLFlashCommand flash_prog_cfg.ini. opts: erase (overrides the ini), verify,
-- skip_unchanged, template (filedir substitutions), after (function(session, summary) run on the
-- same session after a successful flash, e.g. an eFuse burn), plan (this ini's config_plan, made
-- before: its files are not read again), connect (options for ctx:connect, e.g. a host board's
-- reset strategy and port). Returns the summary.
function M.from_config(ctx, ini, opts)
  opts = opts or {}
  local progcfg = require("ncpflash.progcfg")
  local board = ctx:board()
  local cfg = progcfg.load(ini, { chipname = board.chipname, template = opts.template,
    allow_outside = opts.allow_outside })
  if cfg.boot2_isp_mode == 1 then
    ctx.ev:warn(ini .. ": boot2_isp_mode = 1 is not supported; using the ROM handshake")
  end
  local erase = opts.erase
  if erase == nil then erase = cfg.erase end
  if erase == 2 and #cfg.skip > 0 then
    errors.raise("input", ini .. ": skip_mode conflicts with a chip erase (erase = 2)")
  end
  local plan = opts.plan or M.config_plan(cfg, board, ctx:chip())
  for _, r in ipairs(plan.regions) do
    ctx.ev:info(string.format("  %-10s 0x%06X  %8d bytes  %s", r.name, r.address, r.size, r.file or ""),
      { region = r.name, address = r.address, size = r.size, file = r.file })
  end
  local s <close> = ctx:connect(opts.connect)
  local sum = M.run(ctx, s, plan, { erase = erase, verify = opts.verify, skip_unchanged = opts.skip_unchanged,
    resume = opts.resume, before = opts.before })
  if opts.after then opts.after(s, sum) end
  return sum
end

-- Find exactly one file matching `pattern` (a Lua pattern) in dir or dir/<sub> for sub in subdirs.
function M.find_file(dir, pattern, subdirs)
  local st = sys.stat(dir)
  if st and st.type == "file" then return dir end
  if not st then errors.raise("input", "no such file or directory: " .. dir, { file = dir }) end
  local tried = {}
  for _, sub in ipairs(subdirs or { "" }) do
    local d = sub == "" and dir or (dir .. "/" .. sub)
    local names = sys.listdir(d)
    if names then
      local hits = {}
      for _, n in ipairs(names) do if n:match(pattern) then hits[#hits + 1] = n end end
      if #hits == 1 then return d .. "/" .. hits[1] end
      if #hits > 1 then
        errors.raise("input", string.format("%s: %d files match %s (%s); pass one with flash --config", d, #hits,
          pattern, table.concat(hits, ", ")), { file = d })
      end
      tried[#tried + 1] = d
    end
  end
  errors.raise("input", string.format("no file matching %s in %s", pattern,
    #tried > 0 and table.concat(tried, ", ") or dir), { file = dir })
end

return M
