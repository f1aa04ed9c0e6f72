-- ncpflash.main: the entry point the C host calls with argv.
--
-- Resolves the command (a built-in or user recipe, or a .lua file), parses
-- its arguments, builds the context recipes receive, runs it and turns the
-- outcome into an exit code.  Every error is reported here, once.
local sys = require "ncpflash.core.sys"
local cli = require "ncpflash.cli"
local errors = require "ncpflash.errors"
local events = require "ncpflash.events"
local util = require "ncpflash.util"

local M = {}

local BUILTIN_COMMANDS = {
  help = "show help for ncpflash or for one command",
  run = "run a Lua file: ncpflash run FILE.lua [args]",
}

-- $XDG_CONFIG_HOME/ncpflash (~/.config/ncpflash); Windows: %APPDATA%\ncpflash
local config_dir = require("ncpflash.path").config_dir

--- Where recipes, boards and chips come from, highest precedence first.
function M.roots(opts)
  local roots = {}
  if opts.lua_path then
    roots[#roots + 1] = { dir = opts.lua_path, origin = "--lua-path " .. opts.lua_path }
  end
  local cfg = config_dir()
  if cfg then roots[#roots + 1] = { dir = cfg, origin = cfg } end
  return roots
end

-- The documented override folders of a root (README "Writing your own recipes, boards and
-- chips"): ROOT/lua/ holds library modules (development); directly under ROOT only boards/,
-- chips/ and reset/ count, so a stray ROOT/flash.lua never shadows ncpflash.flash.
M.ROOT_FOLDERS = { "boards/", "chips/", "reset/" }

local function install_roots(roots)
  local dirs = {}
  for _, r in ipairs(roots) do
    dirs[#dirs + 1] = r.dir .. "/lua"
    dirs[#dirs + 1] = { path = r.dir, only = M.ROOT_FOLDERS }
  end
  sys.set_roots(dirs)
end

local function scan_dir(dir, prefix, out, origin)
  local names = sys.listdir(dir)
  if not names then return end
  for _, n in ipairs(names) do
    local path = dir .. "/" .. n
    local st = sys.stat(path)
    if st and st.type == "dir" and prefix == "" then
      scan_dir(path, n .. "/", out, origin)
    elseif st and st.type == "file" and n:match("%.lua$") then
      local name = prefix .. n:gsub("%.lua$", "")
      if not out[name] then out[name] = { name = name, path = path, origin = origin } end
    end
  end
end

--- All recipes by name: {name=, path=, origin=, embedded=bool}.
function M.list_recipes(roots)
  local out = {}
  for _, r in ipairs(roots) do scan_dir(r.dir .. "/recipes", "", out, r.origin) end
  for _, p in ipairs(sys.embedded("recipes/")) do
    local name = p:gsub("^recipes/", ""):gsub("%.lua$", "")
    if not out[name] then out[name] = { name = name, path = p, origin = "built-in", embedded = true } end
  end
  return out
end

local function recipe_source(entry)
  if entry.embedded then return sys.embedded_source(entry.path), "@" .. entry.path end
  return util.readfile(entry.path, "recipe", 16 * 1024 * 1024), "@" .. entry.path
end

-- The recipe environment (README "Recipes and external commands"). Recipes run without
-- os.execute, io.popen and ncpflash.core.sys.spawn (and without debug, package and the real _G,
-- the easy ways around that) unless their table declares `needs = {"exec"}`. The grant is made
-- after the top level has returned the table, so only the recipe's functions get it.
-- Library code (e.g. a "command" reset strategy the user configured with --reset or a board
-- file) runs in its own environment and is not affected. A file the user runs explicitly
-- (`ncpflash run FILE.lua`) is a program the user chose to start: its top level runs with the
-- full environment, and the rule applies to the recipe table it returns.
local function no_exec(lib, drop)
  local t = {}
  for k, v in pairs(lib) do if not drop[k] then t[k] = v end end
  return t
end

local function recipe_env(args)
  local base = {}
  for k, v in pairs(_G) do base[k] = v end
  local env = setmetatable({}, { __index = base })
  local safe = {
    os = no_exec(os, { execute = true }),
    io = no_exec(io, { popen = true }),
    debug = { traceback = debug.traceback },
    _G = env,
    load = function(chunk, name, mode, e) return load(chunk, name, mode, e or env) end,
    loadfile = function(file, mode, e) return loadfile(file, mode, e or env) end,
    dofile = function(file) return assert(loadfile(file, "t", env))() end,
    require = function(name)
      local m = require(name)
      if name == "ncpflash.core.sys" then return no_exec(m, { spawn = true }) end
      return m
    end,
  }
  local full = { os = os, io = io, debug = debug, _G = _G, load = load, loadfile = loadfile, dofile = dofile,
                 require = require, package = package }
  local function allow(yes)
    for k, v in pairs(full) do base[k] = yes and v or safe[k] end
  end
  env.arg = args
  return env, allow
end

--- True when a recipe table declares that it runs external commands.
function M.needs_exec(r)
  for _, n in ipairs(type(r) == "table" and type(r.needs) == "table" and r.needs or {}) do
    if n == "exec" then return true end
  end
  return false
end

--- Load a recipe chunk (text only) and run its top level with `args`.
--- Returns the recipe table and whether it may run external commands, or
--- nil when the file is a plain script (which has then already run).
--- `trusted`: the user named the file (`run FILE.lua`): full top level.
local function load_recipe(src, chunkname, args, trusted)
  local env, allow = recipe_env(args)
  allow(trusted == true)
  local fn, err = load(src, chunkname, "t", env)
  if not fn then errors.raise("input", "cannot load " .. chunkname:sub(2) .. ": " .. err) end
  local r = fn(table.unpack(args))
  if type(r) == "table" and type(r.run) == "function" then
    local exec = M.needs_exec(r)
    allow(exec)
    return r, exec
  end
  return nil
end

-- The context every recipe receives.
local Ctx = {}
Ctx.__index = Ctx

function Ctx:board()
  if self._board then return self._board end
  local name = self.opts.board or self.default_board
  if not name and self.opts.chip then   -- --chip names another chip than the default module's
    local ok, d = pcall(require, "ncpflash.boards.st67w611m1")
    if ok and type(d) == "table" and d.chip ~= self.opts.chip then name = "generic" end
  end
  name = name or "st67w611m1"
  if not name:match("^[%w_%-]+$") then errors.raise("usage", ("bad board name %q"):format(name)) end
  if not util.module_exists("ncpflash.boards." .. name) then
    local names = {}
    for _, p in ipairs(sys.embedded("lua/ncpflash/boards/")) do
      names[#names + 1] = p:match("([^/]+)%.lua$")
    end
    errors.raise("usage", ("unknown board %q (built in: %s; user boards go in %s/boards/NAME.lua)")
      :format(name, table.concat(names, ", "), config_dir() or "~/.config/ncpflash"))
  end
  local b = require("ncpflash.boards." .. name)
  b.name = b.name or name
  self._board = b
  -- a user file of that name shadows the built-in board: remember it, connect says so
  for _, r in ipairs(M.roots(self.opts)) do
    for _, p in ipairs({ r.dir .. "/boards/" .. name .. ".lua", r.dir .. "/lua/ncpflash/boards/" .. name .. ".lua",
        r.dir .. "/lua/boards/" .. name .. ".lua" }) do
      if not self._board_file and sys.stat(p) then self._board_file = p end
    end
  end
  return b
end

function Ctx:chip()
  if self._chip then return self._chip end
  local name = self.opts.chip or self:board().chip
  if not name or not name:match("^[%w_%-]+$") then
    errors.raise("usage", ("bad chip name %q"):format(tostring(name)))
  end
  local chips = require("ncpflash.chip")
  if not chips.exists(name) then
    errors.raise("usage", ("unknown chip %q (user chips go in %s/chips/NAME.lua)")
      :format(name, config_dir() or "~/.config/ncpflash"))
  end
  local c = chips.load(name)
  self._chip = c
  return c
end

--- Open the port named by --port (or o.url) at o.baud.
function Ctx:open_port(o)
  o = o or {}
  local url = o.url or self.opts.port
  if not url then
    errors.raise("usage", "no port given: use --port URL or set NCPFLASH_PORT",
      { hint = "'ncpflash ports' lists serial ports; try rfc2217://HOST:PORT for ncpsim or ser2net" })
  end
  local trace = self.opts.trace_file or (self.opts.trace and "stderr") or false
  if not url:find("://", 1, true) then
    local st = sys.stat(url)
    if st and st.type == "file" then
      errors.raise("port", ("%s is a regular file, not a serial port"):format(url),
        { port = url, hint = "'ncpflash ports' lists serial ports; ncpsim prints its URL when it starts" })
    end
  end
  return require("ncpflash.core.port").open(url, { baud = o.baud, trace = trace })
end

--- Connect to the chip's ROM (reset ladder, handshake, baud switch).
function Ctx:connect(o)
  -- a reset strategy that runs an external program is allowed when the user configured it
  -- (--reset, the board file); one the recipe passes needs the recipe's exec permission
  if o and not self.exec and ((o.reset ~= nil and o.reset ~= true and o.reset ~= false) or o.board) then
    for _, st in ipairs(require("ncpflash.reset").ladder({ reset = o.reset }, o.board or self:board())) do
      if require("ncpflash.reset").has(st, "runs_program") then
        errors.raise("safety", ("recipe %s passes a reset strategy that runs an external command, but does not "
          .. "declare needs = {\"exec\"}"):format(tostring(self.command)))
      end
    end
  end
  local s = require("ncpflash.session").connect(self, o)
  if self._board_file and not (o and o.board) then
    local f = io.open(self._board_file, "rb")
    local head = f and f:read(200) or ""
    if f then f:close() end
    self.ev:info(("board %s: the user board file %s is in effect%s"):format(self._board.name, self._board_file,
      head:find("probe --tune", 1, true) and " (written by probe --tune; delete it to go back to the built-in board)"
        or ""), { board = self._board.name, board_file = self._board_file })
  end
  -- an earlier eFuse burn on this chip whose outcome is unknown is read back now (never raises)
  require("ncpflash.efuse_burn").settle_pending(self, s)
  return s
end

--- Ask for a typed confirmation word; false in --json/non-interactive
--- mode unless `allow_yes` and --yes were given.
function Ctx:confirm(prompt, word, allow_yes)
  if allow_yes and self.opts.yes then return true end
  if self.job or not sys.isatty(0) then return false end   -- a device job never prompts
  io.stderr:write(prompt, " Type ", word, " to continue: ")
  io.stderr:flush()
  local line = io.stdin:read("l")
  return line == word
end

local function general_help(roots)
  local lines = {
    "ncpflash " .. sys.version .. " - open, scriptable flasher for Bouffalo-ISP chips (BL616/QCC743, ST67W611M1)",
    "",
    "usage: ncpflash [global options] COMMAND [arguments]",
    "       ncpflash [global options] FILE.lua [arguments]",
    "",
    "commands:",
  }
  local all = M.list_recipes(roots)
  local names = {}
  for n in pairs(all) do names[#names + 1] = n end
  for n in pairs(BUILTIN_COMMANDS) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    local e = all[n]
    local help = BUILTIN_COMMANDS[n]
    local origin = ""
    if e then
      local ok, r = pcall(function()
        local src, chunk = recipe_source(e)
        local env, allow = recipe_env({})
        allow(false)
        local fn = load(src, chunk, "t", env)
        return fn and fn()
      end)
      help = ok and type(r) == "table" and r.help or "(could not load)"
      if e.origin ~= "built-in" then origin = "  [" .. e.origin .. "]" end
    end
    lines[#lines + 1] = ("  %-24s %s%s"):format(n, help or "", origin)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "global options:"
  lines[#lines + 1] = cli.global_help()
  lines[#lines + 1] = ""
  lines[#lines + 1] = "'ncpflash help COMMAND' explains one command.  Exit codes: 0 ok, 1 failure, 2 usage,"
  lines[#lines + 1] = "3 could not reach the ROM, 4 device error, 5 verify mismatch, 6 refused for safety,"
  lines[#lines + 1] = "7 bad input file, 130 interrupted.  User recipes, boards and chips: "
    .. (config_dir() or "~/.config/ncpflash") .. "/{recipes,boards,chips}/NAME.lua"
  return table.concat(lines, "\n")
end

local function find_command(roots, name)
  if name:match("^%-") then   -- a global option ncpflash does not know, before the command
    local names = {}
    for _, g in ipairs(cli.globals) do names[#names + 1] = g[1]; if g.short then names[#names + 1] = g.short end end
    local hint = util.suggest(name:match("^([^=]*)"), names)
    errors.raise("usage", ("unknown option %s%s"):format(name:match("^([^=]*)"),
      hint and (" (did you mean " .. hint .. "?)") or ""), { hint = "'ncpflash --help' lists the global options" })
  end
  local all = M.list_recipes(roots)
  if all[name] then return all[name] end
  local names = {}
  for n in pairs(all) do names[#names + 1] = n end
  for n in pairs(BUILTIN_COMMANDS) do names[#names + 1] = n end
  table.sort(names)
  local hint = util.suggest(name, names)
  errors.raise("usage", ("unknown command %q%s"):format(name, hint and (" (did you mean " .. hint .. "?)") or ""),
    { hint = "'ncpflash help' lists the commands" })
end

local function run(opts, rest, ev, late)
  if opts.lua_path then
    local st = sys.stat(opts.lua_path)
    if not st or st.type ~= "dir" then
      errors.raise("usage", ("--lua-path %s: not a directory"):format(opts.lua_path),
        { hint = "--lua-path DIR loads DIR/lua and DIR/recipes (development)" })
    end
  end
  local roots = M.roots(opts)
  install_roots(roots)
  local late_version = false    -- --version after the command name may be the command's own option
  for _, l in ipairs(late or {}) do if l.key == "version" then late_version = true end end
  if opts.version and not late_version then
    ev:info("ncpflash " .. sys.version, { version = sys.version })
    return
  end
  local cmd = table.remove(rest, 1)
  if cmd == "help" or (cmd == nil) then
    local what = rest[1]
    if what == nil then
      if cmd == nil and not opts.help then
        io.stderr:write(general_help(roots), "\n")
        errors.raise("usage", "no command given")
      end
      ev:info(general_help(roots))
      return
    end
    if BUILTIN_COMMANDS[what] then ev:info("ncpflash " .. what .. ": " .. BUILTIN_COMMANDS[what]); return end
    local entry
    if what:match("%.lua$") then
      entry = { name = what, path = what, origin = what }
    else
      entry = find_command(roots, what)
    end
    local src, chunk = recipe_source(entry)
    local r = load_recipe(src, chunk, {}, what:match("%.lua$") ~= nil)
    ev:info(cli.recipe_help(what, r or { help = "(a plain Lua script)" }, entry.origin))
    return
  end
  local entry, src, chunk
  local trusted = false
  if cmd == "run" or cmd:match("%.lua$") then
    trusted = true
    local file = cmd == "run" and table.remove(rest, 1) or cmd
    if not file then errors.raise("usage", "run: missing FILE.lua") end
    src = util.readfile(file, "script", 16 * 1024 * 1024)
    chunk = "@" .. file
    entry = { name = file, origin = file }
  else
    entry = find_command(roots, cmd)
    src, chunk = recipe_source(entry)
  end
  local ctx = setmetatable({ opts = opts, ev = ev, command = entry.name,
    job = require("ncpflash.core.jobs").self() }, Ctx)
  if opts.help then
    local r = load_recipe(src, chunk, {}, trusted)
    ev:info(cli.recipe_help(entry.name, r or { help = "(a plain Lua script)" }, entry.origin))
    return
  end
  local recipe, exec = load_recipe(src, chunk, rest, trusted)
  if not recipe then return end
  ctx.exec = exec
  cli.give_back(recipe.args, late, opts, rest)
  if opts.version then            -- a --version the command does not declare: the program's version
    ev:info("ncpflash " .. sys.version, { version = sys.version })
    return
  end
  local args = cli.parse_args(entry.name, recipe.args, rest)
  ctx.default_board = recipe.board
  return recipe.run(ctx, args)
end

--- Called by the C host; returns the process exit code.
function M.main(argv)
  local opts, rest, late, ev
  local ok, err = pcall(function() opts, rest, late = cli.parse_globals(argv) end)
  local job = require("ncpflash.core.jobs").self()
  if job then   -- a device job (ncpflash.multi): JSON events to the parent through the pipe
    ev = events.new({ json = true, verbose = opts and opts.verbose or 0, out = require("ncpflash.core.jobs").events(),
      tty = false, color = false })
  else
    ev = events.new({ json = opts and opts.json, verbose = opts and opts.verbose or 0,
      color = (opts and opts.no_color) and false or nil })
  end
  -- --junit / --report: ncpflash.labreport collects the events and writes the reports at the end
  local multi = ok and not job and require("ncpflash.multi").wanted(opts, rest)
  local report
  if ok and not job then
    ok, err = pcall(function() report = require("ncpflash.labreport").attach(ev, opts, rest, argv, multi) end)
  end
  local function finish(code) return report and report:finish(code) or code end
  if ok and multi then
    return finish(require("ncpflash.multi").main(opts, rest, argv, ev))
  end
  if not ok then
    ev:error(err, errors.exit_code(err))
    return errors.exit_code(err)
  end
  local trace
  ok, err = xpcall(run, function(e)
    if errors.is(e) then return e end
    trace = debug.traceback(tostring(e), 2)
    return e
  end, opts, rest, ev, late)
  if ok then return finish(0) end
  local code = errors.exit_code(err)
  if not errors.is(err) and opts.verbose == 0 then
    err = { code = "internal", message = tostring(err) .. " (run with -v for a traceback)" }
  end
  ev:error(err, code, trace)
  return finish(code)
end

return M
