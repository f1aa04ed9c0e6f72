-- ncpflash.eraseplan: erase = 2 with the least erasing (issue 17).
--
--   local p = eraseplan.plan(s, units, sector)
--   -- p.chip: true = do the chip erase (p.why says why); else
--   -- p.erase: ranges {lo=, hi=} outside the regions' sectors that hold data (to erase),
--   -- p.class[u]: "match" (the unit's sectors already hold the plan's bytes), "blank" (erased:
--   --   write without an erase) or "dirty" (erase, then write), for each unit of flash.units
--
-- erase = 2 promises an end state: every region holds its file, every other byte reads 0xFF.
-- The chip is asked for the SHA-256 of flash ranges (0x60 / 0x3E / 0x61: no flash data crosses
-- the wire) and each digest is compared with two the host computes: the range as the plan wants
-- it (the regions' bytes, 0xFF around them) and the range erased. First the whole flash (one
-- check settles a blank or an already flashed module), then each unit (the regions' sectors),
-- then each stretch between units, bisected at 64 KiB boundaries down to the 64 KiB block where
-- it holds data. What holds data outside the units is erased, merged into as few 0x30 ranges as
-- possible (the ROM erases 64 KiB blocks where aligned, as Bouffalo's SDK loop does); a unit that
-- is neither as planned nor blank is erased before its writes, as with erase = 1.
--
-- The chip erase is kept when the flash may be encrypted (boot info: encrypt flag set, or no boot
-- info: the chip's digests of ciphertext say nothing about the plaintext the host knows), when
-- the flash size is unknown, and when the part's typical erase times (chip.erase_cost_ms) make
-- the chip erase cheaper than the units to erase.
local codec = require "ncpflash.core.codec"

local M = {}

local BLOCK = 65536

-- Digest of [a, b) as the plan wants it: the regions' bytes (sorted by address, not
-- overlapping), 0xFF elsewhere.
local FF = string.rep("\255", BLOCK)
local function ff_update(h, n)
  while n > 0 do
    local k = math.min(n, BLOCK)
    h:update(k == BLOCK and FF or FF:sub(1, k))
    n = n - k
  end
end

function M.target_sha(sorted, a, b)
  local h <close> = codec.sha256_new()
  local at = a
  for _, r in ipairs(sorted) do
    local lo, hi = math.max(r.address, a), math.min(r.address + r.size, b)
    if lo < hi then
      ff_update(h, lo - at)
      h:update(r.data:sub(lo - r.address + 1, hi - r.address))
      at = hi
    end
  end
  ff_update(h, b - at)
  return h:final()
end

local blank_cache = {}
function M.blank_sha(n)
  local d = blank_cache[n]
  if not d then
    local h <close> = codec.sha256_new()
    ff_update(h, n)
    d = h:final()
    blank_cache[n] = d
  end
  return d
end

-- Whether each range {addr=, len=} reads erased on chip: one XIP session of SHA-256 digests,
-- each compared with the digest of an erased range of its length. List of booleans.
function M.read_blank(s, ranges)
  if #ranges == 0 then return {} end
  local got, out = s:sha256_many(ranges), {}
  for i, r in ipairs(ranges) do out[i] = got[i] == M.blank_sha(r.len) end
  return out
end

-- Typical time (ms) of erasing [lo, hi) by the SDK's unit loop, at the part's typical times.
function M.cost(lo, hi, sector, t)
  local n = require("ncpflash.session").erase_units(lo, hi - 1, sector)
  return n.n64 * t.blk64 + n.n32 * t.blk32 + n.n4 * t.sector
end

-- The part's typical erase times (ms; chip per flash of this size). chip.erase_cost_ms, default
-- the typical column of Winbond's W25Q32FV datasheet (tSE 45 ms, tBE1 120 ms, tBE2 150 ms,
-- tCE 10 s for 4 MiB) - the figures ncpsim models (docs/api/ncpsim.md "Flash part").
function M.typical(chip, flash_size)
  local t = chip.erase_cost_ms or { sector = 45, blk32 = 120, blk64 = 150, chip = 10000 }
  return { sector = t.sector, blk32 = t.blk32, blk64 = t.blk64,
    chip = t.chip * math.max(1, (flash_size or 0x400000) / 0x400000) }
end

-- The gaps of [0, size) between the units (sorted by lo, not overlapping).
local function gaps(units, size)
  local sorted = {}
  for i, u in ipairs(units) do sorted[i] = u end
  table.sort(sorted, function(x, y) return x.lo < y.lo end)
  local out, at = {}, 0
  for _, u in ipairs(sorted) do
    if u.lo > at then out[#out + 1] = { lo = at, hi = u.lo } end
    at = math.max(at, u.hi)
  end
  if at < size then out[#out + 1] = { lo = at, hi = size } end
  return out
end
M.gaps = gaps

-- The erase ranges that cover `must` (sector-aligned {lo=, hi=} ranges to erase) without
-- touching `keep` (ranges that must not be erased), each 64 KiB block at the cheapest: the whole
-- block when nothing in it is kept (outside the regions an erase changes nothing that must stay:
-- those bytes end as 0xFF anyway), else 32 KiB halves or single sectors; adjacent ranges merged
-- (the SDK loop of the ROM picks the largest aligned unit that fits a range, so the merged range
-- erases the same units). `size`: the flash size.
function M.cover(must, keep, size, sector, t)
  local function hits(list, lo, hi)
    local n = 0
    for _, r in ipairs(list) do
      local a, b = math.max(r.lo, lo), math.min(r.hi, hi)
      if a < b then n = n + (b - a) end
    end
    return n
  end
  local blocks = {}
  for _, m in ipairs(must) do
    for b = m.lo // BLOCK, (m.hi - 1) // BLOCK do blocks[b] = true end
  end
  local order = {}
  for b in pairs(blocks) do order[#order + 1] = b end
  table.sort(order)
  local out = {}
  local function add(lo, hi)
    local last = out[#out]
    if last and last.hi == lo then last.hi = hi else out[#out + 1] = { lo = lo, hi = hi } end
  end
  local half = BLOCK // 2
  for _, b in ipairs(order) do
    local lo, hi = b * BLOCK, math.min(size, (b + 1) * BLOCK)
    if hi - lo == BLOCK and hits(keep, lo, hi) == 0 then
      add(lo, hi)
    else
      for h = lo, hi - 1, half do
        local he = math.min(hi, h + half)
        local need = hits(must, h, he) // sector
        if need > 0 then
          if he - h == half and hits(keep, h, he) == 0 and need * t.sector >= t.blk32 then
            add(h, he)
          else
            for a = h, he - 1, sector do
              if hits(must, a, a + sector) > 0 then add(a, a + sector) end
            end
          end
        end
      end
    end
  end
  return out
end

function M.plan(s, units, sector)
  local info = s.info or {}
  if info.encrypted ~= false then
    return { chip = true, why = info.encrypted and "the boot info says the flash is encrypted"
      or "no boot info: flash encryption unknown" }
  end
  local size = s.flash_size
  if not size or size % BLOCK ~= 0 then return { chip = true, why = "the flash size is unknown" } end
  for _, u in ipairs(units) do
    if u.hi > size then return { chip = true, why = "a region ends beyond the flash" } end
  end
  local sorted = {}
  for _, u in ipairs(units) do for _, r in ipairs(u.regions) do sorted[#sorted + 1] = r end end
  table.sort(sorted, function(x, y) return x.address < y.address end)
  local class, must, checks = {}, {}, 0
  s:xip_sha(function(sha)
    local function look(lo, hi)   -- "match" | "blank" | "dirty"
      checks = checks + 1
      local d = sha(lo, hi - lo)
      if d == M.blank_sha(hi - lo) then return "blank" end
      if d == M.target_sha(sorted, lo, hi) then return "match" end
      return "dirty"
    end
    local function blank(lo, hi) return look(lo, hi) == "blank" end
    -- [lo, hi) holds data: find the 64 KiB blocks (cut to the range) that do. Data lies mostly
    -- in runs (an image, the tail of a longer old one, a file system), so: the first and the
    -- last block with data (each asked alone first, then bisected: log2 of the blocks), then
    -- the same inside them while that finds blank blocks; a run of data that touches both ends
    -- of what is left is erased whole (blank blocks inside it too: cheaper than asking for each).
    local function trim(lo, hi)
      local cuts = {}
      local a = lo
      while a < hi do
        local e = math.min(hi, a - a % BLOCK + BLOCK)
        cuts[#cuts + 1] = { lo = a, hi = e }
        a = e
      end
      local function mark(i, j) must[#must + 1] = { lo = cuts[i].lo, hi = cuts[j].hi } end
      -- the first block with data in i..j ([cuts[i].lo, cuts[j].hi) holds data); each check
      -- hashes only what is still unknown (the blocks before x read blank), so a bisection
      -- hashes about the range once in all
      local function first(i, j)
        if i == j or not blank(cuts[i].lo, cuts[i].hi) then return i end
        local x, y = i + 1, j
        while x < y do
          local m = (x + y) // 2
          if blank(cuts[x].lo, cuts[m].hi) then x = m + 1 else y = m end
        end
        return x
      end
      -- the last block with data in i..j (cuts[i] holds data; the blocks after y read blank)
      local function last(i, j)
        if i == j or not blank(cuts[j].lo, cuts[j].hi) then return j end
        local x, y = i, j - 1
        while x < y do
          local m = (x + y + 1) // 2
          if blank(cuts[m].lo, cuts[y].hi) then y = m - 1 else x = m end
        end
        return x
      end
      local function span(f, l)   -- f and l hold data
        if l - f < 2 then mark(f, l); return end
        local i, j = f + 1, l - 1
        if blank(cuts[i].lo, cuts[j].hi) then mark(f, f); mark(l, l); return end
        local f2 = first(i, j)
        local l2 = last(f2, j)
        if f2 == i and l2 == j then mark(f, l); return end
        mark(f, f)
        span(f2, l2)
        mark(l, l)
      end
      local f = first(1, #cuts)
      span(f, last(f, #cuts))
    end
    local whole = look(0, size)
    for _, u in ipairs(units) do
      local tblank = M.target_sha(sorted, u.lo, u.hi) == M.blank_sha(u.hi - u.lo)
      local c = whole
      if c == "dirty" then c = look(u.lo, u.hi) end
      if c == "blank" and tblank then c = "match" end
      class[u] = c
      if c == "dirty" then trim(u.lo, u.hi) end
    end
    if whole == "dirty" then
      for _, g in ipairs(gaps(units, size)) do
        if not blank(g.lo, g.hi) then trim(g.lo, g.hi) end
      end
    end
  end)
  -- what must not be erased: the units already as planned
  local keep = {}
  for _, u in ipairs(units) do
    if class[u] == "match" then keep[#keep + 1] = { lo = u.lo, hi = u.hi } end
  end
  local t = M.typical(s.chip, size)
  local erase = M.cover(must, keep, size, sector, t)
  local sel = 0
  for _, e in ipairs(erase) do sel = sel + M.cost(e.lo, e.hi, sector, t) end
  -- units whose sectors are erased now start erased; the others keep their class
  for _, u in ipairs(units) do
    if class[u] == "dirty" then class[u] = "erased" end
  end
  local p = { chip = sel > t.chip, class = class, erase = erase, checks = checks, cost_ms = sel, chip_ms = t.chip }
  if p.chip then
    p.why = string.format("erasing what holds data would take about %.1f s, the chip erase %.1f s", sel / 1000,
      t.chip / 1000)
  end
  return p
end

return M
