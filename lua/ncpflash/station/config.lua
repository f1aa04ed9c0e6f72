-- ncpflash.station.config: the station file (README "Production station").
--
--   local cfg = config.load(path, ctx, overrides)    -- validates everything; raises "usage"/"input"
--   cfg.slots          {{index=, port=}, ...}        one per port (filters resolved now)
--   cfg.plan           the image set (ncpflash.flash plan: regions with address, size, sha256)
--   cfg.image_set_sha256, cfg.station_file_sha256, cfg.locked ({path = sha256 hex})
--   config.job_argv(cfg, url, extra)                 argv of one unit's flash job
--   config.probe_argv(cfg, url)                      argv of a probe ("is a chip there, which one")
--   config.changed(cfg) -> nil | "file: what"        a locked file changed on disk since the start
--
-- A station file is Lua data (no code runs: it is loaded in an empty environment) returning a
-- table; relative paths are relative to the station file's folder.  See README for the fields.
local sys = require "ncpflash.core.sys"
local image = require "ncpflash.core.codec"
local errors = require "ncpflash.errors"
local util = require "ncpflash.util"

local M = {}

local KEYS = {
  station = "string", operator = "string", ports = "table", port_filters = "table", job = "table",
  trigger = "string", db = "string", log_dir = "string", http = "any", probe = "table", autostart = "boolean",
}
local JOB_KEYS = {
  name = "string", config = "string", profile = "string", release = "string", version = "string", regions = "table",
  erase = "number", verify = "boolean", skip_unchanged = "boolean", resume = "boolean", allow_outside = "boolean",
  efuse = "string", efuse_mask = "string", confirm_efuse_burn = "boolean", root_key = "string", audit = "string",
  insecure_write = "boolean", provision = "string", options = "table",
}
local PROBE_KEYS = { interval = "number", max_interval = "number", retries = "number", removal_interval = "number",
  removal_misses = "number" }
M.PROBE_DEFAULTS = { interval = 0.5, max_interval = 5, retries = 1, removal_interval = 1, removal_misses = 2 }

local function bad(path, msg, hint)
  errors.raise("usage", ("%s: %s"):format(path, msg), { hint = hint or "see README \"Production station\"" })
end

local function check_keys(path, where, t, spec)
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  for k, v in pairs(t) do
    if type(k) ~= "string" or not spec[k] then
      local hint = type(k) == "string" and util.suggest(k, names)
      bad(path, ("unknown field %s%s%s"):format(where, tostring(k), hint and (" (did you mean " .. hint .. "?)") or ""),
        "known fields: " .. table.concat(names, ", "))
    end
    if spec[k] ~= "any" and type(v) ~= spec[k] then
      bad(path, ("field %s%s must be a %s, not a %s"):format(where, k, spec[k], type(v)))
    end
  end
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

local function resolve(base, p)
  if p:sub(1, 1) == "/" or p:match("^%a+://") then return p end
  return base .. "/" .. p
end

local function file_sha(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d and image.hex(image.sha256(d))
end

--- "HOST:PORT" (IPv6 as [::1]:PORT) -> host, port; nil for a bad value.
function M.parse_listen(s)
  local host, port = s:match("^%[([%x:]+)%]:(%d+)$")
  if host then return "[" .. host .. "]", tonumber(port) end
  host, port = s:match("^([%d%.]+):(%d+)$")
  if host then return host, tonumber(port) end
  return nil
end

--- True for 127.0.0.0/8 and ::1.
function M.is_loopback(host)
  return host:match("^127%.%d+%.%d+%.%d+$") ~= nil or host == "[::1]" or host == "::1"
end

-- The board a job runs with: the job's --board / --chip options, else the profile's or the default.
local function job_board(ctx, job, profile_board)
  local opts = require("ncpflash.cli").parse_globals(job.options or {})
  local o = setmetatable({}, { __index = ctx.opts })
  o.board, o.chip = opts.board or profile_board or ctx.opts.board, opts.chip or ctx.opts.chip
  local c = setmetatable({ opts = o, default_board = profile_board }, getmetatable(ctx))
  return c:board(), opts
end

-- The image set of the job, as the flash job will plan it (the same validation: a bad ini or a
-- missing file fails here, before any unit is touched).
local function plan_job(path, ctx, job, base)
  local flash = require "ncpflash.flash"
  local n = (job.config and 1 or 0) + (job.profile and 1 or 0) + (job.regions and 1 or 0)
  if n ~= 1 then
    bad(path, "job needs exactly one of config = INI, profile = NAME (with release = DIR), regions = {...}")
  end
  if job.erase ~= nil and job.erase ~= 0 and job.erase ~= 1 and job.erase ~= 2 then
    bad(path, "job.erase must be 0, 1 or 2")
  end
  if job.provision and job.verify == false then bad(path, "job.provision needs the verify (drop verify = false)") end
  local locked, files = {}, {}
  if job.config then
    files.ini = resolve(base, job.config)
    local board = job_board(ctx, job)
    local cfg = require("ncpflash.progcfg").load(files.ini, { chipname = board.chipname,
      allow_outside = job.allow_outside })
    locked[#locked + 1] = files.ini
    return flash.config_plan(cfg, board), locked, files
  elseif job.profile then
    local bname, prof = job.profile:match("^([%w_%-]+)/([%w_%-]+)$")
    if not bname then
      bad(path, ("job.profile %q is not BOARD/PROFILE (e.g. st67w611m1/mission_t02)"):format(job.profile))
    end
    if not job.release then bad(path, "job.profile needs release = FOLDER (ST67W6X_Scripts or NCP_Binaries)") end
    if job.efuse or job.provision or job.resume then
      bad(path, "job.profile takes no efuse/provision/resume: use config = the profile's ini instead")
    end
    local board = job_board(ctx, job, bname)
    local rel = board.release
    if not rel or not rel.ini[prof] then bad(path, ("board %s has no release profile %s"):format(bname, prof)) end
    -- the profile's ini and firmware version as the profile recipe picks them (the newest, or
    -- job.version); the job passes the version on, so each unit gets exactly this set
    local sel = require("ncpflash.release_layout").select(board, prof, resolve(base, job.release), job.version)
    files.ini, files.version = sel.ini, sel.version
    files.release = resolve(base, job.release)
    local cfg = require("ncpflash.progcfg").load(files.ini, { chipname = board.chipname, template = sel.substitute })
    locked[#locked + 1] = files.ini
    return flash.config_plan(cfg, board), locked, files
  end
  local regions = {}
  for i, r in ipairs(job.regions) do
    if type(r) ~= "table" or r[1] == nil or type(r[2]) ~= "string" then
      bad(path, ("job.regions[%d] must be {ADDRESS, \"FILE\"}"):format(i))
    end
    local a, why = util.parse_u32(r[1])
    if not a then bad(path, ("job.regions[%d]: bad address %s: %s"):format(i, tostring(r[1]), why)) end
    local f = resolve(base, r[2])
    regions[i] = { address = a, file = f, name = r[2]:match("([^/]+)$") }
  end
  if #regions == 0 then bad(path, "job.regions is empty") end
  local board = job_board(ctx, job)
  return flash.plan(regions, { flash_size = board.flash_size }), locked, files
end

--- SHA-256 (hex) of an image set: address, size, SHA-256 and name of every region, in order.
function M.image_set_sha256(plan)
  local lines = {}
  for _, r in ipairs(plan.regions) do
    lines[#lines + 1] = ("%08x %d %s %s\n"):format(r.address, r.size, image.hex(r.sha256), r.name)
  end
  return image.hex(image.sha256(table.concat(lines)))
end

--- Load and validate a station file. overrides: {operator=, http=, db=}.
function M.load(path, ctx, overrides)
  overrides = overrides or {}
  local src = util.readfile(path, "station file")
  local chunk, err = load(src, "@" .. path, "t", {})
  if not chunk then errors.raise("input", ("station file %s: %s"):format(path, err)) end
  local ok, t = pcall(chunk)
  if not ok then errors.raise("input", ("station file %s: %s"):format(path, tostring(t))) end
  if type(t) ~= "table" then bad(path, "must return a table (return { station = ..., ports = ..., job = ... })") end
  check_keys(path, "", t, KEYS)
  if type(t.station) ~= "string" or not t.station:match("^[%w][%w _%.%-]*$") then
    bad(path, "station = NAME is required (letters, digits, space, _ . -)")
  end
  if type(t.job) ~= "table" then bad(path, "job = {...} is required") end
  check_keys(path, "job.", t.job, JOB_KEYS)
  local probe = {}
  for k, v in pairs(M.PROBE_DEFAULTS) do probe[k] = v end
  if t.probe then
    check_keys(path, "probe.", t.probe, PROBE_KEYS)
    for k, v in pairs(t.probe) do
      if v <= 0 or v > 3600 then bad(path, ("probe.%s must be > 0 and <= 3600"):format(k)) end
      probe[k] = v
    end
  end
  probe.retries = math.max(1, math.floor(probe.retries))
  probe.removal_misses = math.max(1, math.floor(probe.removal_misses))
  local trigger = t.trigger or "auto"
  if trigger ~= "auto" and trigger ~= "button" then bad(path, "trigger must be \"auto\" or \"button\"") end
  local base = sys.realpath(dirname(path)) or dirname(path)
  local cfg = { path = sys.realpath(path) or path, station = t.station, operator = overrides.operator or t.operator,
    trigger = trigger, probe = probe, autostart = t.autostart ~= false, job = t.job, base = base }
  -- ports: one slot each, --port URLs first, then every port a filter matches now
  local port_list, filters = {}, nil
  for i, p in ipairs(t.ports or {}) do
    if type(p) ~= "string" then bad(path, ("ports[%d] must be a string"):format(i)) end
    port_list[#port_list + 1] = p
  end
  if t.port_filters then
    filters = {}
    for i, f in ipairs(t.port_filters) do
      if type(f) ~= "string" then bad(path, ("port_filters[%d] must be a string"):format(i)) end
      filters[#filters + 1] = f
    end
  end
  if #port_list == 0 and not filters then bad(path, "ports = {...} or port_filters = {...} is required") end
  local urls = require("ncpflash.multi").resolve_ports({ port_list = port_list, ports_list = filters })
  cfg.slots = {}
  for i, u in ipairs(urls) do cfg.slots[i] = { index = i, port = u } end
  -- the job, its image set, and every file it reads (locked for the session)
  local job = t.job
  cfg.options = {}
  for i, o in ipairs(job.options or {}) do
    if type(o) ~= "string" then bad(path, ("job.options[%d] must be a string"):format(i)) end
    if o == "--port" or o == "--ports" or o == "--log-dir" or o == "--json" or o:match("^%-%-port") then
      bad(path, ("job.options: %s is set by the station"):format(o))
    end
    cfg.options[i] = o
  end
  local plan, locked, files = plan_job(path, ctx, job, base)
  cfg.plan, cfg.files = plan, files
  cfg.image_set_sha256 = M.image_set_sha256(plan)
  for _, r in ipairs(plan.regions) do if r.file then locked[#locked + 1] = r.file end end
  for _, k in ipairs({ "efuse", "efuse_mask", "root_key", "provision" }) do
    if job[k] then
      files[k] = resolve(base, job[k])
      if not sys.stat(files[k]) then
        errors.raise("input", ("%s: job.%s: no such file %s"):format(path, k, files[k]))
      end
      locked[#locked + 1] = files[k]
    end
  end
  if job.audit then files.audit = resolve(base, job.audit) end
  cfg.station_file_sha256 = file_sha(path)
  cfg.locked = { [cfg.path] = cfg.station_file_sha256 }
  cfg.locked_order = { cfg.path }
  for _, f in ipairs(locked) do
    if not cfg.locked[f] then
      cfg.locked[f] = file_sha(f) or errors.raise("input", ("%s: cannot read %s"):format(path, f))
      cfg.locked_order[#cfg.locked_order + 1] = f
    end
  end
  cfg.job_name = job.name or (job.profile or (job.config and job.config:match("([^/]+)%.ini$"))
    or ("regions-" .. cfg.image_set_sha256:sub(1, 8)))
  -- where things go
  local default_db = cfg.path:gsub("%.lua$", "") .. ".db"
  cfg.db = overrides.db or (t.db and resolve(base, t.db)) or default_db
  cfg.log_dir = t.log_dir and resolve(base, t.log_dir) or (cfg.db:gsub("%.db$", "") .. "-logs")
  local http = overrides.http
  if http == nil then http = t.http end
  if http == nil then http = "127.0.0.1:8067" end
  if type(http) == "table" then http = http.listen end
  if http ~= false and http ~= "off" then
    if type(http) ~= "string" then bad(path, "http must be \"HOST:PORT\" or false") end
    local h, p = M.parse_listen(http)
    if not h or p > 65535 then bad(path, ("http = %q: expected HOST:PORT with a numeric address, e.g. 127.0.0.1:8067")
      :format(http)) end
    cfg.http = { host = h, port = p }
  end
  return cfg
end

-- The flash command's own arguments for the job.
local function job_args(cfg)
  local job, files, out = cfg.job, cfg.files, {}
  local function add(...) for _, a in ipairs({ ... }) do out[#out + 1] = a end end
  if job.profile then
    add(job.profile, files.release, "--no-efuse")      -- a profile job flashes only (efuse: use config)
    if files.version then add("--version", files.version) end
  elseif job.config then
    add("flash", "--config", files.ini)
    if job.allow_outside then add("--allow-outside") end
  else
    add("flash")
  end
  if job.erase ~= nil then add("--erase", tostring(math.tointeger(job.erase))) end
  if job.verify == false then add("--no-verify") end
  if job.skip_unchanged then add("--skip-unchanged") end
  if job.resume then add("--resume") end
  if files.efuse then
    add("--efuse", files.efuse)
    if files.efuse_mask then add("--efuse-mask", files.efuse_mask) end
    if job.confirm_efuse_burn then add("--confirm-efuse-burn") end
    if files.root_key then add("--root-key", files.root_key) end
    if files.audit then add("--audit", files.audit) end
    if job.insecure_write then add("--insecure-write") end
  end
  if files.provision then add("--provision", files.provision) end
  if job.regions then
    for _, r in ipairs(cfg.plan.regions) do add(("0x%X"):format(r.address), r.file) end
  end
  return out
end

local function base_argv(cfg, url, extra)
  local argv = { "ncpflash", "--port", url }
  for _, o in ipairs(cfg.options) do argv[#argv + 1] = o end
  for _, o in ipairs(extra or {}) do argv[#argv + 1] = o end
  return argv
end

--- argv of one unit's flash job on `url` (`extra`: more global options, e.g. --trace-file).
function M.job_argv(cfg, url, extra)
  local argv = base_argv(cfg, url, extra)
  if cfg.files.efuse and cfg.job.confirm_efuse_burn then argv[#argv + 1] = "--yes" end
  for _, a in ipairs(job_args(cfg)) do argv[#argv + 1] = a end
  return argv
end

--- The flash command line as text (shown and recorded).
function M.job_text(cfg)
  return table.concat(job_args(cfg), " ")
end

--- argv of a probe on `url`: connect, report chip id and MAC, disconnect.
function M.probe_argv(cfg, url)
  local argv = base_argv(cfg, url, { "--retries", tostring(cfg.probe.retries) })
  argv[#argv + 1] = "station"
  argv[#argv + 1] = "probe"
  return argv
end

--- nil when every locked file still has its SHA-256, else a message naming the first that changed.
function M.changed(cfg)
  for _, f in ipairs(cfg.locked_order) do
    local now = file_sha(f)
    if now ~= cfg.locked[f] then
      return ("%s %s since the station started (SHA-256 %s, now %s)"):format(f, now and "changed" or "is gone",
        cfg.locked[f]:sub(1, 16), now and now:sub(1, 16) or "-")
    end
  end
  return nil
end

return M
