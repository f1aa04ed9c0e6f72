-- stationlib: helpers for the station tests (tests/lua/test_station*.lua): station files, a
-- running `ncpflash station`, the HTTP API through curl, polling with deadlines.
local sys = require "ncpflash.core.sys"
local helpers = require "helpers"

local M = {}

--- A TCP port on 127.0.0.1 that was free a moment ago (bound and released by core.http), below
--- the kernel's ephemeral range, so that the next `--listen 127.0.0.1:0` cannot be handed it.
function M.free_port()
  local http = require "ncpflash.core.http"
  for _ = 1, 50 do
    local p = math.random(20000, 30000)
    local ok, s = pcall(http.listen, { host = "127.0.0.1", port = p, handler = function() return {} end })
    if ok then
      s:close()
      return p
    end
  end
  error("no free port found in 20000..30000")
end

local function lua_value(v, indent)
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t ~= "table" then return tostring(v) end
  local parts = {}
  if #v > 0 then
    for _, x in ipairs(v) do parts[#parts + 1] = lua_value(x, indent .. "  ") end
    return "{ " .. table.concat(parts, ", ") .. " }"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = indent .. "  " .. k .. " = " .. lua_value(v[k], indent .. "  ") end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

--- Write a station file (a Lua table) to dir/name; returns its path.
function M.write_station(dir, t, name)
  return helpers.writefile(dir .. "/" .. (name or "line.lua"), "return " .. lua_value(t, "") .. "\n")
end

--- Start `ncpflash station FILE` (+ args); waits for the dashboard line.  Returns a handle with
--- url, token, out, err (paths), pid, stop() (SIGTERM, returns the exit status), kill9().
function M.start(file, args, opts)
  opts = opts or {}
  local argv = { helpers.ncpflash, "station", file }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local h = helpers.spawn(argv)
  local deadline = sys.now() + (opts.timeout or 15)
  while sys.now() < deadline do
    local out = helpers.readfile(h.out)
    local url, token = out:match("dashboard: (http://[%d%.:]+)/#token=(%x+)")
    if url then
      h.url, h.token = url, token
      return h
    end
    if opts.no_http and out:match("unit logs:") then return h end
    local st = sys.wait(h.pid, 0)
    if st then
      h.status = st
      return h, st
    end
    sys.sleep(0.05)
  end
  h:stop()
  error("station printed no dashboard line: " .. helpers.readfile(h.out) .. helpers.readfile(h.err))
end

--- kill -9 (no cleanup at all, as a crash or power cut).
function M.kill9(h)
  sys.kill(h.pid, "KILL")
  h.status = sys.wait(h.pid, 10)
  return h.status
end

--- curl: method, URL path, token (nil: none), body.  Returns status code, body text, decoded JSON.
function M.api(h, method, path, token, body, headers)
  local dir = helpers.tmpdir()
  local argv = { "curl", "-s", "-o", dir .. "/body", "-w", "%{http_code}", "-X", method, "--max-time", "10" }
  if token then argv[#argv + 1] = "-H"; argv[#argv + 1] = "Authorization: Bearer " .. token end
  for _, x in ipairs(headers or {}) do argv[#argv + 1] = "-H"; argv[#argv + 1] = x end
  if body then argv[#argv + 1] = "--data-binary"; argv[#argv + 1] = body end
  argv[#argv + 1] = (h.url or h) .. path
  local pid = assert(sys.spawn(argv, { stdout = dir .. "/code", stderr = dir .. "/err", stdin = "null" }))
  local st = sys.wait(pid, 15)
  if st ~= 0 then error(("curl %s %s: exit %s %s"):format(method, path, tostring(st), helpers.readfile(dir .. "/err"))) end
  local code = tonumber(helpers.readfile(dir .. "/code"))
  local text = helpers.readfile(dir .. "/body")
  local ok, v = pcall(helpers.json_decode, text)
  return code, text, ok and v or nil
end

function M.status(h)
  local code, text, v = M.api(h, "GET", "/api/status")
  if code ~= 200 or not v then error("GET /api/status: " .. tostring(code) .. " " .. text) end
  return v
end

--- Poll fn() until it returns a true value (returned) or `seconds` pass (error naming `what`,
--- with describe() of the last state).
function M.wait_for(what, fn, seconds, describe)
  local deadline = sys.now() + (seconds or 20)
  local last
  while sys.now() < deadline do
    local ok, v = pcall(fn)
    if ok and v then return v end
    last = ok and v or ("error: " .. tostring(v))
    sys.sleep(0.1)
  end
  error(("timed out waiting for %s (%s)"):format(what, describe and describe() or tostring(last)), 2)
end

--- The slot states of a status as one string ("1=pass 2=fail ...").
function M.states(st)
  local t = {}
  for _, s in ipairs(st.slots) do t[#t + 1] = ("%d=%s"):format(s.index, s.state) end
  return table.concat(t, " ")
end

--- Wait until slot i is in `state` (and pred(slot) if given); returns the status.
function M.wait_slot(h, i, state, seconds, pred)
  local last
  return M.wait_for(("slot %d %s"):format(i, state), function()
    last = M.status(h)
    local s = last.slots[i]
    return s.state == state and (not pred or pred(s)) and last
  end, seconds, function() return last and M.states(last) or "no status" end)
end

--- Open the station database read-only (core.db).
function M.db(path) return require("ncpflash.core.db").open(path, { readonly = true }) end

return M
