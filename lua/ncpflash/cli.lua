-- ncpflash.cli: global options, recipe argument parsing and help text.
local errors = require "ncpflash.errors"
local util = require "ncpflash.util"
local reset = require "ncpflash.reset"

local M = {}

-- Global options: accepted anywhere before "--".
M.globals = {
  { "--port", metavar = "URL", env = "NCPFLASH_PORT", many = true,
    help = "serial device, pty path, rfc2217://HOST:PORT or socket://HOST:PORT (env NCPFLASH_PORT); "
      .. "repeat it to run the command on several devices at once" },
  { "--ports", metavar = "FILTER", many = true,
    help = "every port matching FILTER: a glob on the name or by-id path, VID:PID, or sn:SERIAL (repeatable)" },
  { "--log-dir", metavar = "DIR", help = "per-device logs (human log and wire trace) named by MAC and time" },
  { "--baud", type = "baud", metavar = "N", help = "handshake baud rate (default: the chip's)" },
  { "--load-baud", type = "baud", metavar = "N", help = "baud rate after the switch (default: the chip's)" },
  { "--board", metavar = "NAME", help = "board file to use (default st67w611m1)" },
  { "--chip", metavar = "NAME", help = "chip file to use (default: the board's)" },
  { "--loader", metavar = "FILE", env = "NCPFLASH_LOADER", help = "RAM eflash_loader image for chips whose ROM "
    .. "cannot program flash (BL602/BL702; not shipped with ncpflash)" },
  { "--reset", metavar = "SPEC", value_if = "reset_spec",
    help = "reset strategy: 'boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0', gpio:..., cmd:..., manual, boot2, "
      .. "none; '|' separates a ladder (docs/api/connect.md)" },
  { "--no-reset", flag = true, help = "no reset: the chip is already in download mode" },
  { "--retries", type = "int", metavar = "N", help = "handshake attempts per reset strategy (default 3)" },
  { "--frame-size", type = "int", metavar = "N", help = "data bytes per write/read frame: the chip's (BL616: "
    .. "2048, as the vendor) unless a harmless probe before any erase shows the ROM takes N (else it falls back)" },
  { "--flash-config", metavar = "SRC", help = "84-byte flash configuration for 0x3B: auto (the flash table's entry "
    .. "for the JEDEC id, else the chip's default; default), table, chip (BL616: ST's flash_para.bin) or FILE" },
  { "--verbose", short = "-v", flag = true, count = true, help = "more detail; tracebacks on errors" },
  { "--trace", flag = true, help = "log every byte on the wire (hex, ms timestamps) to stderr" },
  { "--trace-file", metavar = "F", help = "write the wire trace to F instead of stderr" },
  { "--json", flag = true, help = "one JSON object per event line on stdout" },
  { "--junit", metavar = "FILE", help = "write a JUnit XML report: one testcase per device (CI dashboards)" },
  { "--report", metavar = "KIND", many = true, help = "lava (lava-test-case lines on stdout), lava:FILE, "
    .. "or junit:FILE (README \"Labs and CI\")" },
  { "--yes", short = "-y", flag = true, help = "answer yes to confirmations that allow it" },
  { "--no-color", flag = true, help = "no colour (NO_COLOR is honoured too)" },
  { "--lua-path", metavar = "DIR", help = "load lua/ and recipes/ from DIR (development)" },
  { "--version", flag = true, help = "print the version and exit" },
  { "--help", short = "-h", flag = true, help = "this help, or a command's help" },
}

local function key_of(opt) return (opt[1]:gsub("^%-%-", ""):gsub("%-", "_")) end

local function usage(msg, fields)
  errors.raise("usage", msg, fields)
end

local function convert(spec, value, what)
  local t = spec.type or (spec.flag and "flag") or "string"
  if t == "u32" then
    local v, why = util.parse_u32(value)
    if not v then usage(("%s: %q is not a valid value: %s"):format(what, value, why)) end
    return v
  elseif t == "int" or t == "number" then
    local v = tonumber(value)
    if not v or (t == "int" and math.type(v) ~= "integer" and v ~= math.floor(v)) then
      usage(("%s: %q is not a %s"):format(what, value, t == "int" and "whole number" or "number"))
    end
    return t == "int" and math.tointeger(v) or v
  elseif t == "choice" then
    for _, c in ipairs(spec.choices) do
      if tostring(c) == value then return c end
    end
    usage(("%s: %q is not one of %s"):format(what, value, table.concat(spec.choices, ", ")))
  elseif t == "file" then
    local st = require("ncpflash.core.sys").stat(value)
    if st and st.type == "dir" then
      errors.raise("input", ("%s: %s is a directory, not a file"):format(what, value), { file = value })
    end
    local f = io.open(value, "rb")
    if not f then errors.raise("input", ("%s: file %s not found or not readable"):format(what, value)) end
    f:close()
  elseif t == "baud" then
    local v = math.tointeger(tonumber(value))
    if not v then usage(("%s: %q is not a whole number (a baud rate, 300..20000000)"):format(what, value)) end
    if v < 300 or v > 20000000 then usage(("%s: %d is not a baud rate (300..20000000)"):format(what, v)) end
    return v
  end
  return value
end

local function option_index(specs)
  local byname = {}
  for _, s in ipairs(specs) do
    if s[1]:sub(1, 2) == "--" then
      byname[s[1]] = s
      if s.short then byname[s.short] = s end
    end
  end
  return byname
end

M.value_checks = {
  reset_spec = reset.is_spec,
}

--- Split argv into global options and the rest (the command and its own
--- arguments).  Returns opts, rest.
function M.parse_globals(argv)
  local byname = option_index(M.globals)
  local opts, rest, late = {}, {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      table.move(argv, i, #argv, #rest + 1, rest)
      break
    end
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local spec = byname[name]
    -- an option that is global only with a value that fits (--reset SPEC), so that a
    -- recipe's own flag of the same name (flash --reset) keeps working
    if spec and spec.value_if and not inline and not M.value_checks[spec.value_if](argv[i + 1]) then
      if #rest == 0 then   -- before the command name it cannot be a recipe's flag
        local v = argv[i + 1]
        if v ~= nil and not v:match("^%-") then
          local _, kinds = reset.kinds()
          usage(("option %s: %q is not a reset strategy: give steps such as "
            .. "'boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0', or a kind (%s; cmd:COMMAND, gpio:...)")
            :format(name, v, table.concat(kinds, ", ")), { hint = "docs/api/connect.md lists the reset strategies" })
        end
        usage(("option %s needs a value (%s), e.g. %s 'boot=1,en=0,wait=100ms,en=1,wait=100ms,boot=0'")
          :format(name, spec.metavar or "VALUE", name))
      end
      spec = nil
    end
    if spec then
      local k = key_of(spec)
      local first, prev, prev_list = i, opts[k], opts[k .. "_list"] and table.move(opts[k .. "_list"], 1,
        #opts[k .. "_list"], 1, {})
      if spec.flag and inline and #rest > 0 then
        -- after the command name a value may be the command's own option (recipe --version X.Y.Z):
        -- decided by give_back, which raises this usage error when the command has no such option
        late[#late + 1] = { name = name, key = k, prev = prev, prev_list = prev_list, at = #rest, words = { a },
          invalid = ("option %s takes no value"):format(name) }
        i = i + 1
        goto next
      end
      if spec.flag then
        if inline then usage(("option %s takes no value"):format(name)) end
        opts[k] = spec.count and (opts[k] or 0) + 1 or true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then usage(("option %s needs a value (%s)"):format(name, spec.metavar or "VALUE")) end
        end
        opts[k] = convert(spec, v, "option " .. name)
        if spec.many then   -- repeatable: opts.NAME is the last one, opts.NAME_list all of them
          opts[k .. "_list"] = opts[k .. "_list"] or {}
          table.insert(opts[k .. "_list"], opts[k])
        end
      end
      -- after the command name: the command may declare an option of the same name (station
      -- report --junit FILE); main gives these words back to it (M.give_back)
      if #rest > 0 then
        late[#late + 1] = { name = name, key = k, prev = prev, prev_list = prev_list, at = #rest,
          words = table.move(argv, first, i, 1, {}) }
      end
    elseif a:match("^%-v+$") then
      opts.verbose = (opts.verbose or 0) + #a - 1
    else
      rest[#rest + 1] = a
    end
    i = i + 1
    ::next::
  end
  -- where each late option was, counted from the end (the caller drops the command name in front)
  for _, l in ipairs(late) do l.back = #rest - l.at end
  for _, spec in ipairs(M.globals) do
    local k = key_of(spec)
    if opts[k] == nil and spec.env then
      local v = os.getenv(spec.env)
      if v and v ~= "" then opts[k] = v end
    end
  end
  opts.verbose = opts.verbose or 0
  return opts, rest, late
end

--- Give the words of global options that came after the command name back to the command when
--- its own `args` declare an option of that name (its option wins there: `station report DB
--- --junit F` is the report's JUnit export, `--junit F station report DB` the run's).  `late` is
--- parse_globals' third result; the options' earlier values (before the command) are restored.
--- The words go back where they were, so that a global flag the command declares with a value
--- (`st67w611m1/mission_t02 DIR --version 2.0.97`) gets the word that followed it.
function M.give_back(args, late, opts, rest)
  local declared = {}
  for _, spec in ipairs(args or {}) do
    if type(spec[1]) == "string" and spec[1]:match("^%-%-") then declared[spec[1]] = true end
  end
  local restored = {}
  for _, l in ipairs(late or {}) do
    if declared[l.name] and not restored[l.key] then
      restored[l.key] = true
      opts[l.key], opts[l.key .. "_list"] = l.prev, l.prev_list
    elseif l.invalid and not declared[l.name] then
      usage(l.invalid)
    end
  end
  local n = #rest
  for j = #(late or {}), 1, -1 do       -- the last first: earlier positions stay valid
    local l = late[j]
    if declared[l.name] then
      local at = math.max(0, n - (l.back or 0))
      for w = #l.words, 1, -1 do table.insert(rest, at + 1, l.words[w]) end
    end
  end
end

--- Parse a recipe's own arguments against its `args` spec.  Returns a table
--- keyed by argument name (dashes become underscores).
function M.parse_args(recipe_name, specs, argv)
  specs = specs or {}
  local byname = option_index(specs)
  local positional = {}
  for _, s in ipairs(specs) do
    if s[1]:sub(1, 1) ~= "-" then positional[#positional + 1] = s end
  end
  local out, pos = {}, {}
  local only_pos = false
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if not only_pos and a == "--" then
      only_pos = true
    elseif not only_pos and a:sub(1, 1) == "-" and #a > 1 and not a:match("^%-%d") then
      local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
      name = name or a
      local spec = byname[name]
      if not spec then
        local names = {}
        for n in pairs(byname) do names[#names + 1] = n end
        for _, g in ipairs(M.globals) do names[#names + 1] = g[1] end
        table.sort(names)
        local hint = util.suggest(name, names)
        usage(("%s: unknown option %s%s"):format(recipe_name, name,
          hint and (" (did you mean " .. hint .. "?)") or ""),
          { hint = ("see 'ncpflash help %s'"):format(recipe_name) })
      end
      local k = key_of(spec)
      if spec.flag then
        if inline then usage(("%s: option %s takes no value"):format(recipe_name, name)) end
        out[k] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then
            usage(("%s: option %s needs a value (%s)"):format(recipe_name, name, spec.metavar or "VALUE"))
          end
        end
        v = convert(spec, v, recipe_name .. " " .. name)
        if spec.many then
          out[k] = out[k] or {}
          table.insert(out[k], v)
        else
          out[k] = v
        end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  local pi = 1
  for _, spec in ipairs(positional) do
    local k = key_of({ spec[1] })
    if spec.many then
      local list = {}
      while pi <= #pos do
        list[#list + 1] = convert(spec, pos[pi], ("%s %s"):format(recipe_name, spec[1]:upper()))
        pi = pi + 1
      end
      if #list == 0 and not spec.optional then
        usage(("%s: missing %s"):format(recipe_name, spec[1]:upper()),
          { hint = ("see 'ncpflash help %s'"):format(recipe_name) })
      end
      out[k] = list
    elseif pos[pi] ~= nil then
      out[k] = convert(spec, pos[pi], ("%s %s"):format(recipe_name, spec[1]:upper()))
      pi = pi + 1
    elseif not spec.optional and spec.default == nil then
      usage(("%s: missing %s"):format(recipe_name, spec[1]:upper()),
        { hint = ("see 'ncpflash help %s'"):format(recipe_name) })
    end
  end
  if pi <= #pos then
    usage(("%s: unexpected argument %q"):format(recipe_name, pos[pi]),
      { hint = ("see 'ncpflash help %s'"):format(recipe_name) })
  end
  for _, spec in ipairs(specs) do
    local k = key_of({ spec[1] })
    if out[k] == nil and spec.default ~= nil then out[k] = spec.default end
  end
  return out
end

local function wrap_help(lines, specs)
  for _, s in ipairs(specs) do
    local left = s[1]
    if s.short then left = s.short .. ", " .. left end
    if left:sub(1, 1) ~= "-" then
      left = left:upper()
      if s.many then left = left .. "..." end
      if s.optional then left = "[" .. left .. "]" end
    elseif not s.flag then
      left = left .. " " .. (s.metavar or (s.type == "u32" and "N" or "VALUE"))
    end
    local help = s.help or ""
    if s.choices then help = help .. " (one of " .. table.concat(s.choices, ", ") .. ")" end
    if s.default ~= nil and not s.flag then help = help .. (" [default %s]"):format(tostring(s.default)) end
    if #left < 24 then
      lines[#lines + 1] = ("  %-24s %s"):format(left, help)
    else
      lines[#lines + 1] = "  " .. left
      lines[#lines + 1] = ("  %-24s %s"):format("", help)
    end
  end
end

--- The usage line and option list of a recipe.
function M.recipe_help(name, recipe, origin)
  local synopsis = { "ncpflash [global options] " .. name }
  for _, s in ipairs(recipe.args or {}) do
    local a = s[1]
    if a:sub(1, 1) == "-" then
      synopsis[#synopsis + 1] = "[" .. a .. (s.flag and "" or (" " .. (s.metavar or "VALUE"))) .. "]"
    else
      local u = a:upper() .. (s.many and "..." or "")
      synopsis[#synopsis + 1] = s.optional and ("[" .. u .. "]") or u
    end
  end
  local lines = { "usage: " .. table.concat(synopsis, " "), "" }
  lines[#lines + 1] = recipe.help or ""
  if recipe.description then lines[#lines + 1] = ""; lines[#lines + 1] = recipe.description end
  if recipe.args and #recipe.args > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "arguments:"
    wrap_help(lines, recipe.args)
  end
  if recipe.examples then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "examples:"
    for _, e in ipairs(recipe.examples) do lines[#lines + 1] = "  " .. e end
  end
  if origin then lines[#lines + 1] = ""; lines[#lines + 1] = "(from " .. origin .. ")" end
  return table.concat(lines, "\n")
end

function M.global_help()
  local lines = {}
  wrap_help(lines, M.globals)
  return table.concat(lines, "\n")
end

return M
