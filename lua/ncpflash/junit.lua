-- ncpflash.junit: JUnit XML for CI dashboards (Jenkins, GitLab), one testcase per unit.
--
--   junit.render(suite) -> string         one <testsuite> inside <testsuites>
--   junit.document(suites) -> string      several suites in one file
--   junit.write(path, suite_or_suites)    atomically (temporary file + rename)
--
-- A suite: {name=, classname=, timestamp= (epoch s, default now), hostname=, time= (s, default
-- the units' sum), properties = {{name, value}, ...} or {name = value}, system_out=, units = {...}}.
-- A unit: {name=, classname=, time=, result = "ok"|"failed"|"interrupted"|"skipped", code=,
-- message=, region=, exit=, details = {lines} or "text"}.  docs/api/junit.md has the mapping.
--
-- What the output keeps to, so that both common schemas accept it (Jenkins' junit-10.xsd as
-- used by pytest's own tests, and the Ant schema published by Windy Road): <testsuites> holds
-- <testsuite> elements with name, tests, failures, errors, skipped, time, timestamp (UTC,
-- YYYY-MM-DDTHH:MM:SS, no zone), hostname, id and package; inside, <properties> (at least one
-- <property>) first, then the <testcase> elements, then <system-out> and <system-err>.
-- A testcase has name, classname and time; a failed one holds one <failure message= type=>
-- with the details as text, a skipped one <skipped message=>.  Times have three decimals
-- (the Surefire time pattern); text is valid XML 1.0 (control bytes and invalid UTF-8 become '?').
local M = {}

local ATTR_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;",
  ["\n"] = "&#10;", ["\r"] = "&#13;", ["\t"] = "&#9;" }
local TEXT_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }

--- Text that XML 1.0 accepts: invalid UTF-8 bytes, control characters other than tab/LF/CR
--- and U+FFFE/U+FFFF become '?'.
function M.clean(s)
  s = tostring(s == nil and "" or s)
  if not utf8.len(s) then
    local out, i = {}, 1
    while i <= #s do
      local c = s:byte(i)
      local n = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and 2 or 0
      local piece = n > 0 and s:sub(i, i + n - 1) or ""
      if n > 0 and #piece == n and utf8.len(piece) then
        out[#out + 1] = piece
        i = i + n
      else
        out[#out + 1] = "?"
        i = i + 1
      end
    end
    s = table.concat(out)
  end
  return (s:gsub("[%z\1-\8\11\12\14-\31]", "?"):gsub("\239\191[\190\191]", "?"))
end

function M.escape_attr(s) return (M.clean(s):gsub("[&<>\"'\n\r\t]", ATTR_ESC)) end
function M.escape_text(s) return (M.clean(s):gsub("[&<>]", TEXT_ESC)) end

local function secs(t)
  t = tonumber(t) or 0
  if t ~= t or t < 0 or t == math.huge then t = 0 end
  return ("%.3f"):format(t)
end

local function hostname()
  for _, v in ipairs({ os.getenv("HOSTNAME"), os.getenv("COMPUTERNAME") }) do
    if v ~= "" then return v end
  end
  for _, path in ipairs({ "/proc/sys/kernel/hostname", "/etc/hostname" }) do
    local f = io.open(path, "r")
    local line = f and f:read("l")
    if f then f:close() end
    if line and line ~= "" then return line end
  end
  return "localhost"
end

local function attrs(list)
  local out = {}
  for _, kv in ipairs(list) do
    if kv[2] ~= nil then out[#out + 1] = (' %s="%s"'):format(kv[1], M.escape_attr(kv[2])) end
  end
  return table.concat(out)
end

local function property_list(p)
  local list = {}
  if type(p) ~= "table" then return list end
  if #p > 0 then
    for _, kv in ipairs(p) do list[#list + 1] = { tostring(kv[1] or kv.name), tostring(kv[2] or kv.value) } end
  else
    for k, v in pairs(p) do list[#list + 1] = { tostring(k), tostring(v) } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  return list
end

--- The failure message of a unit: its message, with the region named when the message does
--- not already name it.
function M.failure_message(u)
  local msg = u.message and tostring(u.message) or (u.result == "interrupted" and "interrupted")
    or ("failed" .. (u.exit and (" with exit code " .. tostring(u.exit)) or ""))
  if u.region and not msg:find(tostring(u.region), 1, true) then
    msg = msg .. " (region " .. tostring(u.region) .. ")"
  end
  return msg
end

local function failure_text(u)
  local lines = {}
  for _, k in ipairs({ "code", "exit", "region" }) do
    if u[k] ~= nil then lines[#lines + 1] = k .. ": " .. tostring(u[k]) end
  end
  if u.message then lines[#lines + 1] = "message: " .. tostring(u.message) end
  local d = u.details
  if type(d) == "table" then
    for _, l in ipairs(d) do lines[#lines + 1] = tostring(l) end
  elseif d ~= nil then
    lines[#lines + 1] = tostring(d)
  end
  return table.concat(lines, "\n")
end

local function counts(units)
  local failed, skipped, total = 0, 0, 0
  for _, u in ipairs(units) do
    total = total + (tonumber(u.time) or 0)
    if u.result == "skipped" then skipped = skipped + 1
    elseif u.result ~= "ok" then failed = failed + 1 end
  end
  return failed, skipped, total
end

local function render_suite(out, s, id)
  assert(type(s) == "table" and type(s.units) == "table", "junit: a suite needs a units list")
  local units = s.units
  local failed, skipped, total = counts(units)
  out[#out + 1] = ("  <testsuite%s>"):format(attrs({
    { "name", s.name or "ncpflash" }, { "tests", #units }, { "failures", failed }, { "errors", 0 },
    { "skipped", skipped }, { "time", secs(s.time or total) },
    { "timestamp", os.date("!%Y-%m-%dT%H:%M:%S", math.floor(s.timestamp or os.time())) },
    { "hostname", s.hostname or hostname() }, { "id", id }, { "package", s.package or "ncpflash" } }))
  local props = property_list(s.properties)
  if #props == 0 then props = { { "generator", "ncpflash" } } end
  out[#out + 1] = "    <properties>"
  for _, kv in ipairs(props) do
    out[#out + 1] = ("      <property%s/>"):format(attrs({ { "name", kv[1] }, { "value", kv[2] } }))
  end
  out[#out + 1] = "    </properties>"
  for i, u in ipairs(units) do
    local head = ("    <testcase%s"):format(attrs({ { "name", u.name or ("unit " .. i) },
      { "classname", u.classname or s.classname or "ncpflash" }, { "time", secs(u.time) } }))
    if u.result == "ok" then
      out[#out + 1] = head .. "/>"
    elseif u.result == "skipped" then
      out[#out + 1] = head .. ">"
      out[#out + 1] = ("      <skipped%s/>"):format(attrs({ { "message", u.message or "skipped" } }))
      out[#out + 1] = "    </testcase>"
    else
      out[#out + 1] = head .. ">"
      out[#out + 1] = ("      <failure%s>%s</failure>"):format(attrs({ { "message", M.failure_message(u) },
        { "type", u.code or (u.result == "interrupted" and "interrupted") or "failed" } }),
        M.escape_text(failure_text(u)))
      out[#out + 1] = "    </testcase>"
    end
  end
  out[#out + 1] = ("    <system-out>%s</system-out>"):format(M.escape_text(s.system_out or ""))
  out[#out + 1] = "    <system-err></system-err>"
  out[#out + 1] = "  </testsuite>"
  return #units, failed, total
end

--- One XML document holding every suite of the list.
function M.document(suites)
  local body, tests, failures, time = {}, 0, 0, 0
  for i, s in ipairs(suites) do
    local n, f, t = render_suite(body, s, i - 1)
    tests, failures, time = tests + n, failures + f, time + (tonumber(s.time) or t)
  end
  local name = suites[1] and suites[1].name or "ncpflash"
  return table.concat({ '<?xml version="1.0" encoding="UTF-8"?>',
    ("<testsuites%s>"):format(attrs({ { "name", name }, { "tests", tests }, { "failures", failures },
      { "errors", 0 }, { "time", secs(time) } })),
    table.concat(body, "\n"), "</testsuites>", "" }, "\n")
end

function M.render(suite) return M.document({ suite }) end

--- Write the document for one suite (or a list of suites) to `path`, replacing it atomically.
--- Raises an "input" error naming the path when it cannot be written.
function M.write(path, what)
  local xml = (what.units and M.render(what)) or M.document(what)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  local ok, werr = f ~= nil, err
  if f then
    ok, werr = f:write(xml)
    ok = f:close() and ok
  end
  if not ok or not os.rename(tmp, path) then
    os.remove(tmp)
    require("ncpflash.errors").raise("input", ("cannot write JUnit report %s: %s"):format(path,
      tostring(werr or "rename failed")), { file = path })
  end
  return xml
end

return M
