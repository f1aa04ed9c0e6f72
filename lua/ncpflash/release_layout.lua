-- ncpflash.release_layout: which ini and which firmware version of a vendor release folder a
-- profile uses. Pure: reads folder listings and ini text, talks to no chip.
--
-- X-CUBE-ST67W61 layouts (st67w611m1.md §1.2, §2.1, §3.3):
--   1.1.0  one ini per profile, naming one firmware file (..._v2.0.89.bin)
--   1.2.0  the main ini (newest firmware) plus *_v2.0.89.ini copies
--   1.3.0  one template ini per profile naming ./st67w611m_<profile>_vxxx.bin; NCP_Binaries holds
--          several versions of each image (.bin.ota and .xz.ota beside each .bin). ST's script
--          takes its argument <x.y.z> when that file exists, else the highest version (version
--          sort), and writes <profile>_flash_prog_cfg_auto.ini from the template.
-- ncpflash does the same without writing anything: the template's file name is substituted
-- when the ini is loaded (progcfg `template`).
--
-- The board's `release` table drives it:
--   subdirs      folders under the given folder to look in ("" = the folder itself)
--   ini          {profile = Lua pattern of the profile's ini names}
--   firmware     {profile = file name prefix before the version ("st67w611m_mission_t02_v")}
--   placeholder  the version text of a template ("xxx": ..._vxxx.bin)
--
--   select(board, profile, path, version) -> selection (see below)
--   describe(sel)                          -> one line saying which file was picked and why
--   check_template(board, ini)             raises an input error explaining how to choose when
--                                          `ini` is a template (flash --config TEMPLATE.ini)
--   parse_version(s), compare(a, b), version_list(list)
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local progcfg = require("ncpflash.progcfg")

local M = {}

local function esc(s) return (s:gsub("%p", "%%%0")) end

--- "2.0.106" or "v2.0.106" -> list of numbers and the canonical text "2.0.106"; nil when `s` is
--- not dot-separated decimal numbers.
function M.parse_version(s)
  if type(s) ~= "string" then return nil end
  local t = s:match("^[vV]?(%d+[%.%d]*)$")
  if not t or t:find("%.%.") or t:sub(-1) == "." then return nil end
  local parts = {}
  for n in t:gmatch("%d+") do parts[#parts + 1] = tonumber(n) end
  return parts, t
end

--- Version order (as `sort -V` on these names): true when version text a < b.
function M.compare(a, b)
  local pa, pb = M.parse_version(a), M.parse_version(b)
  for i = 1, math.max(#pa, #pb) do
    local x, y = pa[i] or -1, pb[i] or -1
    if x ~= y then return x < y end
  end
  return false
end

--- "2.0.89, 2.0.97, 2.0.106" (sorted copy).
function M.version_list(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t, M.compare)
  return table.concat(t, ", ")
end

local function join(dir, rel)
  if rel:sub(1, 1) == "/" then return rel end
  return progcfg.normalize(dir .. "/" .. rel:gsub("^%./", ""))
end

local function is_file(path)
  local st = sys.stat(path)
  return st ~= nil and st.type == "file"
end

-- The firmware versions present in `dir`: {version text = file name} for files PREFIX<ver>.bin
-- (not the .bin.ota / .xz.ota beside them).
local function present(dir, prefix)
  local out = {}
  for _, n in ipairs(sys.listdir(dir) or {}) do
    local v = n:match("^" .. esc(prefix) .. "(.+)%.bin$")
    if v and M.parse_version(v) and is_file(dir .. "/" .. n) then out[v] = n end
  end
  return out
end

-- The firmware section of an ini for `prefix`: {section=, line=, filedir=, name=, dir=, version=
-- | template=true}, or nil when no section names such a file.
local function firmware_entry(ini, prefix, placeholder)
  for _, s in ipairs(progcfg.read_ini(ini)) do
    local fd = s.keys.filedir
    local base = fd and fd.value:match("([^/\\]+)$")
    local v = base and base:match("^" .. esc(prefix) .. "(.+)%.bin$")
    if v then
      local e = { section = s.name, line = fd.line, filedir = fd.value, name = base,
        dir = util.dirname(join(util.dirname(ini), fd.value)) }
      if v == placeholder then e.template = true
      else e.version = v end
      return e
    end
  end
  return nil
end

local function profile_inis(rel, profile, path)
  local st = sys.stat(path)
  if not st then errors.raise("input", "no such file or directory: " .. path, { file = path }) end
  if st.type == "file" then return { path }, util.dirname(path) end
  local tried = {}
  for _, sub in ipairs(rel.subdirs or { "" }) do
    local d = sub == "" and path or (path .. "/" .. sub)
    local names = sys.listdir(d)
    if names then
      local hits = {}
      for _, n in ipairs(names) do
        -- ST's script writes <profile>_flash_prog_cfg_auto.ini while it runs and deletes it after:
        -- a leftover one is not a release file
        if n:match(rel.ini[profile]) and not n:match("_auto%.ini$") then hits[#hits + 1] = d .. "/" .. n end
      end
      if #hits > 0 then return hits, d end
      tried[#tried + 1] = d
    end
  end
  errors.raise("input", ("%s: no ini matching %s in %s"):format(profile, rel.ini[profile],
    #tried > 0 and table.concat(tried, ", ") or path), { file = path,
    hint = "give ST's ST67W6X_Scripts folder, its Binaries/NCP_Binaries folder, or the ini itself" })
end

--- Pick the ini and the firmware version of `profile` in `path` (a release folder or an ini).
--- `want` is a version text ("2.0.97") or nil for the newest. Returns
---   {ini=, dir=, version= (nil: the ini names no versioned firmware), versions= (sorted list of
---    the versions present), newest=, requested=, template= (bool), firmware= (path),
---    substitute= (progcfg template table or nil), inis= (candidates looked at)}
--- and raises an input error (listing the versions present) when `want` is not there.
function M.select(board, profile, path, want)
  local rel = board.release
  if not rel or not rel.ini or not rel.ini[profile] then
    errors.raise("usage", ("board %s has no release profile %s"):format(tostring(board.name), profile))
  end
  if want ~= nil then
    local _, canon = M.parse_version(want)
    if not canon then
      errors.raise("usage", ("--version %q: expected a version like 2.0.106"):format(tostring(want)))
    end
    want = canon
  end
  local inis, dir = profile_inis(rel, profile, path)
  local prefix = rel.firmware and rel.firmware[profile]
  local by_version, template = {}, nil
  for _, ini in ipairs(inis) do
    -- an ini without a recognised firmware name, or naming a file that is missing, offers no
    -- version (with no other ini it is flashed as it is, and progcfg.load reports a missing file)
    local e = prefix and firmware_entry(ini, prefix, rel.placeholder)
    if e and e.template then
      template = template or { ini = ini, entry = e }
      for v, name in pairs(present(e.dir, prefix)) do
        by_version[v] = by_version[v] or { ini = ini, file = e.dir .. "/" .. name, template = true,
          substitute = { [e.name] = name }, entry = e }
      end
    elseif e and is_file(e.dir .. "/" .. e.name) and M.parse_version(e.version) then
      local _, v = M.parse_version(e.version)
      -- an ini naming the version outright wins over a template for the same file
      if not by_version[v] or by_version[v].template then
        by_version[v] = { ini = ini, file = e.dir .. "/" .. e.name, entry = e }
      end
    end
  end
  local versions = {}
  for v in pairs(by_version) do versions[#versions + 1] = v end
  table.sort(versions, M.compare)
  local sel = { dir = dir, versions = versions, requested = want, inis = inis, newest = versions[#versions] }
  local pick = want or sel.newest
  if want and not by_version[want] then
    errors.raise("input", ("%s: firmware version %s is not in %s (%s)"):format(profile, want, dir,
      #versions > 0 and ("present: " .. table.concat(versions, ", ")) or
      ("no " .. (prefix or profile) .. "*.bin files there")), { file = dir, version = want, versions = versions,
      hint = #versions > 0 and ("drop --version for the newest (" .. sel.newest .. "), or pick one of those")
        or nil })
  end
  if not pick then
    if template then
      errors.raise("input", ("%s:%d: [%s] filedir %s is a template, and %s holds no %s<version>.bin to choose "
        .. "from"):format(template.ini, template.entry.line, template.entry.section, template.entry.filedir,
        template.entry.dir, prefix), { file = template.ini, line = template.entry.line })
    end
    if #inis == 1 then          -- one ini without a recognised firmware name: flash it as it is
      sel.ini = inis[1]
      return sel
    end
    errors.raise("input", ("%s: %d inis in %s and none names a %s*.bin that is there (%s); pass one of them"):format(
      profile, #inis, dir, prefix or profile, table.concat(inis, ", ")), { file = dir })
  end
  local hit = by_version[pick]
  sel.ini, sel.version, sel.firmware, sel.template = hit.ini, pick, hit.file, hit.template == true
  sel.substitute = hit.substitute
  sel.section = hit.entry.section
  return sel
end

--- One line: which firmware file, why (newest or asked for), from which ini.
function M.describe(sel, profile)
  if not sel.version then return ("%s: using %s"):format(profile, sel.ini) end
  local why
  if sel.requested then why = "asked for with --version"
  elseif #sel.versions > 1 then
    why = ("the newest of %s; --version X.Y.Z picks another"):format(table.concat(sel.versions, ", "))
  else why = "the only version there" end
  local name = sel.firmware:match("([^/]+)$")
  return ("%s: firmware %s (%s), using %s%s"):format(profile, name, why, sel.ini,
    sel.template and " (a template: its _vxxx name stands for the version)" or "")
end

--- Raise an input error explaining how to choose a version when `ini` names a template file
--- that is absent (flash --config on an X-CUBE-ST67W61 1.3.0 ini). Nothing happens otherwise.
function M.check_template(board, ini)
  local rel = board and board.release
  if not rel or not rel.placeholder or not rel.firmware then return end
  for profile, prefix in pairs(rel.firmware) do
    local e = firmware_entry(ini, prefix, rel.placeholder)
    if e and e.template and not is_file(e.dir .. "/" .. e.name) then
      local list = {}
      for v in pairs(present(e.dir, prefix)) do list[#list + 1] = v end
      table.sort(list, M.compare)
      local cmd = ("ncpflash %s/%s %s"):format(board.name, profile, ini)
      errors.raise("input", ("%s:%d: [%s] filedir %s is a template (X-CUBE-ST67W61 1.3.0 and later): %q stands "
        .. "for a firmware version, and %s holds %s. Choose with the profile recipe: `%s` takes the newest, as "
        .. "ST's script does; add --version X.Y.Z for another"):format(ini, e.line, e.section, e.filedir,
        "v" .. rel.placeholder, e.dir, #list > 0 and ("versions " .. table.concat(list, ", "))
          or ("no " .. prefix .. "*.bin file"), cmd),
        { file = ini, line = e.line, key = e.section .. ".filedir", versions = list,
          hint = "or copy the ini and name one file in its [" .. e.section .. "] filedir" })
    end
  end
end

--- The release's Binaries folder (holding NCP_Binaries, QConn_Flash, NCP_info, <BOARD>_Binaries)
--- for a folder or ini inside it: the nearest ".../Binaries", else the parent of NCP_Binaries.
function M.binaries_dir(path)
  local real = sys.realpath(path) or path
  local st = sys.stat(real)
  if st and st.type == "file" then real = util.dirname(real) end
  local b = real:match("^(.*/Binaries)/") or real:match("^(.*/Binaries)$")
  if b then return b end
  if sys.stat(real .. "/Binaries") then return real .. "/Binaries" end
  if real:match("/NCP_Binaries$") then return util.dirname(real) end
  return real
end

return M
