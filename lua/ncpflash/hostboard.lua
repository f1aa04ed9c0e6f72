-- ncpflash.hostboard: ST's NUCLEO kits as the module's host (`--host auto|BOARD` of the
-- st67w611m1/* recipes; st67w611m1.md §3.3, §5). From the host-board table (data:
-- boards/<board>_hosts.lua) it finds STM32_Programmer_CLI (PATH, then STM32CubeProgrammer's
-- default folders), names the board (the programmer's "Board :" line, aliases, a menu for a bare
-- ST-LINK), finds the ST-LINK virtual COM port, checks every file before anything runs, and
-- builds the reset strategy of kind "host" (reset/host.lua) whose enter sequence programs the
-- NCP loader and whose run sequence programs the host application back.
--
--   local h = hostboard.prepare(ctx, board, {host = "auto", programmer = nil, profile = "mission_t02",
--                                            binaries = DIR})
--   h.strategy (for ctx:connect{reset = {h.strategy}}), h.port (nil when --port was given),
--   h.name, h.programmer, h.app_missing (files of the application the release lacks)
--   hostboard.restore(ctx, h)      program the host application (the strategy's run sequence)
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local reset = require("ncpflash.reset")

local M = {}

local WINDOWS = package.config:sub(1, 1) == "\\"

--- The host-board table of `board` (its release.hosts names boards/NAME.lua).
function M.table_for(board)
  local name = board.release and board.release.hosts
  if not name or not util.module_exists("ncpflash.boards." .. name) then
    errors.raise("usage", ("--host: board %s has no host-board table"):format(tostring(board.name)))
  end
  return require("ncpflash.boards." .. name)
end

local function expand(dir)
  return (dir:gsub("%$([%w_]+)", function(v) return sys.getenv(v) or ("$" .. v) end))
end

local function is_file(path)
  local st = sys.stat(path)
  return st ~= nil and st.type == "file"
end

--- STM32_Programmer_CLI: `explicit` (--programmer), else the first of the table's names on PATH,
--- else in its default folders. Returns the real path; raises a usage error saying where it looked.
function M.find_programmer(hosts, explicit)
  local p = hosts.programmer
  if explicit then
    if not is_file(explicit) then
      errors.raise("input", ("--programmer %s: no such file"):format(explicit), { file = explicit })
    end
    return sys.realpath(explicit) or explicit
  end
  local looked = {}
  local sep = WINDOWS and ";" or ":"
  local dirs = {}
  for d in ((sys.getenv("PATH") or "") .. sep):gmatch("(.-)" .. sep) do if d ~= "" then dirs[#dirs + 1] = d end end
  looked[1] = "PATH"
  for _, d in ipairs(p.dirs) do
    local e = expand(d)
    local native = WINDOWS and e:match("^%a:\\") or (not WINDOWS and e:sub(1, 1) == "/")
    if native and not e:find("$", 1, true) then dirs[#dirs + 1] = e; looked[#looked + 1] = e end
  end
  for _, d in ipairs(dirs) do
    for _, n in ipairs(p.names) do
      local path = d .. (WINDOWS and "\\" or "/") .. n
      if is_file(path) then return sys.realpath(path) or path end
    end
  end
  errors.raise("usage", ("--host needs STM32_Programmer_CLI (STM32CubeProgrammer) and it was not found (looked in %s)")
    :format(table.concat(looked, ", ")),
    { hint = "install STM32CubeProgrammer, put its bin folder on PATH, or give --programmer PATH" })
end

local function probe_strategy(hosts, prog, connect)
  return reset.validate({ kind = "host", programmer = prog, connect = connect or hosts.programmer.connect,
    timeout = hosts.programmer.timeout }, "host")
end

--- The ST-LINK serial number behind a virtual COM port: from its /dev/serial/by-id name
--- (usb-STMicroelectronics_STLINK-V3_<serial>-ifNN), else from the port list (an ST USB device).
--- nil when unknown. With it the programmer is told which ST-LINK to use (sn=), so that with
--- several NUCLEOs on the PC it programs the one whose port is flashed (ST's scripts take the
--- first ST-LINK, st67w611m1.md §7.9).
function M.stlink_serial(hosts, port)
  if not port then return nil end
  local name = port:match("([^/\\]+)$") or port
  if name:match(hosts.vcp.match) then
    local sn = name:match(hosts.vcp.match .. "_(%x+)%-if%d+")
    if sn then return sn end
  end
  local real = sys.realpath(port) or port
  local ok, list = pcall(require("ncpflash.core.port").list)
  for _, p in ipairs(ok and list or {}) do
    if (p.name == port or p.name == real) and p.vid == 0x0483 and p.serial and p.serial:match("^%x+$") then
      return p.serial
    end
  end
  return nil
end

local function choose(ctx, hosts, seen)
  local lines = { ("the ST-LINK answers as %s (a bare probe, not a NUCLEO board): which board is it?"):format(seen) }
  for i, n in ipairs(hosts.order) do lines[#lines + 1] = ("  [%d] %s"):format(i, n) end
  lines[#lines + 1] = ("Enter your choice (1-%d):"):format(#hosts.order)
  ctx.ev:info(table.concat(lines, "\n"), { prompt = true, choices = hosts.order })
  local line = not ctx.job and io.stdin:read("l") or nil
  local n = line and tonumber(line:match("^%s*(%d+)%s*$"))
  if not n or not hosts.order[n] then
    errors.raise("usage", ("the ST-LINK is a bare %s: no board chosen%s"):format(seen,
      line and (" (%q is not 1-%d)"):format(line, #hosts.order) or " (nothing on stdin)"),
      { hint = "name the board: --host " .. table.concat(hosts.order, " | --host ") })
  end
  return hosts.order[n]
end

local function canonical(hosts, name)
  local up = name:upper()
  for alias, to in pairs(hosts.aliases or {}) do if alias:upper() == up then return to, alias end end
  for n in pairs(hosts.boards) do if n:upper() == up then return n end end
  return nil
end

--- The host board: `want` = "auto" asks the programmer ("Board :" line), else a board name.
function M.resolve(ctx, hosts, want, prog, connect)
  local name = want
  if want:lower() == "auto" then
    local d = reset.driver(probe_strategy(hosts, prog, connect), { ev = ctx.ev })
    local seen, why = d:identify()
    if not seen then
      errors.raise("usage", "--host auto: cannot name the board: " .. why,
        { hint = "is the NUCLEO's ST-LINK connected? or name it: --host " .. table.concat(hosts.order, " | ") })
    end
    ctx.ev:info(("host board: STM32_Programmer_CLI says \"Board : %s\""):format(seen), { host_seen = seen })
    name = seen
    for _, b in ipairs(hosts.ask or {}) do
      if b:upper() == seen:upper() then name = choose(ctx, hosts, seen) end
    end
  end
  local canon, alias = canonical(hosts, name)
  if not canon then
    local known = {}
    for _, n in ipairs(hosts.order) do known[#known + 1] = n end
    errors.raise("usage", ("host board %q is not one ncpflash knows (%s)"):format(name, table.concat(known, ", ")),
      { hint = "a board of your own goes into a copy of boards/" .. "st67w611m1_hosts.lua in ~/.config/ncpflash" })
  end
  if alias then ctx.ev:info(("%s is treated as %s (as ST's scripts do)"):format(alias, canon)) end
  return canon
end

--- The ST-LINK's virtual COM port: one /dev/serial/by-id entry matching the table's pattern, else
--- one port whose description matches (Windows). Raises when none or several are found.
function M.find_vcp(hosts)
  local v = hosts.vcp
  local found, where = {}, {}
  for _, d in ipairs(v.dirs or {}) do
    where[#where + 1] = d .. "/*" .. v.match:gsub("%%", "") .. "*"
    for _, n in ipairs(sys.listdir(d) or {}) do
      if n:match(v.match) then found[#found + 1] = d .. "/" .. n end
    end
  end
  if #found == 0 then
    local ok, list = pcall(require("ncpflash.core.port").list)
    for _, p in ipairs(ok and list or {}) do
      local text = table.concat({ p.description or "", p.manufacturer or "", p.by_id or "" }, " ")
      for _, pat in ipairs(v.descriptions or {}) do
        if text:match(pat) then found[#found + 1] = p.name; break end
      end
    end
    where[#where + 1] = "ports described as " .. table.concat(v.descriptions or {}, " or ")
  end
  if #found == 0 then
    errors.raise("port", ("no ST-LINK virtual COM port found (looked for %s)"):format(table.concat(where, ", ")),
      { hint = "connect the NUCLEO's ST-LINK USB port, or give --port" })
  end
  if #found > 1 then
    errors.raise("usage", ("%d ST-LINK virtual COM ports (%s): give --port to choose one (ST's scripts take the first)")
      :format(#found, table.concat(found, ", ")))
  end
  return found[1]
end

-- The steps of a table entry with files resolved in `bindir` and external loaders in the
-- programmer's folder. Missing files: an input error, unless `soft` (then nil, the missing list).
local function resolve_steps(list, bindir, loaders, soft)
  local out, missing = {}, {}
  for _, s in ipairs(list or {}) do
    if s.prompt or s.wait then
      out[#out + 1] = s
    else
      local f = bindir .. "/" .. s.file
      if not is_file(f) then missing[#missing + 1] = f end
      local x
      if s.extload then
        x = loaders .. "/" .. s.extload
        if not is_file(x) then
          errors.raise("input", ("external loader %s not found (STM32CubeProgrammer installs it in %s)"):format(
            s.extload, loaders), { file = x })
        end
      end
      out[#out + 1] = { file = f, address = s.address, extload = x, go = s.go }
    end
  end
  if #missing > 0 then
    if soft then return nil, missing end
    errors.raise("input", ("host files missing: %s"):format(table.concat(missing, ", ")), { file = missing[1],
      hint = "the release's <BOARD>_Binaries folder (next to NCP_Binaries) holds them" })
  end
  return out
end

--- Everything `--host` needs, checked before anything runs. o: host ("auto" or a board name),
--- programmer (path or nil), profile (whose application is programmed back; nil: none),
--- binaries (the release's Binaries folder).
function M.prepare(ctx, board, o)
  if ctx.job then
    errors.raise("usage", "--host drives one NUCLEO at a time: give one --port (or none), not several")
  end
  local hosts = M.table_for(board)
  local prog = M.find_programmer(hosts, o.programmer)
  ctx.ev:info("STM32_Programmer_CLI: " .. prog, { programmer = prog })
  local port = ctx.opts.port
  if not port then
    port = M.find_vcp(hosts)
    ctx.ev:info("port: " .. port .. " (the ST-LINK virtual COM port)", { port = port })
  end
  -- the programmer talks to the ST-LINK of that port
  local connect = {}
  for i, a in ipairs(hosts.programmer.connect) do connect[i] = a end
  local sn = M.stlink_serial(hosts, port)
  if sn then
    for i, a in ipairs(connect) do
      if a:match("^port=") then table.insert(connect, i + 1, "sn=" .. sn); break end
    end
  end
  local name = M.resolve(ctx, hosts, o.host, prog, connect)
  local hb = hosts.boards[name]
  local bindir = o.binaries .. "/" .. name .. "_Binaries"
  if not sys.stat(bindir) then
    errors.raise("input", ("%s not found: the release has no files for the host board %s"):format(bindir, name),
      { file = bindir })
  end
  local loaders = util.dirname(prog) .. "/" .. hosts.programmer.loaders
  local enter = resolve_steps(hb.loader, bindir, loaders)
  local again = hb.again and resolve_steps(hb.again, bindir, loaders)
  local run, missing
  if o.profile and hb.apps[o.profile] then
    run, missing = resolve_steps(hb.apps[o.profile], bindir, loaders, true)
    if missing then
      ctx.ev:warn(("the release has no %s host application for %s (%s): the board keeps the NCP loader "
        .. "after the flash"):format(o.profile, name, table.concat(missing, ", ")))
    end
  end
  local h = { name = name, programmer = prog, hosts = hosts, app_missing = missing, has_app = run ~= nil }
  h.strategy = { kind = "host", name = "host " .. name, board = name, programmer = prog,
    connect = connect, enter = enter, again = again, run = run, settle = hosts.settle,
    timeout = hosts.programmer.timeout, no_wait = ctx.opts.yes == true, shared = {} }
  reset.validate(h.strategy, "host " .. name)
  if not ctx.opts.port then h.port = port end
  h.baud = hosts.vcp.baud
  return h
end

--- The options for ctx:connect through the host (its port and 2 Mbaud unless given).
function M.connect_opts(ctx, h)
  return { reset = { h.strategy }, port = h.port, baud = ctx.opts.baud or h.baud,
    load_baud = ctx.opts.load_baud or h.baud }
end

--- Program the host application back (the strategy's run sequence). Raises a "host" error when
--- the programmer fails; returns false when the release has no application for this board.
function M.restore(ctx, h)
  if not h.has_app then return false end
  ctx.ev:stage("host", { detail = "programming the " .. h.name .. " application back" })
  local d = reset.driver(reset.validate(h.strategy, "host " .. h.name), { ev = ctx.ev })
  local ok, why = d:sequence("run")
  if not ok then
    errors.raise("host", ("the module is flashed, but the host application could not be programmed: %s"):format(why),
      { host = h.name, hint = "the " .. h.name .. " still runs the NCP loader; program its application with "
        .. "STM32CubeProgrammer, or run this command again" })
  end
  ctx.ev:info(("host %s: application programmed back"):format(h.name))
  return true
end

return M
