-- xml: a small, strict XML 1.0 reader for the tests (JUnit reports): elements, attributes, text,
-- the five predefined entities and character references, an XML declaration, comments.
-- No DTDs, namespaces or CDATA (the reports use none).  Anything not well-formed raises
-- "xml: <what> at byte N".
--   xml.parse(text) -> root  where an element is {tag=, attrs={name=value}, attr_order={...},
--                             children={elements...}, text=concatenated character data}
local M = {}

local ENT = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }

local function fail(what, pos) error(("xml: %s at byte %d"):format(what, pos), 0) end

-- Characters XML 1.0 allows (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF), in UTF-8.
local function check_chars(s, base)
  if not utf8.len(s) then fail("invalid UTF-8", base) end
  for p, c in utf8.codes(s) do
    local okc = c == 9 or c == 10 or c == 13 or (c >= 0x20 and c <= 0xD7FF) or (c >= 0xE000 and c <= 0xFFFD)
      or (c >= 0x10000 and c <= 0x10FFFF)
    if not okc then fail(("character U+%04X not allowed"):format(c), base + p - 1) end
  end
end

local function unescape(s, pos)
  if s:find("<", 1, true) then fail("'<' in character data or attribute value", pos) end
  return (s:gsub("&([#%w]*)(;?)", function(name, semi)
    if semi == "" then fail("unterminated entity or bare '&'", pos) end
    local n = name:match("^#x(%x+)$")
    local code = n and tonumber(n, 16) or (name:match("^#(%d+)$") and tonumber(name:sub(2)))
    if code then return utf8.char(code) end
    if ENT[name] then return ENT[name] end
    fail("unknown entity &" .. name .. ";", pos)
  end))
end

local NAME = "^[%a_:][%w_:%.%-]*"

function M.parse(text)
  check_chars(text, 1)
  local pos = 1
  local function skip_ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local function skip_misc()   -- comments and whitespace between top-level pieces
    while true do
      skip_ws()
      if text:sub(pos, pos + 3) == "<!--" then
        local e = text:find("-->", pos + 4, true)
        if not e then fail("unterminated comment", pos) end
        pos = e + 3
      else
        return
      end
    end
  end
  if text:sub(1, 5) == "<?xml" then
    local e = text:find("?>", 1, true)
    if not e then fail("unterminated XML declaration", 1) end
    local decl = text:sub(1, e + 1)
    if not decl:match('^<%?xml%s+version="1%.[0-9]"') then fail("bad XML declaration", 1) end
    pos = e + 2
  end
  skip_misc()

  local function element()
    if text:sub(pos, pos) ~= "<" then fail("expected an element", pos) end
    local tag = text:match(NAME, pos + 1)
    if not tag then fail("bad element name", pos + 1) end
    pos = pos + 1 + #tag
    local el = { tag = tag, attrs = {}, attr_order = {}, children = {}, text = "" }
    while true do
      local ws = text:match("^[ \t\r\n]*", pos)
      pos = pos + #ws
      local c = text:sub(pos, pos)
      if c == "/" then
        if text:sub(pos, pos + 1) ~= "/>" then fail("expected '/>'", pos) end
        pos = pos + 2
        return el
      elseif c == ">" then
        pos = pos + 1
        break
      end
      if #ws == 0 then fail("attributes must be separated by white space", pos) end
      local name = text:match(NAME, pos)
      if not name then fail("bad attribute name", pos) end
      pos = pos + #name
      local eq = text:match("^[ \t\r\n]*=[ \t\r\n]*", pos)
      if not eq then fail("expected '=' after attribute " .. name, pos) end
      pos = pos + #eq
      local q = text:sub(pos, pos)
      if q ~= '"' and q ~= "'" then fail("attribute value must be quoted", pos) end
      local e = text:find(q, pos + 1, true)
      if not e then fail("unterminated attribute value", pos) end
      if el.attrs[name] ~= nil then fail("duplicate attribute " .. name, pos) end
      el.attrs[name] = unescape(text:sub(pos + 1, e - 1), pos)
      el.attr_order[#el.attr_order + 1] = name
      pos = e + 1
    end
    local texts = {}
    while true do
      local lt = text:find("<", pos, true)
      if not lt then fail("unterminated element <" .. tag .. ">", pos) end
      local chunk = text:sub(pos, lt - 1)
      if chunk:find("]]>", 1, true) then fail("']]>' in character data", pos) end
      texts[#texts + 1] = unescape(chunk, pos)
      pos = lt
      if text:sub(pos, pos + 1) == "</" then
        local close = text:match("^</([%a_:][%w_:%.%-]*)[ \t\r\n]*>", pos)
        if close ~= tag then fail(("</%s> closes <%s>"):format(tostring(close), tag), pos) end
        pos = text:find(">", pos, true) + 1
        el.text = table.concat(texts)
        return el
      elseif text:sub(pos, pos + 3) == "<!--" then
        local e = text:find("-->", pos + 4, true)
        if not e then fail("unterminated comment", pos) end
        pos = e + 3
      elseif text:sub(pos, pos + 1) == "<!" or text:sub(pos, pos + 1) == "<?" then
        fail("CDATA, DTDs and processing instructions are not supported", pos)
      else
        el.children[#el.children + 1] = element()
      end
    end
  end

  local root = element()
  skip_misc()
  if pos <= #text then fail("content after the root element", pos) end
  return root
end

--- The child elements of `el` named `tag`.
function M.children(el, tag)
  local out = {}
  for _, c in ipairs(el.children) do if c.tag == tag then out[#out + 1] = c end end
  return out
end

return M
