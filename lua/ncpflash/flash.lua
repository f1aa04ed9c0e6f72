-- ncpflash.flash: the flash engine.
--
--   local plan = flash.plan(regions, {flash_size=, skip=})   -- validates; nothing is sent
--   local s <close> = ctx:connect()
--   local summary = flash.run(ctx, s, plan, {erase=0|1|2, chip_erase=false, verify=true, skip_unchanged=false})
--
-- A region is {address=, file= | data=, name=, max_size=}. Validation errors are "input" errors
-- (exit 7) naming the region. run() erases (policy 0 none, 1 each region, 2 every byte not written
-- ends 0xFF: ncpflash.eraseplan, or the chip erase first with chip_erase / --resume),
-- writes (XZ decompress-write or plain), write-checks, verifies by on-chip SHA-256, retries a
-- failed region once, and reports progress and a summary through ctx.ev.
local sys = require("ncpflash.core.sys")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local header = require("ncpflash.header")
local util = require("ncpflash.util")
local eraseplan = require("ncpflash.eraseplan")

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

-- Read a region's file: its size is checked first (a device, a pipe, a file larger than the
-- flash is refused without reading it), then a bounded read.
local MAX_IMAGE = 256 * 1024 * 1024
local function readfile(r, flash_size)
  local ok, size = errors.catch(util.regular_file, r.file)
  if not ok then input(r, size.message, { file = r.file }) end
  local max = flash_size or MAX_IMAGE
  if size > max then
    input(r, string.format("%s is %d bytes, beyond the %d-byte flash (0x%X)", r.file, size, max, max),
      { file = r.file, size = size, flash_size = flash_size })
  end
  local rok, d = errors.catch(util.readfile, r.file, nil, max)
  if not rok then input(r, d.message, { file = r.file }) end
  return d
end

-- Cut the ranges in `skip` ({address=, length=}) out of the regions (QConn skip_mode).
-- Returns the regions and the list of those that lie wholly inside skip ranges (not flashed).
local function apply_skip(regions, skip)
  if not skip or #skip == 0 then return regions, {} end
  local out, dropped = {}, {}
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
    if #pieces == 0 then
      dropped[#dropped + 1] = r
    elseif #pieces == 1 and pieces[1].lo == r.address and pieces[1].hi == r.address + r.size then
      out[#out + 1] = r
    else
      for _, p in ipairs(pieces) do
        local data = r.data:sub(p.lo - r.address + 1, p.hi - r.address)
        out[#out + 1] = { name = string.format("%s[0x%X..0x%X]", r.name, p.lo, p.hi), address = p.lo,
          data = data, size = #data, file = r.file, sha256 = codec.sha256(data), max_size = nil }
      end
    end
  end
  return out, dropped
end

-- What of a boot image the ROM checks before it boots it: the flash/clock-config and header
-- CRC32s, the public-key CRC32, the image length (the file holds the whole body) and the image
-- SHA-256 (the body matches the header; placeholder hashes with hash_ignore are not checked).
local function boot_problems(h)
  local out = {}
  for _, p in ipairs(h.problems) do
    if header.is_boot_crc(p) or p.field == "image length" or p.field == "image SHA-256"
      or p.field == "public-key CRC32" then
      out[#out + 1] = p
    end
  end
  return out
end
M.boot_problems = boot_problems

-- A file that carries a known header must carry a sound one: a boot image (BFNP) the ROM would
-- not boot (a CRC, a body cut short or not matching the header's SHA-256), a partition table
-- (BFPT) that does not parse, or an OTA file (a transfer format, not a flash image) is an input
-- error. A boot image is read with the layout whose header CRC fits (any chip's), else with
-- `chip`'s; r.layout keeps that chip (check_device compares it with the connected chip).
-- allow_bad (--allow-bad-image): a broken boot image is flashed, with a warning in r.warning.
local function check_content(r, chip, allow_bad)
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
    r.layout = c
    local ok, h = errors.catch(header.parse, c, d, { file = file })
    local bad = ok and boot_problems(h) or { { field = "boot header", offset = 0, expected = "a whole header",
      found = tostring(h.message) } }
    if ok then r.signed = h.signed end
    if #bad > 0 then
      local p = bad[1]
      local what = string.format("%s boot header: %s at offset 0x%X: expected %s, found %s%s", tostring(c.name),
        p.field, p.offset, tostring(p.expected), tostring(p.found),
        #bad > 1 and string.format(" (and %d more problem%s)", #bad - 1, #bad > 2 and "s" or "") or "")
      if not allow_bad then
        input(r, what .. ": the ROM would not boot it", { file = r.file, field = p.field, offset = p.offset,
          expected = p.expected, found = p.found,
          hint = "'ncpflash image info " .. tostring(r.file or "FILE") .. "' shows the header; a deliberately "
            .. "broken image is flashed with --allow-bad-image" })
      end
      r.warning = what .. ": flashed anyway (--allow-bad-image)"
    end
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
-- (the chip table whose boot-header layout checks a boot image no layout identifies),
-- opts.allow_bad_image (flash boot images the ROM would not boot, with a warning).
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
    elseif src.file then r.data = readfile(r, opts.flash_size)
    else input(r, "no file or data") end
    r.size = #r.data
    if r.size == 0 then input(r, (r.file or "data") .. " is empty", { file = r.file }) end
    check_content(r, opts.chip, opts.allow_bad_image)
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
  local dropped
  out, dropped = apply_skip(out, opts.skip)
  local total = 0
  for _, r in ipairs(out) do total = total + r.size end
  return { regions = out, bytes = total, flash_size = opts.flash_size, chip = opts.chip, skip = opts.skip,
    allow_bad_image = opts.allow_bad_image, dropped = dropped }
end

-- Re-check a plan against the connected chip: its flash size, and the boot-header layout of
-- every boot image (an image made for another chip's layout would not boot: safety, exit 6,
-- unless the plan allows bad images).
function M.check_device(plan, s)
  local fs = s.flash_size
  for _, r in ipairs(plan.regions) do
    if fs and r.address + r.size > fs then
      input(r, string.format("%d bytes end at 0x%X, beyond the chip's %d-byte flash (JEDEC %s)", r.size,
        r.address + r.size, fs, s.jedec_hex or "?"), { size = r.size, flash_size = fs })
    end
    if r.layout and s.chip and s.chip.header and not plan.allow_bad_image then
      local c = header.identify(r.data, s.chip)
      if c and c.name ~= s.chip.name then
        errors.raise("safety", string.format("%s: a %s boot image (%d-byte header), but the chip is %s (%d-byte "
          .. "header): its ROM would not boot it; nothing was written", label(r), c.name, c.header.size,
          tostring(s.chip.name), s.chip.header.size), { region = r.name, address = r.address,
          hint = "flash the image built for this chip (or --allow-bad-image for a deliberate case)" })
      end
    end
  end
end

-- Warnings about a plan on the connected chip: boot images flashed with --allow-bad-image, and
-- unsigned boot images on a chip whose boot info says secure boot is on.
function M.warnings(ctx, s, plan)
  local secure = s.info and s.info.secure_boot
  for _, r in ipairs(plan.dropped or {}) do
    ctx.ev:warn(string.format("%s (%d bytes) lies wholly inside skip_mode: not flashed", label(r), r.size),
      { region = r.name, address = r.address, skipped_whole = true })
  end
  for _, r in ipairs(plan.regions) do
    if r.warning then ctx.ev:warn(label(r) .. ": " .. r.warning, { region = r.name, address = r.address }) end
    if secure and r.layout and r.signed == false then
      ctx.ev:warn(string.format("%s is an unsigned boot image, but the chip has secure boot on (boot info sign %s): "
        .. "its ROM will not boot it", label(r), tostring(s.info.sign)), { region = r.name, address = r.address })
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

-- The chip's erase sector (bytes); a chip file without one cannot be flashed.
local function sector_of(s)
  local sector = s.chip.sector_size
  if math.type(sector) ~= "integer" or sector <= 0 then
    errors.raise("usage", string.format("chip %s: sector_size (the flash erase sector in bytes) is missing",
      tostring(s.chip.name)), { hint = "add sector_size = 4096 to the chip file, or base it on a built-in chip" })
  end
  return sector
end

-- The erase units of a plan: regions whose sectors overlap (an erase for one would wipe the
-- other) form one unit {regions = {...}, lo =, hi =} with [lo, hi) the sectors they cover. A unit
-- is erased once, before anything is written, and retried as a whole. Units and their regions
-- keep the plan's order.
function M.units(regions, sector)
  local idx = {}
  for i, r in ipairs(regions) do idx[r] = i end
  local sorted = {}
  for i, r in ipairs(regions) do sorted[i] = r end
  table.sort(sorted, function(a, b) return a.address < b.address end)
  local units = {}
  for _, r in ipairs(sorted) do
    local lo = r.address - r.address % sector
    local e = r.address + r.size
    local hi = e + (sector - e % sector) % sector
    local u = units[#units]
    if u and lo < u.hi then
      u.regions[#u.regions + 1] = r
      if hi > u.hi then u.hi = hi end
    else
      units[#units + 1] = { regions = { r }, lo = lo, hi = hi }
    end
  end
  for _, u in ipairs(units) do
    table.sort(u.regions, function(a, b) return idx[a] < idx[b] end)
    u.first = idx[u.regions[1]]
  end
  table.sort(units, function(a, b) return a.first < b.first end)
  return units
end

local function unit_label(u)
  local names = {}
  for _, r in ipairs(u.regions) do names[#names + 1] = r.name end
  return string.format("0x%X..0x%X (%s)", u.lo, u.hi - 1, table.concat(names, ", "))
end

-- The bytes of the skip ranges (QConn skip_mode: "leave these alone") inside u's sectors: they
-- are read before the unit is erased and written back after it, as regions of their own.
local function keep_skipped(s, u, skip)
  for _, sk in ipairs(skip or {}) do
    local lo, hi = math.max(sk.address, u.lo), math.min(sk.address + sk.length, u.hi)
    if lo < hi then
      -- a read reply carries no checksum: the bytes count only when the chip's own SHA-256 of
      -- the range agrees (else read again; nothing is erased before they are known)
      local data, want
      for _ = 1, 3 do
        data = s:read(lo, hi - lo)
        want = want or s:sha256(lo, hi - lo)
        if codec.sha256(data) == want then break end
        data = nil
      end
      if not data then
        errors.raise("protocol", string.format("%s: skip_mode 0x%X..0x%X: three reads of the bytes to keep disagree "
          .. "with the chip's SHA-256; its sectors were not erased", label(u.regions[1]), lo, hi - 1),
          { op = "flash_read", region = u.regions[1].name, address = u.regions[1].address })
      end
      local k = { name = string.format("skip_mode 0x%X..0x%X (kept)", lo, hi - 1), address = lo, data = data,
        size = #data, sha256 = want, kept = true }
      u.regions[#u.regions + 1] = k
      u.kept = (u.kept or 0) + 1
    end
  end
end

-- Save the bytes of a kept skip_mode range (k.data) to a file the user can restore them from:
-- $XDG_STATE_HOME/ncpflash/kept/ADDR_SHA.bin (beside the journal). Returns the path or nil.
local function save_kept(k)
  local jdir = require("ncpflash.journal").dir()
  if not jdir then return nil end
  local dir = util.dirname(jdir) .. "/kept"
  if not sys.mkdirs(dir) then return nil end
  local path = string.format("%s/%08X_%s.bin", dir, k.address, sha_hex(codec.sha256(k.data)):sub(1, 16))
  local f = io.open(path, "wb")
  if not f then return nil end
  local ok = f:write(k.data)
  f:close()
  return ok and path or nil
end

-- Erase a unit's sectors. fresh: first attempt, so the whole sectors from some 64 KiB block on
-- that already read erased are left alone (the whole unit on a blank chip, the tail behind a
-- shorter previous image or a file system's free end): one XIP SHA-256 for the unit, then a
-- bisection for the first block of the erased tail (1 + log2(blocks) checks). A retry erases all.
local function erase_unit(ctx, s, u, sector, fresh, attempt)
  ctx.ev:stage("erase", { region = u.regions[1].name, address = u.lo, size = u.hi - u.lo, attempt = attempt,
    detail = string.format("%s (%d bytes)%s", unit_label(u), u.hi - u.lo, attempt > 1 and ", second attempt" or "") })
  s:flash_config()        -- 0x3B before the erase, as the vendor's flasher before each file
  u.configured = true
  local size = u.hi - u.lo
  local keep = {}
  local blocks = M.blocks(u.lo, size, sector)
  if fresh and #blocks > 0 then
    local last = blocks[#blocks].hi
    local k = s:xip_sha(function(sha)
      local function erased_from(i)                -- blocks i..#blocks read 0xFF?
        local n = last - blocks[i].lo
        return sha(u.lo + blocks[i].lo, n) == eraseplan.blank_sha(n)
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
  local pieces = M.complement(keep, size)
  if #pieces > 0 then   -- from the first erase command on, the unit's content is not known
    for _, r in ipairs(u.regions) do r.state = { erase_sent = true } end
  end
  for _, piece in ipairs(pieces) do
    -- the last piece ends at the unit's last byte of data, as the vendor's 0x30 ends at the
    -- file's last byte (the ROM erases that whole sector either way)
    local hi = piece.hi
    if hi == size then
      hi = 0
      for _, r in ipairs(u.regions) do hi = math.max(hi, r.address + r.size - u.lo) end
    end
    s:erase(u.lo + piece.lo, hi - piece.lo)
  end
  u.erased = true
  for _, r in ipairs(u.regions) do r.state = { erased = true, sent = 0 } end
end

-- Write one region into erased (or, with erase 0, as found) flash, write-check, verify.
-- r.state records what the device acknowledged (describe_state says it in words).
local function write_region(ctx, s, r, opts, attempt, configured)
  local ev = ctx.ev
  -- as the vendor's flasher, per region: 0x3B with the flash configuration (sent before the
  -- unit's erase when there was one), the short ROM timeout (0x23 2 s), the writes, write-check,
  -- XIP verify (../shared/conformance)
  if not configured then s:flash_config() end
  local rt = s.chip.rom_timeout
  if rt then s:set_rom_timeout(rt.short) end
  local state = r.state or { erased = false }
  state.acked, state.payload, state.written, state.checked, state.verified = 0, 0, nil, nil, nil
  r.state = state
  local runs = M.blank_runs(r.data, r.address, sector_of(s))
  ev:stage("write", { region = r.name, address = r.address, size = r.size, attempt = attempt,
    detail = string.format("%s (%d bytes)%s", label(r), r.size, attempt > 1 and ", second attempt" or "") })
  -- blank runs are erased now (chip erase, erased before, or found erased) and programming 0xFF
  -- changes no NOR bit: only the pieces between them are sent, each as its own stream
  local st = { sent = 0, written = r.size, frames = 0, compressed = false }
  state.writing = true
  for _, piece in ipairs(M.complement(runs, r.size)) do
    local base_payload = state.payload
    local ok, ps = errors.catch(s.write, s, r.address + piece.lo, r.data:sub(piece.lo + 1, piece.hi), {
      compress = opts.compress,
      progress = function(done, _, acked)   -- acknowledged; everything before the piece is written or blank
        state.acked = piece.lo + done
        state.payload = base_payload + (acked or 0)
        ev:progress(piece.lo + done, r.size, { name = r.name })
      end,
      on_compress = function(c) state.compressed = state.compressed or c end,
    })
    if not ok then
      if ps.fl then state.writing = false end   -- the frame was answered (an FL code), not lost
      error(ps, 0)
    end
    st.sent, st.frames = st.sent + ps.sent, st.frames + ps.frames
    st.compressed = st.compressed or ps.compressed
    state.compressed = st.compressed
  end
  state.writing = false
  if #runs > 0 then ev:progress(r.size, r.size, { name = r.name }) end
  state.acked = r.size
  state.written = true
  s:write_check()
  state.checked = true
  if opts.verify ~= false then
    local got = s:verify_sha({ { addr = r.address, len = r.size, want = r.sha256 } })[1]
    if got ~= r.sha256 then
      errors.raise("verify", string.format("%s: on-chip SHA-256 %s differs from the file's %s", label(r),
        sha_hex(got), sha_hex(r.sha256)), { region = r.name, address = r.address, got = sha_hex(got),
        expected = sha_hex(r.sha256) })
    end
    state.verified = true
  end
  return st
end

-- What a region holds now, from what the device acknowledged (never more than that).
function M.describe_state(st, r)
  if not st then return "untouched (not erased, nothing written)" end
  if st.erase_sent then
    return "unknown: an erase of its sectors was sent and not completed (erased, partly erased or as before)"
  end
  if st.verified then return "written and verified" end
  if st.checked then return "written, but its content does not match the file" end
  if st.written then return "written, but the write check (0x3A) failed" end
  local acked = st.acked or 0
  local rest = st.erased and "the rest is erased" or "the rest holds what was there before"
  if st.writing then   -- a frame was sent and not acknowledged: it may have been programmed
    rest = (st.erased and "the rest is erased, except what the unacknowledged frame after it may have programmed"
      or "the rest holds what was there before, except what the unacknowledged frame after it may have programmed")
  end
  if acked > 0 then
    local where = string.format("0x%X..0x%X", r.address, r.address + acked - 1)
    if st.compressed then
      return string.format("partly written: the device acknowledged %d compressed bytes, so at most the first %d of "
        .. "%d bytes (%s) are programmed; %s", st.payload or 0, acked, r.size, where, rest)
    end
    return string.format("partly written up to offset 0x%X: %d of %d bytes acknowledged (%s); %s", acked, acked,
      r.size, where, rest)
  end
  if st.erased then
    return "erased (no write acknowledged" .. (st.writing and "; the frame in flight may have programmed some bytes"
      or "") .. ")"
  end
  if st.writing then return "unknown: a frame was in flight over the old content" end
  return "as before (not erased, nothing written)"
end
local describe_state = M.describe_state

-- Write every region of a unit (its erase done or not needed). Returns the stats of the regions
-- written (kept skip_mode bytes are not counted). Raises the first region's failure with
-- err.failed_region = that region.
local function write_unit(ctx, s, u, opts, attempt, sum)
  local stats = {}
  for i, r in ipairs(u.regions) do
    local configured = i == 1 and u.configured
    u.configured = nil
    local ok, res = errors.catch(write_region, ctx, s, r, opts, attempt, configured)
    if not ok then res.failed_region = r; error(res, 0) end
    stats[#stats + 1] = { r = r, st = res }
  end
  for _, x in ipairs(stats) do
    local r, res = x.r, x.st
    if not r.kept then
      sum.written_regions = sum.written_regions + 1
      sum.sent = sum.sent + res.sent
      sum.written = sum.written + res.written
      ctx.ev:info(string.format("%s: %d bytes written (%d sent%s)", label(r), res.written, res.sent,
        res.compressed and string.format(", XZ %.0f%%", 100 * res.sent / math.max(res.written, 1)) or ""),
        { region = r.name, address = r.address, written = res.written, sent = res.sent,
          compressed = res.compressed })
    end
  end
end

-- The whole plan once more by on-chip SHA-256, after the last write (one XIP session): a later
-- erase or write can no longer have spoilt an earlier region unseen. Returns the count.
local function verify_all(ctx, s, list)
  ctx.ev:stage("verify", { regions = #list, detail = string.format("%d regions, after the last write", #list) })
  local ranges = {}
  for i, r in ipairs(list) do ranges[i] = { addr = r.address, len = r.size, want = r.sha256 } end
  local got = s:verify_sha(ranges)
  local bad, first = {}, nil
  for i, r in ipairs(list) do
    if got[i] ~= r.sha256 then
      bad[#bad + 1] = string.format("%s (chip %s, file %s)", label(r), sha_hex(got[i]):sub(1, 16),
        sha_hex(r.sha256):sub(1, 16))
      first = first or r
    end
  end
  if #bad > 0 then
    errors.raise("verify", string.format("after the last write %d of %d regions differ on chip: %s", #bad, #list,
      table.concat(bad, "; ")), { region = first.name, address = first.address, regions = bad })
  end
  return #list
end

-- Run a plan on a connected session. opts: erase (0|1|2, default 1), verify (default true),
-- skip_unchanged, compress (nil = auto). Returns the summary table (also sent as ev:result).
--
-- The erases are planned over the union of the regions before anything is written: regions
-- that share a sector form one unit (M.units), erased once; skip_mode bytes inside an erased
-- sector are read first and written back. Unit by unit (as the vendor goes file by file), the
-- unit is erased and every region of it written, write-checked and verified; a failed unit is
-- erased and written again once (all its regions). Last, every region is verified again by
-- on-chip SHA-256 (unless verify = false).
function M.run(ctx, s, plan, opts)
  opts = opts or {}
  if opts.erase == nil then opts.erase = 1 end
  local ev = ctx.ev
  local t0 = sys.now()
  if opts.before then opts.before(s, plan) end   -- e.g. provisioning adds per-unit regions
  M.check_device(plan, s)
  M.warnings(ctx, s, plan)
  local sector = sector_of(s)
  local sum = { regions = #plan.regions, written_regions = 0, skipped = 0, bytes = plan.bytes, sent = 0,
                written = 0, seconds = {}, retries = 0, erase = opts.erase }
  local before = { erase = s.stats.erase or 0, verify = s.stats.verify or 0, write = s.stats.write or 0 }
  if opts.erase == 2 and opts.skip_unchanged and (opts.chip_erase or opts.resume) then
    ev:warn("--skip-unchanged has no effect with a chip erase (erase = 2); use --erase 1 or 0 to keep "
      .. "unchanged regions")
  end
  -- --resume (ncpflash.journal): no second chip erase, verified regions are not rewritten
  local jr = opts.resume and require("ncpflash.journal").open(ctx, s, plan, opts.erase) or nil
  local resume_erase = jr and opts.erase == 2 and jr:chip_erased()
  sum.resumed = 0
  local units = M.units(plan.regions, sector)
  -- the journal's chip erase holds only if everything outside the regions' sectors still reads
  -- erased (another job or tool may have written there between the runs): checked on chip, else
  -- the chip is erased again and every region written
  if resume_erase and s.flash_size then
    local gaps = eraseplan.gaps(units, s.flash_size)
    local ranges = {}
    for i, g in ipairs(gaps) do ranges[i] = { addr = g.lo, len = g.hi - g.lo } end
    for i, blank in ipairs(eraseplan.read_blank(s, ranges)) do
      if not blank then
        ev:warn(string.format("resume: the journal records the chip erase, but 0x%X..0x%X (outside the regions) is not "
          .. "blank on chip: erasing the chip again and writing every region", gaps[i].lo, gaps[i].hi - 1))
        resume_erase = false   -- (the chip erase below records itself in the journal again)
        break
      end
    end
  end
  -- 1. what stays: a unit whose regions all are on chip already (verified before an interruption,
  --    or unchanged) is left alone; one changed region means the whole unit is written
  for _, u in ipairs(units) do
    local why = {}
    for i, r in ipairs(u.regions) do
      -- (a chip erase still to come wipes everything: then nothing stays)
      local resumed = jr and jr:verified(r) and (opts.erase ~= 2 or resume_erase)
      local unchanged = opts.skip_unchanged and opts.erase ~= 2
      local same = (resumed or unchanged) and s:sha256(r.address, r.size) == r.sha256
      if resumed and not same then
        ev:warn(string.format("%s: verified before the interruption, but no longer matches on chip: rewriting it",
          label(r)), { region = r.name, address = r.address })
      end
      if same then
        why[i] = resumed and "resumed" or "unchanged"
      else
        why = nil
        break
      end
    end
    if why then
      u.skip = true
      for i, r in ipairs(u.regions) do
        if why[i] == "resumed" then
          sum.resumed = sum.resumed + 1
          ev:info(string.format("%s: verified before the interruption and still matches, not rewritten", label(r)),
            { region = r.name, address = r.address, resumed = true })
        else
          sum.skipped = sum.skipped + 1
          ev:info(string.format("%s: unchanged (%d bytes, SHA-256 %s), skipped", label(r), r.size,
            sha_hex(r.sha256):sub(1, 16)), { region = r.name, address = r.address, unchanged = true })
        end
      end
    end
  end
  local touched, phase = false, "write"   -- touched: a command that changes flash was sent
  local function erase_retried(u)
    touched = true
    local ok, res = errors.catch(erase_unit, ctx, s, u, sector, true, 1)
    if ok then return end
    res.region, res.address = u.regions[1].name, u.regions[1].address
    if res.code == "interrupted" or res.code == "port" then
      res.message = string.format("erase of %s: %s", unit_label(u), res.message)
      error(res, 0)
    end
    sum.retries = sum.retries + 1
    ev:warn(string.format("erase of %s failed (%s); retrying once", unit_label(u), tostring(res.message)),
      { region = res.region, code = res.code })
    local ok2, res2 = errors.catch(erase_unit, ctx, s, u, sector, false, 2)
    if not ok2 then
      res2.message = string.format("erase of %s failed twice: %s", unit_label(u), res2.message)
      res2.region, res2.address = res.region, res.address
      error(res2, 0)
    end
  end
  local sel   -- erase = 2 reached without a chip erase (ncpflash.eraseplan)
  local function body()
    -- 2. erase = 2: a chip erase before anything else, unless checking the chip on-chip shows
    --    that erasing less reaches the same end state faster (ncpflash.eraseplan)
    -- (--resume keeps the chip erase: its journal records it, and a run without --resume after
    -- an interruption re-checks everything on chip anyway)
    if opts.erase == 2 and not jr and opts.chip_erase ~= true then
      local p = eraseplan.plan(s, units, sector)
      if p.chip then
        ev:info("erase = 2: chip erase (" .. p.why .. ")", { chip_erase = true, why = p.why })
      else
        sel = p
      end
    end
    if resume_erase then
      ev:info("resume: the chip erase of the interrupted run stands; only regions it had started are erased")
    elseif opts.erase == 2 and not sel then
      ev:stage("erase", { all = true, detail = "whole chip" })
      touched, phase = true, "chip-erase"
      s:erase_all()
      phase = "write"
      if jr then jr:mark_chip_erased() end
    elseif sel then
      local n = { match = 0, blank = 0, erased = 0 }
      for _, u in ipairs(units) do n[sel.class[u]] = n[sel.class[u]] + 1 end
      local bytes = 0
      for _, e in ipairs(sel.erase) do bytes = bytes + e.hi - e.lo end
      ev:info(string.format("erase = 2 without a chip erase: %d on-chip SHA-256 checks; of %d unit%s %d already as "
        .. "planned, %d blank, %d to erase; erasing %d bytes (about %.1f s, the chip erase %.1f s)", sel.checks,
        #units, #units == 1 and "" or "s", n.match, n.blank, n.erased, bytes, sel.cost_ms / 1000, sel.chip_ms / 1000),
        { checks = sel.checks, units_match = n.match, units_blank = n.blank, units_erased = n.erased,
          erase_bytes = bytes })
      if #sel.erase > 0 then
        phase = "gaps"
        touched = true
        s:flash_config()
        for _, e in ipairs(sel.erase) do
          ev:stage("erase", { address = e.lo, size = e.hi - e.lo, detail = string.format(
            "0x%X..0x%X (%d bytes)", e.lo, e.hi - 1, e.hi - e.lo) })
          local ok, err = errors.catch(s.erase, s, e.lo, e.hi - e.lo)
          if not ok and err.code ~= "interrupted" and err.code ~= "port" then
            sum.retries = sum.retries + 1
            ev:warn(string.format("erase of 0x%X..0x%X failed (%s); retrying once", e.lo, e.hi - 1,
              tostring(err.message)), { code = err.code })
            ok, err = errors.catch(s.erase, s, e.lo, e.hi - e.lo)
          end
          if not ok then
            err.message = string.format("erase of 0x%X..0x%X: %s", e.lo, e.hi - 1, err.message)
            error(err, 0)
          end
        end
        phase = "write"
      end
      for _, u in ipairs(units) do
        local c = sel.class[u]
        if c == "match" and not u.skip then
          u.skip = true
          for _, r in ipairs(u.regions) do
            sum.skipped = sum.skipped + 1
            ev:info(string.format("%s: already on chip with the 0xFF around it (SHA-256 %s), not rewritten", label(r),
              sha_hex(r.sha256):sub(1, 16)), { region = r.name, address = r.address, unchanged = true })
          end
        elseif c == "blank" or c == "erased" then
          for _, r in ipairs(u.regions) do r.state = { erased = true } end
        end
      end
    end
    -- erase = 1 never slower than a chip erase: when the units that hold data would take longer
    -- to erase (the part's typical times) than the whole chip, and everything outside them
    -- reads erased, the chip erase ends in the same bytes
    local by_chip = false
    if opts.erase == 1 and not jr and #(plan.skip or {}) == 0 and s.info and s.info.encrypted == false
        and s.flash_size then
      local t = eraseplan.typical(s.chip, s.flash_size)
      local bound, any_skip = 0, false
      for _, u in ipairs(units) do
        if u.skip then any_skip = true end
        bound = bound + eraseplan.cost(u.lo, u.hi, sector, t)
      end
      if not any_skip and bound > t.chip then
        local ranges = {}
        for _, u in ipairs(units) do ranges[#ranges + 1] = { addr = u.lo, len = u.hi - u.lo } end
        for _, g in ipairs(eraseplan.gaps(units, s.flash_size)) do
          ranges[#ranges + 1] = { addr = g.lo, len = g.hi - g.lo }
        end
        local cost, outside_blank = 0, true
        for i, blank in ipairs(eraseplan.read_blank(s, ranges)) do
          local rg = ranges[i]
          if i <= #units then
            if not blank then cost = cost + eraseplan.cost(rg.addr, rg.addr + rg.len, sector, t) end
          elseif not blank then
            outside_blank = false
          end
        end
        if outside_blank and cost > t.chip then
          ev:info(string.format("erase = 1: erasing the %d units that hold data would take about %.1f s, the chip "
            .. "erase %.1f s, and everything else reads erased: chip erase", #units, cost / 1000, t.chip / 1000),
            { chip_erase = true, unit_erase_ms = cost, chip_erase_ms = t.chip })
          ev:stage("erase", { all = true, detail = "whole chip (cheaper than the units)" })
          touched, phase = true, "chip-erase"
          s:erase_all()
          phase = "write"
          by_chip = true
        end
      end
    end
    if resume_erase or (opts.erase == 2 and not sel) or by_chip then
      for _, u in ipairs(units) do
        for _, r in ipairs(u.regions) do r.state = { erased = true } end
      end
    end
    -- after a chip erase that an interrupted run recorded, a unit it had started is erased again;
    -- one it never started must still read blank (rework, another tool): checked on chip
    local function needs_erase(u)
      if opts.erase == 1 then return not by_chip end
      if sel then return false end   -- erased above
      if not resume_erase then return false end
      for _, r in ipairs(u.regions) do if jr:started(r) then return true end end
      local n = u.hi - u.lo
      if s:sha256(u.lo, n) == eraseplan.blank_sha(n) then return false end
      for _, r in ipairs(u.regions) do
        ev:warn(string.format("%s: the journal says the chip erase left it blank, but 0x%X..0x%X is not blank on "
          .. "chip: erasing it", label(r), u.lo, u.hi - 1), { region = r.name, address = r.address })
      end
      return true
    end
    local function mark_started(u)
      if not jr then return end
      for _, r in ipairs(u.regions) do if not r.kept and not jr:started(r) then jr:mark_started(r) end end
    end
    -- 3. unit by unit, as the vendor's flasher goes file by file: the unit's erase, then its
    --    writes (units share no sector, so a later erase cannot touch an earlier unit); a failed
    --    unit is erased and written again, once
    for _, u in ipairs(units) do
      if not u.skip then
        local erase = needs_erase(u)   -- (asks the journal what was started: before marking)
        mark_started(u)
        if erase then
          if opts.erase == 1 then keep_skipped(s, u, plan.skip) end
          erase_retried(u)
        end
        touched = true
        local ok, res = errors.catch(write_unit, ctx, s, u, opts, 1, sum)
        if not ok then
          local r = res.failed_region or u.regions[1]
          if res.code == "interrupted" or res.code == "port" then
            -- not retried, but the user must learn which region was left in what state
            local state = describe_state(r.state, r)
            res.message = string.format("%s: %s; region is now %s", label(r), res.message, state)
            res.region, res.address, res.state = r.name, r.address, state
            error(res, 0)
          end
          sum.retries = sum.retries + 1
          ev:warn(string.format("%s failed (%s); retrying once%s", label(r), tostring(res.message),
            #u.regions > 1 and (" with the regions sharing its sectors: " .. unit_label(u)) or ""),
            { region = r.name, code = res.code })
          if res.code == "timeout" or res.code == "protocol" then
            pcall(function() s.port:flush_input(); sys.sleep(0.1); s.port:flush_input() end)
            pcall(s._rehandshake, s)
          end
          local ok2, res2 = errors.catch(function()
            if opts.erase ~= 0 then erase_unit(ctx, s, u, sector, false, 2) end
            write_unit(ctx, s, u, opts, 2, sum)
          end)
          if not ok2 then
            local r2 = res2.failed_region or r
            local state = describe_state(r2.state, r2)
            res2.message = string.format("%s failed twice, region is now %s: %s", label(r2), state, res2.message)
            res2.region, res2.address, res2.state = r2.name, r2.address, state
            error(res2, 0)
          end
        end
        if jr and opts.verify ~= false then
          for _, r in ipairs(u.regions) do if not r.kept then jr:mark_verified(r) end end
        end
      end
    end
    -- 4. the whole plan again, after the last write
    phase = "verify"
    local all = {}
    for _, u in ipairs(units) do for _, r in ipairs(u.regions) do all[#all + 1] = r end end
    sum.verified_regions = 0
    if opts.verify ~= false then
      verify_all(ctx, s, all)
      sum.verified_regions = #plan.regions
    end
  end
  local ok, err = errors.catch(body)
  if not ok then
    -- bytes lost or garbled on the line while writing at a high rate: the usual cure is a lower
    -- --load-baud (the adapter or the cable does not keep up)
    local baud = s.baud or (s.port and s.port:baud())
    local garbled = err.code == "timeout" or err.code == "protocol" or (err.code == "device" and err.fl == 0x0103)
    if touched and garbled and baud and baud > 115200 and not err.hint then
      local lower = baud > 1000000 and 1000000 or (baud > 500000 and 500000 or (baud > 230400 and 230400 or 115200))
      err.hint = string.format("bytes were lost or garbled on the line at %d baud: a lower --load-baud (e.g. "
        .. "--load-baud %d) is the usual cure for an adapter or cable that does not keep up", baud, lower)
    end
    -- a failure after flash was changed: what the unit holds now, and a lost link is the
    -- device's failure (exit 4), not "could not reach the ROM"
    if touched then
      if err.code == "port" or err.code == "handshake" then
        err.code, err.lost = "device", true
      end
      -- anything programmed (acknowledged, or a frame in flight) anywhere in the plan?
      -- and the kept skip_mode bytes not back on the chip
      local wrote, lost_kept = false, {}
      for _, u in ipairs(units) do
        for _, r in ipairs(u.regions) do
          local st = r.state
          if st and (st.written or (st.acked or 0) > 0 or st.writing) then wrote = true end
          if r.kept and st and not st.written then lost_kept[#lost_kept + 1] = r end
        end
      end
      if phase == "chip-erase" then
        err.message = err.message .. " - the chip erase was sent and did not complete: the whole flash is in an "
          .. "unknown state (erased, partly erased or as before); nothing was written"
        err.state = "unknown"
      elseif phase == "verify" and err.code ~= "verify" then
        local names = {}
        for _, u in ipairs(units) do
          for _, r in ipairs(u.regions) do if not r.kept then names[#names + 1] = label(r) end end
        end
        err.message = err.message .. " - every region was written (" .. table.concat(names, ", ")
          .. "), but the final verify did not finish: they are unverified"
        err.unverified = table.concat(names, ", ")
      elseif phase == "gaps" then
        err.message = err.message .. " - while erasing, before any region was written: the plan is not written "
          .. "(what the range holds is unknown; run it again)"
        err.partial = true
      elseif not wrote and err.state then
        err.message = err.message .. " - nothing was written"
      elseif not wrote then
        local r = units[1] and units[1].regions[1]
        for _, u in ipairs(units) do
          for _, x in ipairs(u.regions) do if x.name == err.region then r = x end end
        end
        local st = r and describe_state(r.state, r) or "untouched"
        err.message = err.message .. " - nothing was written; " .. (r and label(r) or "the unit") .. " is now " .. st
        err.state = st
      else
        local never, untouched = {}, {}
        for _, u in ipairs(units) do
          for _, r in ipairs(u.regions) do
            local st = r.state
            if not r.kept and not u.skip and r.name ~= err.region then
              if st and st.erased and not st.written and (st.acked or 0) == 0 and not st.writing then
                never[#never + 1] = label(r)
              elseif not st then
                untouched[#untouched + 1] = label(r)
              end
            end
          end
        end
        err.message = err.message .. " - the unit is partially written"
        if #never > 0 then
          err.message = err.message .. "; never written since the erase: " .. table.concat(never, ", ")
          err.never_written = table.concat(never, ", ")
        end
        if #untouched > 0 then err.message = err.message .. "; not written: " .. table.concat(untouched, ", ") end
        err.partial = true
      end
      -- skip_mode bytes read before an erase and not yet back on the chip: the only copy is ours
      for _, k in ipairs(lost_kept) do
        local saved = save_kept(k)
        err.message = err.message .. string.format("; the %d skip_mode bytes at 0x%X (kept across the erase) may be "
          .. "lost: %s", k.size, k.address, saved and ("their old content is saved in " .. saved .. " (restore: "
          .. "ncpflash flash --erase 0 " .. string.format("0x%X", k.address) .. " " .. util.quote(saved) .. ")")
          or "their old content could not be saved")
      end
    end
    error(err, 0)
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
    opts.verify ~= false and string.format("verified %d of %d regions on chip after the last write (SHA-256)",
      sum.verified_regions, sum.regions) or "not verified (--no-verify): the chip's content is unchecked",
    string.format("time: connect %.2f s, erase %.2f s, write %.2f s%s, verify %.2f s, total %.2f s",
      sec.connect or 0, sec.erase, sec.write,
      sec.write > 0 and string.format(" (%.0f KiB/s)", sum.written / sec.write / 1024) or "", sec.verify,
      sec.total + (sec.connect or 0)),
  }
  if not opts.quiet then
    ev:result({ command = "flash", regions = sum.regions, written_regions = sum.written_regions,
      skipped = sum.skipped, resumed = sum.resumed, bytes_written = sum.written, bytes_sent = sum.sent,
      retries = sum.retries, verified_regions = sum.verified_regions, seconds = sec, summary = sum.summary })
  end
  return sum
end

-- Compare on-chip SHA-256 of each region with the host's. Returns list of
-- {name, address, size, match, got, expected}; raises "verify" when opts.raise and any differs.
function M.verify(ctx, s, plan, opts)
  M.check_device(plan, s)
  local res, bad = {}, {}
  for _, r in ipairs(plan.regions) do
    local got = s:verify_sha({ { addr = r.address, len = r.size, want = r.sha256 } })[1]
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

-- progcfg.load's options for `board` and `chip`: the chip name for $(CHIPNAME), where the
-- partition table goes (the board's or chip's flash_layout) and the erase sector; `extra` merged.
function M.ini_options(board, chip, extra)
  local layout = (board and board.flash_layout) or (chip and chip.flash_layout) or {}
  local o = { chipname = board and board.chipname, partition_addresses = layout.partition_table,
    sector_size = chip and chip.sector_size }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- The plan of a loaded flash_prog_cfg.ini (progcfg.load's result) for `board` and `chip`.
function M.config_plan(cfg, board, chip, opts)
  local regions = {}
  for _, r in ipairs(cfg.regions) do
    regions[#regions + 1] = { name = r.name, address = r.address, file = r.file, max_size = r.max_size }
  end
  return M.plan(regions, { flash_size = board.flash_size, skip = cfg.skip, chip = chip,
    allow_bad_image = opts and opts.allow_bad_image })
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
  local cfg = progcfg.load(ini, M.ini_options(board, ctx:chip(), { template = opts.template,
    allow_outside = opts.allow_outside }))
  for _, w in ipairs(cfg.warnings or {}) do ctx.ev:warn(w) end
  if cfg.boot2_isp_mode == 1 then
    ctx.ev:warn(ini .. ": boot2_isp_mode = 1 is not supported; using the ROM handshake")
  end
  local erase = opts.erase
  if erase == nil then erase = cfg.erase end
  if erase == 2 and #cfg.skip > 0 then
    errors.raise("input", ini .. ": skip_mode conflicts with a chip erase (erase = 2)")
  end
  local plan = opts.plan or M.config_plan(cfg, board, ctx:chip(), opts)
  for _, r in ipairs(plan.regions) do
    ctx.ev:info(string.format("  %-10s 0x%06X  %8d bytes  %s", r.name, r.address, r.size, r.file or ""),
      { region = r.name, address = r.address, size = r.size, file = r.file })
  end
  local s <close> = ctx:connect(opts.connect)
  local sum = M.run(ctx, s, plan, { erase = erase, verify = opts.verify, skip_unchanged = opts.skip_unchanged,
    resume = opts.resume, before = opts.before, chip_erase = opts.chip_erase })
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
