-- junit_schema: check a parsed JUnit document (tests/lib/xml.lua) against what the two common
-- JUnit schemas require, so that Jenkins, GitLab and other readers accept it.  Facts from
-- Jenkins' junit-10.xsd (the copy pytest validates its own output against) and the Ant JUnit
-- schema published by Windy Road (JUnit.xsd); where they differ the stricter rule is checked:
--   <testsuites> (name, time, tests, failures, errors) holds only <testsuite> elements;
--   <testsuite> needs name, tests, failures, errors, time, timestamp (YYYY-MM-DDTHH:MM:SS, no
--   zone), hostname, id, package; its children are <properties> (one or more <property name=
--   value=>) first, then <testcase>*, then <system-out> and <system-err>;
--   <testcase> needs name, classname, time and holds at most one <failure> (message, type) or
--   <skipped>; times follow the Surefire pattern (digits, at most three decimals).
-- check(root) raises a message naming the element and the rule; returns the testcases as
-- {name=, classname=, time=, failure={message=, type=, text=} | nil, skipped=message | nil}.
local xml = require "xml"

local M = {}

local function bad(where, fmt, ...) error(("junit schema: %s: " .. fmt):format(where, ...), 0) end

local function only_attrs(el, allowed, where)
  for _, a in ipairs(el.attr_order) do
    if not allowed[a] then bad(where, "attribute %s is not in the schema", a) end
  end
end

local function need(el, names, where)
  for _, a in ipairs(names) do
    if el.attrs[a] == nil then bad(where, "attribute %s is required", a) end
  end
end

local function time_ok(v, where)
  if not (type(v) == "string" and v:match("^%d+%.?%d?%d?%d?$")) then
    bad(where, "time %q is not a Surefire time", tostring(v))
  end
end

local function count(v, where, name)
  if not (v and v:match("^%d+$")) then bad(where, "%s=%q is not a count", name, tostring(v)) end
  return tonumber(v)
end

local SUITE_ATTRS = { name = true, tests = true, failures = true, errors = true, group = true, time = true,
  skipped = true, timestamp = true, hostname = true, id = true, package = true, file = true, log = true,
  url = true, version = true }

function M.check(root)
  if root.tag ~= "testsuites" then bad("root", "expected <testsuites>, found <%s>", root.tag) end
  only_attrs(root, { name = true, time = true, tests = true, failures = true, errors = true }, "testsuites")
  if root.attrs.time then time_ok(root.attrs.time, "testsuites") end
  local cases, total_tests, total_fail = {}, 0, 0
  for si, s in ipairs(root.children) do
    local where = "testsuite " .. si
    if s.tag ~= "testsuite" then bad("testsuites", "child <%s> is not a testsuite", s.tag) end
    only_attrs(s, SUITE_ATTRS, where)
    need(s, { "name", "tests", "failures", "errors", "time", "timestamp", "hostname", "id", "package" }, where)
    time_ok(s.attrs.time, where)
    if not s.attrs.timestamp:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d$") then
      bad(where, "timestamp %q is not YYYY-MM-DDTHH:MM:SS", s.attrs.timestamp)
    end
    local order = {}
    for _, c in ipairs(s.children) do order[#order + 1] = c.tag end
    local k = 1
    local okseq = order[k] == "properties"
    k = k + 1
    while order[k] == "testcase" do k = k + 1 end
    okseq = okseq and order[k] == "system-out" and order[k + 1] == "system-err" and order[k + 2] == nil
    if not okseq then
      bad(where, "children must be properties, testcase*, system-out, system-err; found: %s", table.concat(order, " "))
    end
    local props = xml.children(s, "properties")[1]
    if #props.children == 0 then bad(where, "<properties> needs at least one <property>") end
    for _, p in ipairs(props.children) do
      if p.tag ~= "property" then bad(where, "<properties> holds <%s>", p.tag) end
      only_attrs(p, { name = true, value = true }, where .. " property")
      need(p, { "name", "value" }, where .. " property")
    end
    local n, nf, ns = 0, 0, 0
    for _, tc in ipairs(xml.children(s, "testcase")) do
      n = n + 1
      local tw = where .. " testcase " .. n
      only_attrs(tc, { name = true, time = true, classname = true, group = true }, tw)
      need(tc, { "name", "classname", "time" }, tw)
      time_ok(tc.attrs.time, tw)
      if #tc.children > 1 then bad(tw, "at most one failure or skipped") end
      local case = { name = tc.attrs.name, classname = tc.attrs.classname, time = tonumber(tc.attrs.time) }
      local c = tc.children[1]
      if c then
        if c.tag == "failure" then
          only_attrs(c, { message = true, type = true }, tw .. " failure")
          need(c, { "message", "type" }, tw .. " failure")
          if #c.children > 0 then bad(tw, "<failure> holds elements") end
          case.failure = { message = c.attrs.message, type = c.attrs.type, text = c.text }
          nf = nf + 1
        elseif c.tag == "skipped" then
          only_attrs(c, { message = true, type = true }, tw .. " skipped")
          case.skipped = c.attrs.message or ""
          ns = ns + 1
        else
          bad(tw, "child <%s> (ncpflash writes only failure and skipped)", c.tag)
        end
      end
      cases[#cases + 1] = case
    end
    if count(s.attrs.tests, where, "tests") ~= n then bad(where, "tests=%s but %d testcases", s.attrs.tests, n) end
    if count(s.attrs.failures, where, "failures") ~= nf then
      bad(where, "failures=%s but %d failures", s.attrs.failures, nf)
    end
    if count(s.attrs.errors, where, "errors") ~= 0 then bad(where, "errors=%s, expected 0", s.attrs.errors) end
    if s.attrs.skipped and count(s.attrs.skipped, where, "skipped") ~= ns then
      bad(where, "skipped=%s but %d skipped", s.attrs.skipped, ns)
    end
    total_tests, total_fail = total_tests + n, total_fail + nf
  end
  if root.attrs.tests and tonumber(root.attrs.tests) ~= total_tests then bad("testsuites", "tests total") end
  if root.attrs.failures and tonumber(root.attrs.failures) ~= total_fail then bad("testsuites", "failures total") end
  return cases
end

--- Parse and check a JUnit document; returns the testcases and the root.
function M.load(text)
  local root = xml.parse(text)
  return M.check(root), root
end

return M
