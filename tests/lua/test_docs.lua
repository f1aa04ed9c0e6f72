-- Citations of the protocol reference: comments, tests and documents cite docs/protocol.md by
-- section ("protocol.md" followed by "§4.2", "§6.7/§6.8", "4.1, 5.2", "Appendix A", ...). Every
-- cited section must be a heading of docs/protocol.md, and no citation may send the reader to the
-- team's research notes outside the repository (../shared/docs): a fresh clone does not have
-- them. ../shared/fixtures and ../shared/conformance stay allowed: they are test data beside the
-- repository, and the tests that read them skip, saying so, without them.
local sys = require "ncpflash.core.sys"

local ROOT = helpers.root
-- spelt in pieces so that this file's own strings are neither citations nor outside paths
local DOC = "protocol" .. ".md"
local SHARED = { ".." .. "/shared/docs/" }
local SCAN = { "lua", "recipes", "src", "tests", "docs", "README.md" }
local SECT = "\194\167"   -- the section sign, UTF-8

-- Section ids of a markdown file: "## 6. Data formats" -> "6", "### 6.2 Boot headers" -> "6.2",
-- "## Appendix A. ..." -> "Appendix A". Headings inside ``` fences do not count.
local function sections(text)
  local set, fenced = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%s*```") then
      fenced = not fenced
    elseif not fenced then
      local title = line:match("^#+%s+(.-)%s*$")
      if title then
        if title:sub(1, #SECT) == SECT then title = title:sub(#SECT + 1) end
        local num = title:match("^%s*(%d[%d%.]*)")
        if num then set[(num:gsub("%.+$", ""))] = true end
        local app = title:match("^Appendix%s+(%u)%f[^%w]")
        if app then set["Appendix " .. app] = true end
      end
    end
  end
  return set
end

-- The section list that follows one occurrence of the file name: "§9, §6.1)" -> {"9", "6.1"};
-- a list that starts with a bare number ("4.1, 5.2, 9") may continue with bare numbers, one that
-- starts with "§" only with "§" items (so "§6.2, 352 bytes" is one citation); "§3–§4" is a range.
local SEPS = { "^%s*,%s*()", "^%s*/%s*()", "^%s+and%s+()", "^%s*&%s*()", "^%s*\226\128\147%s*()", "^%s*%-%s*()" }
local function parse_list(rest)
  local refs, pos, bare = {}, 1, nil
  local prev, dash
  while true do
    local p = rest:match("^%s*()", pos)
    local marked = rest:sub(p, p + 1) == SECT
    if marked then p = rest:match("^%s?()", p + 2) end
    local num, after = rest:match("^(%d[%d%.]*)()", p)
    local app, app_after = rest:match("^Appendix%s+(%u)()%f[^%w]", p)
    if num and (marked or bare ~= false) and (marked or not rest:sub(after):match("^%s*%a")
                                                  or rest:sub(after):match("^%s+and%s")) then
      num = num:gsub("%.+$", "")
      if bare == nil then bare = not marked end
      if dash and prev and prev:match("^%d+$") and num:match("^%d+$") then
        for i = tonumber(prev) + 1, tonumber(num) - 1 do refs[#refs + 1] = tostring(i) end
      end
      refs[#refs + 1], prev, pos = num, num, after
    elseif app and not marked then
      refs[#refs + 1], prev, pos = "Appendix " .. app, nil, app_after
      if bare == nil then bare = false end
    else
      break
    end
    local nxt
    for i, sep in ipairs(SEPS) do
      nxt = rest:match(sep, pos)
      if nxt then dash = i >= 5; break end
    end
    if not nxt then break end
    pos = nxt
  end
  return refs
end

local function split_lines(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

-- Problems in one file's text, as "path:line: ..." strings, and the number of section
-- references it holds.
local function check_text(path, text, have)
  local problems, refs = {}, 0
  local lines = split_lines(text)
  local function problem(n, fmt, ...) problems[#problems + 1] = ("%s:%d: " .. fmt):format(path, n, ...) end
  for n, line in ipairs(lines) do
    for _, s in ipairs(SHARED) do
      if line:find(s, 1, true) then
        problem(n, "cites %s..., which is outside the repository (cite docs/%s or name the public source)", s, DOC)
      end
    end
    local init = 1
    while true do
      local a, b = line:find(DOC, init, true)
      if not a then break end
      init = b + 1
      local prefix = line:sub(1, a - 1):match("[%w_%./%-]*$")
      if prefix ~= "" and prefix ~= "docs/" and prefix ~= "../" and prefix ~= "./" then
        problem(n, "%s%s is not this repository's docs/%s", prefix, DOC, DOC)
      end
      local rest = line:sub(b + 1):gsub("^`", "")
      if rest:match("^%s*$") and lines[n + 1] then   -- the section list continues on the next line
        rest = " " .. lines[n + 1]:gsub("^%s*", ""):gsub("^[%*%-/]+%s*", "")
      end
      for _, ref in ipairs(parse_list(rest)) do
        refs = refs + 1
        if not have[ref] then
          problem(n, "cites %s %s%s, which docs/%s has no heading for", DOC, ref:match("^%d") and SECT or "", ref, DOC)
        end
      end
    end
  end
  return problems, refs
end

-- Every text file under the scanned paths: {path = text} (files with a NUL byte are skipped).
local function scanned_files()
  local out = {}
  local function walk(rel)
    local st = sys.stat(ROOT .. "/" .. rel)
    if not st then return end
    if st.type == "dir" then
      for _, name in ipairs(sys.listdir(ROOT .. "/" .. rel) or {}) do walk(rel .. "/" .. name) end
    elseif st.type == "file" then
      local f = io.open(ROOT .. "/" .. rel, "rb")
      if f then
        local text = f:read("a")
        f:close()
        if not text:find("\0", 1, true) then out[rel] = text end
      end
    end
  end
  for _, p in ipairs(SCAN) do walk(p) end
  return out
end

local function doc_sections()
  local f = io.open(ROOT .. "/docs/" .. DOC, "rb")
  ok(f, "docs/" .. DOC .. " is missing")
  local text = f:read("a")
  f:close()
  return sections(text)
end

---------------------------------------------------------------------------------------------------

test("the citation parser reads the forms the code uses", function()
  local S = SECT
  eq(parse_list(" " .. S .. "9, " .. S .. "6.1, " .. S .. "6.2); generic code"), { "9", "6.1", "6.2" })
  eq(parse_list(" 4.1, 5.2, 6.1, 9): the rest"), { "4.1", "5.2", "6.1", "9" })
  eq(parse_list(" " .. S .. "6.2, 352 bytes): offsets"), { "6.2" })
  eq(parse_list(" " .. S .. "3\226\128\147" .. S .. "6 and " .. S .. "7.1. Times"), { "3", "4", "5", "6", "7.1" })
  eq(parse_list(" Appendix A / " .. S .. "5.1 step 6"), { "Appendix A", "5.1" })
  eq(parse_list(" " .. S .. "2: 300 at 500 kbaud"), { "2" })
  eq(parse_list(" " .. S .. "6.7/" .. S .. "6.8 (itself citing"), { "6.7", "6.8" })
  eq(parse_list(" 6.7 and Bouffalo's BL616 key"), { "6.7" })
  eq(parse_list(" 8)."), { "8" })
  eq(parse_list(" (handshake, framing)"), {})
  eq(parse_list(" section)"), {})
end)

test("a citation of a missing section or of ../shared is reported with file and line", function()
  local have = sections("# t\n## 1. One\n### 1.2 Sub\n```\n## 9. fenced, not a heading\n```\n## Appendix A. x\n")
  eq(have, { ["1"] = true, ["1.2"] = true, ["Appendix A"] = true })
  local text = table.concat({
    "-- fine (" .. DOC .. " " .. SECT .. "1.2, Appendix A)",
    "-- wrong (" .. DOC .. " " .. SECT .. "1.3)",
    "/* split over lines (" .. DOC,
    " * 9, 1) */",
    "-- see " .. SHARED[1] .. DOC .. " " .. SECT .. "1",
  }, "\n")
  local p = check_text("x/fake.lua", text, have)
  eq(#p, 4, table.concat(p, "\n"))
  match(p[1], "^x/fake%.lua:2: cites .*1%.3, which")
  match(p[2], "^x/fake%.lua:3: cites .*9, which")
  match(p[3], "^x/fake%.lua:5: cites %.%./shared/docs/%.%.%., which is outside the repository")
  match(p[4], "^x/fake%.lua:5: %.%./shared/docs/" .. DOC:gsub("%.", "%%.") .. " is not this repository's")
end)

test("docs/" .. DOC .. " keeps the numbering the code cites (" .. SECT .. "0 to " .. SECT .. "12)", function()
  local have = doc_sections()
  for i = 0, 12 do ok(have[tostring(i)], ("no heading for %s%d"):format(SECT, i)) end
  for _, s in ipairs({ "1.2", "2.3", "3.4", "4.5", "5.5", "6.8", "7.2", "Appendix A" }) do
    ok(have[s], "no heading for " .. s)
  end
end)

test("every citation of docs/" .. DOC .. " in the repository resolves", function()
  local have = doc_sections()
  local files = scanned_files()
  local names = {}
  for path in pairs(files) do names[#names + 1] = path end
  table.sort(names)
  local problems, refs = {}, 0
  for _, path in ipairs(names) do
    local p, r = check_text(path, files[path], have)
    for _, line in ipairs(p) do problems[#problems + 1] = line end
    refs = refs + r
  end
  -- the scan must have found the citations it exists to check (about 90 section references today)
  ok(refs >= 60, ("only %d section citations found in %d files: is the scanner broken?"):format(refs, #names))
  ok(#problems == 0, #problems .. " bad citation(s):\n" .. table.concat(problems, "\n"))
end)
