-- ncpflash.journal: what `flash --resume` needs to continue an interrupted flash.
--
-- One file per chip: $XDG_STATE_HOME/ncpflash/journal/<chip id>.json (default
-- ~/.local/state/ncpflash/journal/; NCPFLASH_JOURNAL_DIR overrides the directory).  It names
-- the plan (address, size and SHA-256 of every region, the erase policy) and records, as the
-- flash goes on, whether the chip erase was done, which regions were started and which were
-- verified by on-chip SHA-256.  Every update replaces the file atomically (write + rename), so a
-- power loss or a pulled cable leaves either the old or the new record.  A successful flash
-- removes the file: there is nothing left to resume.
--
-- On --resume with a journal of the same plan nothing it claims is taken on trust: the chip
-- erase is not repeated; a region recorded as verified is checked by on-chip SHA-256 and left
-- alone only when it matches (else rewritten, with a warning); a region that was started is
-- erased and rewritten; a region never started after the chip erase is written without an
-- erase only when its sectors read blank on chip (else they are erased, with a warning).
-- Without a journal (or for another plan) the flash starts from the beginning.
local sys = require "ncpflash.core.sys"
local codec = require "ncpflash.core.codec"
local util = require "ncpflash.util"
local json = require "ncpflash.json"
local fpath = require "ncpflash.path"

local M = {}

function M.dir()
  local d = sys.getenv("NCPFLASH_JOURNAL_DIR")
  if d and d ~= "" then return d end
  local state = fpath.state_dir() -- $XDG_STATE_HOME/ncpflash; Windows: %APPDATA%\ncpflash\state
  return state and (state .. "/journal") or nil
end

local function key(r)
  return ("%08X:%d:%s"):format(r.address, r.size, codec.hex(r.sha256))
end
M.key = key

local function plan_id(plan, erase)
  local parts = { "erase=" .. tostring(erase) }
  for _, r in ipairs(plan.regions) do parts[#parts + 1] = key(r) end
  return codec.hex(codec.sha256(table.concat(parts, "\n")))
end

local J = {}
J.__index = J

--- Open the journal of session s's chip for plan (erase policy `erase`). Returns the journal
--- (never nil; j.resumed says whether an earlier run of this plan was found).
function M.open(ctx, s, plan, erase)
  local dir = M.dir()
  local chip_id = s.info and s.info.chip_id or "unknown"
  local self = setmetatable({ ev = ctx.ev, path = dir and (dir .. "/" .. chip_id .. ".json"),
    rec = { v = 1, chip_id = chip_id, mac = s.mac and s:mac() or nil, plan = plan_id(plan, erase),
      chip_erased = false, started = {}, verified = {} } }, J)
  if not self.path then
    ctx.ev:warn("--resume: no journal directory (set XDG_STATE_HOME or HOME); this run cannot be resumed")
    return self
  end
  local f = io.open(self.path, "rb")
  if f then
    local text = f:read("a")
    f:close()
    local ok, old = pcall(json.decode, text or "")
    if ok and type(old) == "table" and old.plan == self.rec.plan then
      old.started = old.started or {}
      old.verified = old.verified or {}
      self.rec = old
      self.resumed = true
      local n = 0
      for _ in pairs(old.verified) do n = n + 1 end
      ctx.ev:info(("resume: journal %s: %d of %d regions verified before%s"):format(self.path, n,
        #plan.regions, old.chip_erased and ", chip erase done" or ""),
        { journal = self.path, verified_before = n, chip_erased = old.chip_erased })
    elseif ok and type(old) == "table" then
      ctx.ev:info(("resume: journal %s is for another image set; starting from the beginning"):format(self.path),
        { journal = self.path })
    else
      ctx.ev:warn(("resume: journal %s is unreadable; starting from the beginning"):format(self.path))
    end
  else
    ctx.ev:info(("resume: no journal for chip %s; starting from the beginning (journal %s)"):format(chip_id,
      self.path), { journal = self.path })
  end
  self:save()
  return self
end

function J:save()
  if not self.path then return end
  self.rec.updated = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if not sys.mkdirs(util.dirname(self.path)) then
    self.ev:warn("--resume: cannot create " .. util.dirname(self.path))
    self.path = nil
    return
  end
  local tmp = ("%s.%d.%d.tmp"):format(self.path, sys.pid(), math.random(1, 1e9))
  local f = io.open(tmp, "wb")
  local ok = f and f:write(json.encode(self.rec), "\n")
  if f then f:close() end
  -- sys.replace: atomic over the old journal on Windows too (MoveFileEx), where os.rename fails
  if not ok or not sys.replace(tmp, self.path) then
    os.remove(tmp)
    self.ev:warn("--resume: cannot write the journal " .. self.path)
  end
end

function J:chip_erased() return self.resumed and self.rec.chip_erased end
function J:verified(r) return self.resumed and self.rec.verified[key(r)] == true end
function J:started(r) return self.rec.started[key(r)] == true end

function J:mark_chip_erased()
  self.rec.chip_erased = true
  self.rec.started, self.rec.verified = {}, {}
  self:save()
end

function J:mark_started(r)
  self.rec.started[key(r)] = true
  self.rec.verified[key(r)] = nil
  self:save()
end

function J:mark_verified(r)
  self.rec.verified[key(r)] = true
  self:save()
end

--- The whole plan is on the chip: nothing left to resume.
function J:complete()
  if self.path then os.remove(self.path) end
end

return M
