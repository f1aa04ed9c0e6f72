-- ncpflash.path: file paths on Linux and on Windows, and where user files live.
--
-- On Windows a path may use "\" or "/" (both work in every Windows call) and may start with a
-- drive letter ("C:\x", "C:x") or a UNC prefix ("\\server\share\x"); names compare without
-- case. Everywhere else only "/" separates. Functions here are lexical (no file system access)
-- except where noted; ones that build paths write "/" (Windows takes it), so an ini written on
-- Windows (".\bin\app.bin") and one written on Linux resolve the same way.
--
-- User files (README "Install"): configuration (boards/, chips/, recipes/, lua/) in
--   $XDG_CONFIG_HOME/ncpflash, default ~/.config/ncpflash;  Windows: %APPDATA%\ncpflash
-- state (journals, shell history) in
--   $XDG_STATE_HOME/ncpflash, default ~/.local/state/ncpflash;  Windows: %APPDATA%\ncpflash\state
-- XDG_CONFIG_HOME / XDG_STATE_HOME, when set, win on Windows too.
local sys = require "ncpflash.core.sys"

--- The functions for one platform (windows = true: Windows rules). The module itself is the
--- set for the platform ncpflash runs on; tests take the other one with M.rules(bool).
local function rules(windows)
  local P = { windows = windows }

  local SEP = windows and "[/\\]" or "/"
  local NOTSEP = windows and "[^/\\]" or "[^/]"

  function P.is_sep(c) return c == "/" or (windows and c == "\\") end

  --- root, rest: the part that anchors the path ("/", "C:/", "C:", "//server/share/" or "") and
  --- what follows it.
  function P.root(p)
    if windows then
      local unc = p:match("^[/\\][/\\][^/\\]+[/\\][^/\\]+[/\\]?")
      if unc then return "//" .. unc:sub(3):gsub("\\", "/"):gsub("/?$", "/"), p:sub(#unc + 1) end
      local d = p:match("^%a:[/\\]")
      if d then return d:sub(1, 2):upper() .. "/", p:sub(4) end
      d = p:match("^%a:")
      if d then return d:upper(), p:sub(3) end
    end
    if P.is_sep(p:sub(1, 1)) then return "/", p:sub(2) end
    return "", p
  end

  --- true for a path that does not depend on the current directory (Windows: drive letter,
  --- UNC, or rooted on the current drive)
  function P.is_abs(p)
    return P.root(p) ~= ""
  end

  --- The path's parts between separators.
  function P.split(p)
    local root, rest = P.root(p)
    local parts = {}
    for part in rest:gmatch(NOTSEP .. "+") do parts[#parts + 1] = part end
    return root, parts
  end

  --- "a/./b/../c" -> "a/c", "\" -> "/" on Windows (lexically: good for messages and
  --- comparisons; a symlink is not followed).
  function P.normalize(p)
    local root, parts = P.split(p)
    local out = {}
    for _, part in ipairs(parts) do
      if part == ".." and #out > 0 and out[#out] ~= ".." then out[#out] = nil
      elseif part ~= "." and not (part == ".." and root ~= "") then -- nothing above a root
        out[#out + 1] = part
      end
    end
    local s = root .. table.concat(out, "/")
    return s ~= "" and s or "."
  end

  --- rel relative to dir (rel unchanged when absolute); "./" in front of rel is dropped.
  function P.join(dir, rel)
    if P.is_abs(rel) then return rel end
    rel = rel:gsub("^%." .. SEP, "")
    if P.is_sep(dir:sub(-1)) then return dir .. rel end
    return dir .. "/" .. rel
  end

  --- The folder part: "a/b" -> "a", "b" -> ".", "/b" -> "/", "C:\b" -> "C:\".
  function P.dirname(p)
    local root, rest = P.root(p)
    local d = rest:match("^(.*)" .. SEP .. NOTSEP .. "*$")
    if d == nil then return root ~= "" and p:sub(1, #p - #rest) or "." end
    if d == "" then return p:sub(1, #p - #rest) end
    return p:sub(1, #p - #rest) .. d
  end

  --- The last part: "a/b.bin" -> "b.bin".
  function P.basename(p)
    local _, parts = P.split(p)
    return parts[#parts] or ""
  end

  --- Is `p` the folder `root` or inside it? Both normalized first; without case on Windows.
  function P.inside(p, root)
    p, root = P.normalize(p), P.normalize(root)
    if windows then p, root = p:lower(), root:lower() end
    if p == root then return true end
    if root:sub(-1) ~= "/" then root = root .. "/" end
    return p:sub(1, #root) == root
  end

  local function env(name)
    local v = sys.getenv(name)
    return v ~= "" and v or nil
  end

  -- $XDG_<var> or the default under HOME (Linux) / APPDATA (Windows), + "ncpflash"
  local function user_dir(xdg, home_sub, appdata_sub)
    local x = env(xdg)
    if x then return P.join(x, "ncpflash") end
    local base = windows and env("APPDATA") or not windows and env("HOME")
    return base and P.join(base, windows and appdata_sub or home_sub) or nil
  end

  --- The configuration folder (boards/, chips/, recipes/, lua/), or nil when neither the XDG
  --- variable nor HOME / APPDATA says where.
  function P.config_dir() return user_dir("XDG_CONFIG_HOME", ".config/ncpflash", "ncpflash") end

  --- The state folder (journal/, shell_history), or nil.
  function P.state_dir() return user_dir("XDG_STATE_HOME", ".local/state/ncpflash", "ncpflash/state") end

  return P
end

local M = rules(sys.platform == "windows")
M.rules = rules
return M
