-- ncpflash.chip: chip files (lua/ncpflash/chips/NAME.lua, user chips/NAME.lua) as chip tables.
--
--   chip.load(name)   -> the chip table, its `base` resolved (raises usage for an unknown name)
--   chip.resolve(t)   -> the same for a table (a chip file's value)
--   chip.exists(name) -> true when a chip file of that name can be loaded
--   chip.names()      -> every chip file name;  chip.all() -> every chip with a boot-info layout
--
-- Inheritance: a chip file that says `base = "bl616"` lists only what differs. Each top-level
-- field it gives replaces the base's field as a whole (a `header` layout, a `sync` table, a
-- `boot_info` layout are given complete); fields it does not give are the base's. `false`
-- is a value like any other (e.g. `rom_timeout = false`: this ROM has no 0x23). A base can
-- have a base of its own.
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")

local M = {}

local resolved = setmetatable({}, { __mode = "k" })   -- chip file table -> resolved table

local function module(name) return "ncpflash.chips." .. name end

local function user_dir() return "$XDG_CONFIG_HOME/ncpflash/chips/NAME.lua (default ~/.config/ncpflash/chips/)" end

function M.exists(name)
  return type(name) == "string" and name:match("^[%w_%-]+$") ~= nil and util.module_exists(module(name))
end

local function resolve(t, seen)
  if type(t) ~= "table" or t.base == nil then return t end
  if resolved[t] then return resolved[t] end
  local bname = t.base
  if type(bname) ~= "string" or not M.exists(bname) then
    errors.raise("usage", string.format("chip %s: base %q is not a chip file (files go in %s)", tostring(t.name),
      tostring(bname), user_dir()))
  end
  if seen[bname] then
    errors.raise("usage", string.format("chip %s: base %q leads back to itself", tostring(t.name), bname))
  end
  seen[bname] = true
  local base = resolve(require(module(bname)), seen)
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(t) do out[k] = v end
  out.base = bname
  out.name = t.name
  resolved[t] = out
  return out
end

function M.resolve(t) return resolve(t, {}) end

function M.load(name)
  if not M.exists(name) then
    errors.raise("usage", string.format("unknown chip %q (built in: %s; user chips go in %s)", tostring(name),
      table.concat(M.names(), ", "), user_dir()))
  end
  local c = M.resolve(require(module(name)))
  if type(c) == "table" then c.name = c.name or name end
  return c
end

function M.names() return util.module_names("chips") end

-- Chip tables with a boot-info layout (the ones detection and header identification consider).
function M.all()
  local out = {}
  for _, n in ipairs(M.names()) do
    local ok, c = pcall(M.load, n)
    if ok and type(c) == "table" and type(c.boot_info) == "table" and type(c.rom_versions) == "table" then
      out[#out + 1] = c
    end
  end
  return out
end

return M
