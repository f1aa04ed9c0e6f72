-- ncpflash.provision: per-unit data for `flash --provision FILE.lua`.
--
-- FILE.lua is plain Lua (text only) that returns either a function or a table:
--
--   return function(dev, ctx) return regions end          -- or
--   return { unit = function(dev, ctx) ... end,           -- after connect: regions to write, or nil
--            commit = function(dev, ctx) ... end,         -- after every region was verified
--            release = function(dev, ctx, err) ... end }  -- when the flash failed
--
-- dev is the device identity: {chip_id=, mac=, port=, index= (job number with several ports),
-- rom_version=, flash_size=, jedec=}.  regions is a list of {address=, data= | file=, name=},
-- validated like the command's own regions and written and verified with them.
--
-- CSV helper, safe when several devices (threads of one ncpflash, or several processes) use
-- one file: every read-modify-write holds an exclusive flock(2) on FILE.lock and replaces the
-- file atomically.
--
--   local csv = require("ncpflash.provision").csv("units.csv")
--   local row = csv:claim(dev)     -- the row reserved for this chip, else the first free one
--   csv:commit(row, dev)           -- status "used <chip id> <UTC time>"
--   csv:release(row, dev)          -- status "" again (only while reserved by this chip)
--
-- The file has a header line; a "status" column is added when missing.  A claimed row is marked
-- "reserved <chip id>" at once, so no other device takes it, and "used ..." only after verify;
-- a unit that failed (or was interrupted) keeps its reservation until release, and a rerun on the
-- same chip (e.g. flash --resume) gets the same row back.
local sys = require "ncpflash.core.sys"
local jobs = require "ncpflash.core.jobs"
local errors = require "ncpflash.errors"
local util = require "ncpflash.util"

local M = {}

---------------------------------------------------------------------------------------------------
-- CSV

local function split_csv_line(line)
  local out, i, n = {}, 1, #line
  while i <= n + 1 do
    if line:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while j <= n do
        local c = line:sub(j, j)
        if c == '"' then
          if line:sub(j + 1, j + 1) == '"' then buf[#buf + 1] = '"'; j = j + 2
          else j = j + 1; break end
        else buf[#buf + 1] = c; j = j + 1 end
      end
      out[#out + 1] = table.concat(buf)
      i = j + 1   -- skip the comma
    else
      local j = line:find(",", i, true) or n + 1
      out[#out + 1] = line:sub(i, j - 1)
      i = j + 1
    end
  end
  return out
end
M.split_csv_line = split_csv_line

local function csv_field(v)
  v = tostring(v or "")
  if v:find('[,"\n]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end

local Csv = {}
Csv.__index = Csv

function M.csv(path, opts)
  opts = opts or {}
  if not sys.stat(path) then errors.raise("input", "provisioning CSV " .. path .. " not found", { file = path }) end
  return setmetatable({ path = path, lock_path = path .. ".lock", timeout = opts.lock_timeout or 30 }, Csv)
end

function Csv:_read()
  local text = util.readfile(self.path, "provisioning CSV")
  local lines = {}
  for l in text:gmatch("[^\r\n]+") do lines[#lines + 1] = l end
  if #lines == 0 then
    errors.raise("input", self.path .. ": empty CSV (a header line is needed)", { file = self.path })
  end
  local header = split_csv_line(lines[1])
  local status_col
  for i, h in ipairs(header) do if h == "status" then status_col = i end end
  if not status_col then header[#header + 1] = "status"; status_col = #header end
  local rows = {}
  for i = 2, #lines do
    local cells = split_csv_line(lines[i])
    local row = { _n = i - 1, _cells = cells }
    for c, h in ipairs(header) do row[h] = cells[c] or "" end
    rows[#rows + 1] = row
  end
  return header, rows, status_col
end

function Csv:_write(header, rows)
  local out = {}
  local line = {}
  for i, h in ipairs(header) do line[i] = csv_field(h) end
  out[1] = table.concat(line, ",")
  for _, row in ipairs(rows) do
    line = {}
    for i, h in ipairs(header) do line[i] = csv_field(row[h]) end
    out[#out + 1] = table.concat(line, ",")
  end
  local tmp = ("%s.%d.%d.tmp"):format(self.path, sys.pid(), math.random(1, 1e9))
  local f = io.open(tmp, "wb")
  if not f or not f:write(table.concat(out, "\n"), "\n") then
    if f then f:close() end
    os.remove(tmp)
    errors.raise("input", "cannot write " .. tmp, { file = self.path })
  end
  f:close()
  -- sys.replace: atomic over the old file on Windows too (MoveFileEx), where os.rename fails
  local replaced, rerr = sys.replace(tmp, self.path)
  if not replaced then
    os.remove(tmp)
    errors.raise("input", "cannot replace " .. self.path .. ": " .. tostring(rerr), { file = self.path })
  end
end

-- Run fn(header, rows) holding the lock; rows are written back when fn returns true.
function Csv:_locked(fn)
  local lock <close> = jobs.lock(self.lock_path, self.timeout)
  local header, rows = self:_read()
  local res, changed = fn(header, rows)
  if changed then self:_write(header, rows) end
  lock:unlock()
  return res
end

local function public(row)
  local out = {}
  for k, v in pairs(row) do if k:sub(1, 1) ~= "_" then out[k] = v end end
  out.row = row._n
  return out
end

--- Reserve a row for dev: the one already reserved for dev.chip_id, else the first free one.
--- Returns the row as a table of column -> value (plus row = its number); raises "input" when
--- every row is used or reserved.
function Csv:claim(dev)
  local mine = "reserved " .. tostring(dev.chip_id)
  return self:_locked(function(_, rows)
    for _, r in ipairs(rows) do
      if r.status == mine then return public(r), false end
    end
    for _, r in ipairs(rows) do
      if r.status == "" then
        r.status = mine
        return public(r), true
      end
    end
    errors.raise("input", ("%s: no free row left (%d rows, all used or reserved)"):format(self.path, #rows),
      { file = self.path })
  end)
end

local function set_status(self, row, dev, status)
  local mine = "reserved " .. tostring(dev.chip_id)
  return self:_locked(function(_, rows)
    local r = rows[row.row]
    if not r or r.status ~= mine then return false, false end
    r.status = status
    return true, true
  end)
end

--- Mark a claimed row used (after verify).  Returns true, or false when the row is no longer
--- reserved for this chip.
function Csv:commit(row, dev)
  return set_status(self, row, dev, ("used %s %s"):format(tostring(dev.chip_id), os.date("!%Y-%m-%dT%H:%M:%SZ")))
end

--- Give a claimed row back (the flash failed).
function Csv:release(row, dev)
  return set_status(self, row, dev, "")
end

---------------------------------------------------------------------------------------------------
-- the hook file

local Hook = {}
Hook.__index = Hook

--- Load a provisioning file (text only) for ctx.
function M.load(ctx, path)
  local src = util.readfile(path, "provisioning file", 4 * 1024 * 1024)
  local env = setmetatable({}, { __index = _G })
  local fn, err = load(src, "@" .. path, "t", env)
  if not fn then errors.raise("input", "cannot load " .. path .. ": " .. err, { file = path }) end
  local h = fn()
  if type(h) == "function" then h = { unit = h } end
  if type(h) ~= "table" or type(h.unit) ~= "function" then
    errors.raise("input", path .. ": must return a function(dev, ctx) or a table with unit = function(dev, ctx)",
      { file = path })
  end
  return setmetatable({ ctx = ctx, path = path, hook = h }, Hook)
end

-- Call the script's function `name`: an error it raises that is not an ncpflash error (a bug or
-- an error() in the script) is a bad input file (exit 7) naming the script.
function Hook:call(name, ...)
  local res = table.pack(pcall(self.hook[name], ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local e = res[2]
  if errors.is(e) then error(e, 0) end
  errors.raise("input", ("%s: the provisioning script's %s failed: %s"):format(self.path, name, tostring(e)),
    { file = self.path })
end

function Hook:identity(s)
  local job = self.ctx.job
  return { chip_id = s.info and s.info.chip_id, mac = s:mac(), port = s.url, index = job and job.index or 1,
    rom_version = s.info and s.info.rom_version, flash_size = s.flash_size, jedec = s.jedec_hex }
end

--- flash.run's `before` hook: ask for the unit's regions and add them to the plan.
function Hook:before(s, plan)
  local flash = require "ncpflash.flash"
  self.dev = self:identity(s)
  local regions = self:call("unit", self.dev, self.ctx)
  if regions == nil or #regions == 0 then
    self.ctx.ev:info("provision: no per-unit data for chip " .. tostring(self.dev.chip_id))
    return
  end
  for i, r in ipairs(regions) do r.name = r.name or ("unit" .. i) end
  local extra = flash.plan(regions, { flash_size = plan.flash_size, chip = plan.chip })
  local all = {}
  for _, r in ipairs(plan.regions) do all[#all + 1] = r end
  for _, r in ipairs(extra.regions) do all[#all + 1] = r end
  flash.check_overlaps(all)   -- overlaps with the image set are input errors
  for _, r in ipairs(extra.regions) do
    plan.regions[#plan.regions + 1] = r
    plan.bytes = plan.bytes + r.size
    self.ctx.ev:info(("provision: %s @0x%X, %d bytes for chip %s"):format(r.name, r.address, r.size,
      tostring(self.dev.chip_id)), { region = r.name, address = r.address, size = r.size, provision = true })
  end
end

function Hook:commit()
  if self.dev and self.hook.commit then self:call("commit", self.dev, self.ctx) end
end

function Hook:release(err)
  if self.dev and self.hook.release then
    local ok, e = pcall(self.hook.release, self.dev, self.ctx, err)
    if not ok then
      self.ctx.ev:warn("provision: release failed: " .. tostring(type(e) == "table" and e.message or e))
    end
  end
end

return M
