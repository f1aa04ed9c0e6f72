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
  if st ~= 0 then
    error(("curl %s %s: exit %s %s"):format(method, path, tostring(st), helpers.readfile(dir .. "/err")))
  end
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

---------------------------------------------------------------------------------------------------
-- a WebDriver client (Debian's chromium-driver) over curl: enough to load a page, run a script
-- in it, read its DOM and take a screenshot

local json = require "ncpflash.json"

local function wd(base, method, path, body)
  local code, text, v = M.api(base, method, path, nil, body and json.encode(body),
    body and { "Content-Type: application/json" } or nil)
  if code ~= 200 or type(v) ~= "table" then
    error(("webdriver %s %s: HTTP %s %s"):format(method, path, tostring(code), text:sub(1, 400)), 2)
  end
  return v.value
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64decode(s)
  local map = {}
  for i = 1, 64 do map[B64:byte(i)] = i - 1 end
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = map[s:byte(i)]
    if v then
      bits, n = (bits << 6) | v, n + 6
      if n >= 8 then
        n = n - 8
        out[#out + 1] = string.char((bits >> n) & 0xFF)
      end
    end
  end
  return table.concat(out)
end

local Browser = {}
Browser.__index = Browser
Browser.__close = function(self) self:quit() end

--- Start chromedriver and a headless Chromium session (flags as the machine notes ask: root
--- needs --no-sandbox; no background networking).  Returns a browser handle (also <close>), or
--- nil, reason when chromium or chromium-driver is missing.
function M.browser(opts)
  opts = opts or {}
  if not sys.stat("/usr/bin/chromium") then return nil, "chromium is not installed" end
  if not sys.stat("/usr/bin/chromedriver") then return nil, "chromium-driver is not installed" end
  local port = M.free_port()
  local self = setmetatable({ base = "http://127.0.0.1:" .. port }, Browser)
  self.proc = helpers.spawn{ "/usr/bin/chromedriver", "--port=" .. port }
  M.wait_for("chromedriver", function()
    local ok, code = pcall(M.api, self.base, "GET", "/status")
    return ok and code == 200
  end, 15)
  local args = setmetatable({ "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--hide-scrollbars", "--user-data-dir=" .. helpers.tmpdir(),
    ("--window-size=%d,%d"):format(opts.width or 1280, opts.height or 760) }, json.array)
  local v = wd(self.base, "POST", "/session", { capabilities = { alwaysMatch = {
    ["goog:chromeOptions"] = { binary = "/usr/bin/chromium", args = args } } } })
  self.id = v.sessionId
  return self
end

function Browser:go(url) wd(self.base, "POST", "/session/" .. self.id .. "/url", { url = url }) end

--- Run `script` (a function body) in the page; returns its result.
function Browser:run(script)
  return wd(self.base, "POST", "/session/" .. self.id .. "/execute/sync",
    { script = script, args = setmetatable({}, json.array) })
end

function Browser:source() return wd(self.base, "GET", "/session/" .. self.id .. "/source") end

--- A PNG of the window, written to path; returns the bytes.
function Browser:screenshot(path)
  local png = b64decode(wd(self.base, "GET", "/session/" .. self.id .. "/screenshot"))
  helpers.writefile(path, png)
  return png
end

function Browser:quit()
  if self.id then
    pcall(M.api, self.base, "DELETE", "/session/" .. self.id)
    self.id = nil
  end
  if self.proc then self.proc:stop(); self.proc = nil end
end

return M
