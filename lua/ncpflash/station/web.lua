-- ncpflash.station.web: the station's dashboard and HTTP JSON API (ncpflash.core.http, i.e.
-- libmicrohttpd).  Routes (README "Production station"):
--
--   GET  /                       the dashboard (HTML/CSS/JS embedded in the binary; loads nothing else)
--   GET  /api/status             station, locked configuration, slots, counters, last failures
--   GET  /api/slots[/N]          slot views;  GET /api/slots/N/verdict  the last unit's verdict
--   GET  /api/verdicts           the last verdict of every slot
--   GET  /api/attempts?limit=&slot=&result=   recent records from the database
--   GET  /api/events             Server-Sent Events: the v2 event lines (device events, slot, counters)
--   POST /api/start|stop|pause   every slot;  POST /api/slots/N/start|stop|pause|trigger  one slot
--
-- Control (POST) needs the token printed at start, as "Authorization: Bearer TOKEN" (or the
-- X-Ncpflash-Token header); reading is open on a loopback address and needs the token too (header
-- or ?token=) when the station listens on any other address.  On loopback the Host header must
-- name a loopback host (a web page cannot rebind its own name to 127.0.0.1 and read the API).
local sys = require "ncpflash.core.sys"
local http = require "ncpflash.core.http"
local json = require "ncpflash.json"
local config = require "ncpflash.station.config"

local M = {}

local ASSETS = {
  ["/"] = { "web/station/index.html", "text/html; charset=utf-8" },
  ["/index.html"] = { "web/station/index.html", "text/html; charset=utf-8" },
  ["/station.css"] = { "web/station/station.css", "text/css; charset=utf-8" },
  ["/station.js"] = { "web/station/station.js", "text/javascript; charset=utf-8" },
}

local SECURITY = {
  ["Cache-Control"] = "no-store",
  ["X-Content-Type-Options"] = "nosniff",
  ["X-Frame-Options"] = "DENY",
  ["Referrer-Policy"] = "no-referrer",
  ["Content-Security-Policy"] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    .. "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

local function reply(status, body, ctype)
  return { status = status, body = body, type = ctype or "application/json", headers = SECURITY }
end

local function jreply(status, v) return reply(status, json.encode(v) .. "\n") end

local function jerror(status, msg) return jreply(status, { error = msg, status = status }) end

-- constant-time comparison of two strings
local function same(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then return false end
  local d = 0
  for i = 1, #a do d = d | (a:byte(i) ~ b:byte(i)) end
  return d == 0
end

local Web = {}
Web.__index = Web

function Web:asset(path)
  local a = ASSETS[path]
  if not a then return nil end
  local text
  if self.lua_path then   -- development: the working tree's copy first
    local f = io.open(self.lua_path .. "/" .. a[1], "rb")
    if f then text = f:read("a"); f:close() end
  end
  text = text or sys.embedded_source(a[1])
  if not text then return nil end
  if a[1]:match("index%.html$") and self.loopback then   -- the status the page starts from (JSON, not run as script)
    local status = json.encode(self.station:status()):gsub("</", "<\\/")
    text = text:gsub("<!%-%-STATUS%-%->", function()   -- (off loopback reading needs the token)
      return '<script type="application/json" id="initial-status">' .. status .. "</script>"
    end)
  end
  return reply(200, text, a[2])
end

function Web.token_of(_, req, allow_query)
  local h = req.headers
  local auth = h.authorization and h.authorization:match("^[Bb]earer%s+(%S+)$")
  return auth or h["x-ncpflash-token"] or (allow_query and req.query.token) or nil
end

function Web:host_ok(req)
  if not self.loopback then return true end
  local host = (req.headers.host or ""):lower()
  host = host:gsub(":%d+$", "")
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function slot_index(s)
  local n = tonumber(s)
  return n and math.tointeger(n)
end

function Web:handle(req)
  local st = self.station
  if not self:host_ok(req) then
    return jerror(403, "Host header " .. tostring(req.headers.host) .. " is not a loopback name")
  end
  local path = req.path
  if req.method == "GET" or req.method == "HEAD" then
    local a = self:asset(path)
    if a then return a end
    if path:sub(1, 5) ~= "/api/" then return jerror(404, "no such page: " .. path) end
    if not self.loopback and not same(self:token_of(req, true), self.token) then
      return jerror(401, "this station listens off loopback: reading needs the token (Authorization: Bearer TOKEN)")
    end
    if path == "/api/status" then return jreply(200, st:status()) end
    if path == "/api/events" then
      local first = "retry: 2000\n\ndata: " .. json.encode({ v = 2, event = "status", t = sys.now() - st.t0,
        status = st:status() }) .. "\n\n"
      return { status = 200, stream = true, body = first, type = "text/event-stream",
        headers = { ["Cache-Control"] = "no-store", ["X-Accel-Buffering"] = "no" } }
    end
    if path == "/api/slots" then
      local out = setmetatable({}, json.array)
      for i, s in ipairs(st.slots) do out[i] = st:slot_view(s) end
      return jreply(200, out)
    end
    if path == "/api/verdicts" then
      local out = setmetatable({}, json.array)
      for i, s in ipairs(st.slots) do out[i] = { slot = i, port = s.port, state = s.state, verdict = s.last } end
      return jreply(200, out)
    end
    local n, rest = path:match("^/api/slots/(%d+)(.*)$")
    if n then
      local s = st.slots[slot_index(n)]
      if not s then return jerror(404, ("no slot %s (1..%d)"):format(n, #st.slots)) end
      if rest == "" then return jreply(200, st:slot_view(s)) end
      if rest == "/verdict" then
        return jreply(200, { slot = s.index, state = s.state, verdict = s.last })
      end
      return jerror(404, "no such resource: " .. path)
    end
    if path == "/api/attempts" then
      local q = req.query
      local ok, rows = pcall(st.rec.attempts, st.rec, { limit = tonumber(q.limit), slot = slot_index(q.slot),
        result = q.result, session_id = slot_index(q.session) })
      if not ok then return jerror(500, tostring(rows.message or rows)) end
      for _, r in ipairs(rows) do r.is_repeat = r.is_repeat == 1 end
      return jreply(200, setmetatable(rows, json.array))
    end
    return jerror(404, "no such resource: " .. path)
  end
  if req.method ~= "POST" then return jerror(405, "method " .. req.method .. " not allowed") end
  local action = path:match("^/api/(%a+)$")
  local n, action1 = path:match("^/api/slots/(%d+)/(%a+)$")
  if not action and not action1 then return jerror(404, "no such control: " .. path) end
  if not same(self:token_of(req, false), self.token) then
    return jerror(401, "control needs the token printed at the station's start (Authorization: Bearer TOKEN)")
  end
  local ok, msg, code = st:control(action or action1, n and slot_index(n) or nil)
  if not ok then return jerror(code or 400, msg) end
  st.ev_main:info(("control from %s: %s"):format(req.remote or "?", msg))
  return jreply(200, { ok = true, message = msg, status = st:status() })
end

function Web:poll(timeout)
  self.srv:poll(timeout)
  for _, line in ipairs(self.srv:log()) do
    if not line:match("^libmicrohttpd: Failed to send") and not line:match("connection reset") then
      self.station.ev_main:warn("dashboard: " .. line)
    end
  end
end

function Web:broadcast(line) self.srv:send("data: " .. line .. "\n\n") end
function Web:keepalive() self.srv:send(": keepalive\n\n") end
function Web:close() self.srv:close() end

--- Start serving `station` on listen = {host=, port=}.
function M.start(station, listen, token, lua_path)
  local self = setmetatable({ station = station, token = token, lua_path = lua_path,
    loopback = config.is_loopback(listen.host) }, Web)
  local host = listen.host:gsub("^%[(.*)%]$", "%1")
  self.srv = http.listen({ host = host, port = listen.port, handler = function(req) return self:handle(req) end })
  self.port = self.srv:port()
  self.url = ("http://%s:%d"):format(listen.host, self.port)
  return self
end

return M
