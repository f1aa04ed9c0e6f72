-- QConn_Flash / BLFlashCommand `flash_prog_cfg.ini` (protocol.md §5.4, st67w611m1.md §2.1).
--   [cfg]      erase = 0|1|2, skip_mode = addr, len[; addr, len ...], boot2_isp_mode = 0|1
--   [<name>]   filedir = path (relative to the ini; `*` matches exactly one file; $(CHIPNAME);
--              "/" or "\" separate on every platform; on Windows also a drive letter)
--              address = hex | @partition   (the entry called <name> in the [partition] table)
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local partition = require("ncpflash.partition")
local util = require("ncpflash.util")
local fpath = require("ncpflash.path")

local M = {}

local function fail(ini, line, key, msg, fields)
  local where = line and (ini .. ":" .. line) or ini
  local f = fields or {}
  f.file, f.line, f.key = ini, line, key
  errors.raise("input", string.format("%s: %s%s", where, key and ("[" .. key .. "] ") or "", msg), f)
end

local function q(s) return util.quote(s) end

-- Paths in an ini: "/" or, on Windows, also "\" and drive letters (ncpflash.path), so an ini
-- written on Windows (".\bin\app.bin") resolves as it does there.
local dirname, join, normalize = fpath.dirname, fpath.join, fpath.normalize

-- Region r (from ini `path`) goes into partition entry e: e's size becomes its limit.
local function fit_entry(path, r, e)
  r.max_size, r.entry = e.size0, e
  if r.size > e.size0 then
    fail(path, r.line, r.name .. ".filedir", string.format(
      "file %s is %d bytes, larger than partition entry %s (%d bytes at 0x%X)", r.file, r.size, e.name,
      e.size0, e.address0), { path = r.file, size = r.size, max_size = e.size0 })
  end
end

-- Addresses and skip_mode values are hex with or without 0x (BLFlashCommand reads them base 16,
-- protocol.md §5.4 and §6.6). Returns the value and, for a value that reads differently as a
-- decimal number ("65536"), a note saying how it was read.
local function parse_hex(s)
  s = s:match("^%s*(.-)%s*$")
  local digits = s:gsub("^0[xX]", "")
  if not (digits:match("^%x+$") and #digits <= 8) then return nil end
  local v = tonumber(digits, 16)
  if digits == s and s:match("^%d+$") and tonumber(s, 10) ~= v then
    return v, string.format("%q is read as hex 0x%X, as the vendor tool reads addresses (base 16); write "
      .. "0x%X to say so, or 0x%X if %s was meant as a decimal number", s, v, v, tonumber(s, 10), s)
  end
  return v
end

local function parse_number(s)
  s = s:match("^%s*(.-)%s*$")
  if s:match("^0[xX]%x+$") then return tonumber(s:sub(3), 16) end
  if s:match("^%d+$") then return tonumber(s) end
  return nil
end

-- Plain INI reader: returns list of sections {name=, line=, keys={k={value=, line=}}, order={}}.
M.INI_MAX = 1024 * 1024   -- an ini is a few hundred bytes; anything near this is another file

function M.read_ini(path)
  local st = sys.stat(path)
  if st and st.type ~= "file" then fail(path, nil, nil, "not a regular file") end
  if st and st.size > M.INI_MAX then
    fail(path, nil, nil, string.format("%s is %d bytes, more than an ini file can be (limit %d): is this the "
      .. "flash_prog_cfg.ini?", path, st.size, M.INI_MAX), { size = st.size })
  end
  local f, err = io.open(path, "rb")
  if not f then fail(path, nil, nil, "cannot read: " .. tostring(err)) end
  local text = f:read(M.INI_MAX + 1) or ""
  f:close()
  if #text > M.INI_MAX then fail(path, nil, nil, "more than an ini file can be (it grows while read)") end
  text = text:gsub("^\xEF\xBB\xBF", "")
  -- a binary file given as the ini: say so, and never quote its bytes
  local nul = text:find("%z")
  local _, bad = utf8.len(text)
  if nul or bad then
    local at = math.min(nul or math.huge, bad or math.huge)
    fail(path, nil, nil, string.format("not a text file (byte 0x%02X at offset %d): an ini is text; is this the "
      .. "flash_prog_cfg.ini?", text:byte(at), at - 1), { offset = at - 1 })
  end
  local sections, cur = {}, nil
  local n = 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local line = raw:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if line == "" or line:match("^[#;]") then -- luacheck: ignore 542
      -- blank or comment
    elseif line:match("^%[") then
      local name = line:match("^%[%s*([^%]]-)%s*%]$")
      if not name or name == "" then fail(path, n, nil, "malformed section header " .. q(line)) end
      for _, s in ipairs(sections) do
        if s.name == name then fail(path, n, name, "duplicate section (first at line " .. s.line .. ")") end
      end
      cur = { name = name, line = n, keys = {}, order = {} }
      sections[#sections + 1] = cur
    else
      local k, v = line:match("^([^=]-)%s*=%s*(.*)$")
      if not k or k == "" then fail(path, n, cur and cur.name, "expected key = value, found " .. q(line)) end
      if not cur then fail(path, n, k, "key outside any section") end
      v = v:gsub("%s+[#;].*$", "")
      v = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
      -- a second value for a key is ambiguous (which one does the vendor tool use?): refused
      local first = cur.keys[k]
      if first then
        fail(path, n, cur.name, string.format("duplicate key %s (first at line %d)", k, first.line),
          { first_line = first.line })
      end
      cur.keys[k] = { value = v, line = n }
      cur.order[#cur.order + 1] = k
    end
  end
  return sections
end

-- Does `name` match the glob `pat` (`*` = any run of characters, everything else literal)?
-- Linear backtracking to the last star: O(#pat * #name) for any pattern. (A Lua pattern with
-- one ".*" per star backtracks exponentially on "*****...": found by fuzzing the ini reader,
-- tests/fuzz/regress/ini.)
local function glob_match(pat, name)
  local p, i, star, mark = 1, 1, nil, 0
  while i <= #name do
    local c = pat:sub(p, p)
    if c == "*" then
      star, mark, p = p, i, p + 1
    elseif p <= #pat and c == name:sub(i, i) then
      p, i = p + 1, i + 1
    elseif star then
      p, mark = star + 1, mark + 1
      i = mark
    else
      return false
    end
  end
  while pat:sub(p, p) == "*" do p = p + 1 end
  return p > #pat
end
M.glob_match = glob_match

-- Resolve a path that may contain `*` in its last component; exactly one match required.
local function resolve_file(ini, line, section, path)
  if not path:find("*", 1, true) then return path end
  local dir, base = dirname(path), fpath.basename(path)
  if dir:find("*", 1, true) then
    fail(ini, line, section .. ".filedir", "wildcard only allowed in the file name: " .. path)
  end
  local names = sys.listdir(dir)
  if not names then fail(ini, line, section .. ".filedir", "no such directory: " .. dir) end
  local hits = {}
  for _, nm in ipairs(names) do if glob_match(base, nm) then hits[#hits + 1] = nm end end
  if #hits ~= 1 then
    fail(ini, line, section .. ".filedir", string.format("%q must match exactly one file, matched %d%s",
      path, #hits, #hits > 0 and (": " .. table.concat(hits, ", ")) or ""))
  end
  return dir .. "/" .. hits[1]
end

-- Where an ini's files may come from (unless opts.allow_outside): the ini's own folder, or the
-- release folder around it when the ini sits in a `Binaries/` tree, as ST's X-CUBE-ST67W61 does
-- (ST67W6X_Scripts/Binaries/NCP_Binaries/x.ini names ./../../LittleFS/littlefs/littlefs.bin, so
-- the root is ST67W6X_Scripts). Compared on real paths: a symlink cannot lead out either.
function M.release_root(dir)
  local real = normalize(sys.realpath(dir) or dir)
  local r = real:match("^(.*)/Binaries/") or real:match("^(.*)/Binaries$")
  if r == "" then return "/" end
  return r or real
end

local inside = fpath.inside

local function file_size(path)
  local st = sys.stat(path)
  if not st then return nil, "missing" end
  if st.type ~= "file" then return nil, "not a regular file" end
  return st.size
end

-- Parse and resolve an ini. opts.chipname substitutes $(CHIPNAME) (default "qcc743").
-- opts.allow_outside: accept files outside M.release_root (otherwise an input error).
-- opts.partition_addresses: where the [partition] file may go (the chip's or board's
-- flash_layout.partition_table; another address is an input error); opts.sector_size (4096):
-- an address off a sector boundary is a warning. A key given twice in a section is an input
-- error naming both lines; a decimal-looking address is read as hex, as the vendor tool reads
-- it, with a warning. Warnings are returned in cfg.warnings.
-- Returns {file=, dir=, erase=, skip={{address=, length=}}, boot2_isp_mode=, partition=(parsed
-- table or nil), regions={{name=, file=, address=, size=, max_size=, entry=, line=}}, warnings=}.
function M.load(path, opts)
  opts = opts or {}
  local sections = M.read_ini(path)
  local dir = util.dirname(path)
  local cfg = { file = path, dir = dir, erase = 1, skip = {}, boot2_isp_mode = 0, regions = {}, warnings = {} }
  local function warn(line, key, msg)
    cfg.warnings[#cfg.warnings + 1] = string.format("%s:%s: [%s] %s", path, tostring(line), key, msg)
  end
  local sector = opts.sector_size or 4096
  local chipname = opts.chipname or "qcc743"
  local pt, root
  for _, s in ipairs(sections) do
    if s.name:lower() == "cfg" then
      for _, k in ipairs(s.order) do
        local e = s.keys[k]
        if k == "erase" then
          local v = parse_number(e.value)
          if v ~= 0 and v ~= 1 and v ~= 2 then
            fail(path, e.line, "cfg.erase", "expected 0, 1 or 2, found " .. q(e.value))
          end
          cfg.erase = v
        elseif k == "skip_mode" then
          for pair in e.value:gmatch("[^;]+") do
            local a, l = pair:match("^%s*([^,]-)%s*,%s*(.-)%s*$")
            local av, an = parse_hex(a or "")
            local lv, ln = parse_hex(l or "")
            if not av or not lv then
              fail(path, e.line, "cfg.skip_mode", "expected addr, len[; addr, len], found " .. q(e.value))
            end
            if an then warn(e.line, "cfg.skip_mode", an) end
            if ln then warn(e.line, "cfg.skip_mode", ln) end
            if lv > 0 then cfg.skip[#cfg.skip + 1] = { address = av, length = lv } end
          end
        elseif k == "boot2_isp_mode" then
          local v = parse_number(e.value)
          if v ~= 0 and v ~= 1 then
            fail(path, e.line, "cfg.boot2_isp_mode", "expected 0 or 1, found " .. q(e.value))
          end
          cfg.boot2_isp_mode = v
        end
      end
    else
      local fd, ad = s.keys.filedir, s.keys.address
      if not fd then fail(path, s.line, s.name, "section has no filedir") end
      if not ad then fail(path, s.line, s.name, "section has no address") end
      -- "\" separates too, on every platform: an ini written on Windows (".\bin\app.bin") works
      -- on Linux as it does there (a Linux file name with a backslash cannot be named here)
      local rel = fd.value:gsub("%$%(CHIPNAME%)", chipname):gsub("\\", "/")
      -- opts.template: plain substitutions tried when the named file is absent
      -- (e.g. ST's "..._vxxx.bin" templates -> "..._v*.bin")
      if opts.template and not sys.stat(join(dir, rel)) then
        for from, to in pairs(opts.template) do rel = rel:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%"))) end
      end
      local file = normalize(resolve_file(path, fd.line, s.name, join(dir, rel)))
      local real = not opts.allow_outside and sys.realpath(file)
      if real then
        root = root or M.release_root(dir)
        if not inside(real, root) then
          fail(path, fd.line, s.name .. ".filedir", string.format("%s resolves to %s, outside the release folder %s",
            fd.value, real, root), { path = file, root = root,
            hint = "an ini may name files in its own folder or, in a Binaries/ tree, in the release folder around "
              .. "it; pass --allow-outside to flash files from elsewhere" })
        end
      end
      local size, why = file_size(file)
      if not size then
        fail(path, fd.line, s.name .. ".filedir", string.format("file %s: %s", file, why), { path = file })
      end
      if size == 0 then
        fail(path, fd.line, s.name .. ".filedir", string.format("file %s is empty", file), { path = file })
      end
      local r = { name = s.name, file = file, size = size, line = fd.line }
      if ad.value:match("^%s*@partition%s*$") then
        if not pt then
          fail(path, ad.line, s.name .. ".address", "@partition needs a [partition] section before it")
        end
        local e = partition.find(pt, s.name)
        if not e then
          local names = {}
          for _, x in ipairs(pt.entries) do names[#names + 1] = x.name end
          fail(path, ad.line, s.name .. ".address", string.format("no entry %q in partition table %s (entries: %s)",
            s.name, cfg.partition_file, table.concat(names, ", ")))
        end
        r.address = e.address0
        fit_entry(path, r, e)
      else
        local a, note = parse_hex(ad.value)
        if not a then
          fail(path, ad.line, s.name .. ".address", "expected a hex address or @partition, found " .. q(ad.value))
        end
        if note then warn(ad.line, s.name .. ".address", note) end
        r.address = a
      end
      if s.name:lower() == "partition" and opts.partition_addresses then
        local okaddr, where = false, {}
        for _, pa in ipairs(opts.partition_addresses) do
          okaddr = okaddr or pa == r.address
          where[#where + 1] = string.format("0x%X", pa)
        end
        if not okaddr then
          fail(path, ad.line, s.name .. ".address", string.format("0x%X: the partition table goes at %s (where "
            .. "boot2 reads it); at another address the module would not find it", r.address,
            table.concat(where, " or ")))
        end
      elseif r.address % sector ~= 0 then
        warn(ad.line, s.name .. ".address", string.format("0x%X is not %d KiB-aligned: the rest of its first sector "
          .. "(from 0x%X) is erased with it", r.address, sector // 1024, r.address - r.address % sector))
      end
      if s.name:lower() == "partition" then
        local data = util.readfile(file, "partition table", 1024 * 1024)
        local ok, res = pcall(partition.parse, data, { file = file })
        if not ok then
          fail(path, fd.line, s.name .. ".filedir", tostring(res), { cause = res })
        end
        pt = res
        cfg.partition, cfg.partition_file = pt, file
      end
      cfg.regions[#cfg.regions + 1] = r
    end
  end
  if #cfg.regions == 0 then fail(path, nil, nil, "no file sections") end
  -- regions placed at a partition entry's address inherit its size as their limit
  if pt then
    for _, r in ipairs(cfg.regions) do
      if not r.max_size and r.file ~= cfg.partition_file then
        for _, e in ipairs(pt.entries) do
          if e.address0 == r.address and e.size0 > 0 then
            fit_entry(path, r, e)
            break
          end
        end
      end
    end
  end
  if cfg.erase == 2 and #cfg.skip > 0 then
    fail(path, nil, "cfg.skip_mode", "skip_mode conflicts with erase = 2 (chip erase)")
  end
  return cfg
end

M.normalize = normalize

return M
