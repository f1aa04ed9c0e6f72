-- ncpflash.detect: which chip file describes the ROM that answered (protocol.md §6.1, §9).
--
-- Every chip file (ncpflash.chip: built in, in $XDG_CONFIG_HOME/ncpflash/chips/, or under --lua-path) that
-- lists the boot info's ROM version in `rom_versions` and accepts its length in
-- `boot_info.lengths` is a candidate. Nothing here knows a chip by name: a new chip file is
-- all it takes to teach detection a new ROM.
local sys = require("ncpflash.core.sys")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local chips = require("ncpflash.chip")
local romcodec = require("ncpflash.romcodec")

local M = {}

-- Candidates for a raw get_boot_info payload: list of chip tables (best first: an exact
-- length match from a chip that lists the version).
function M.candidates(raw)
  if #raw < 4 then return {} end
  local ver = string.unpack("<I4", raw, 1)
  local out = {}
  for _, c in ipairs(chips.all()) do
    local L = c.boot_info
    local running = c.loader and c.loader.running_rom_version == ver    -- its eflash_loader answers
    if (c.rom_versions[ver] or running) and (not L.lengths or L.lengths[#raw]) then out[#out + 1] = c end
  end
  return out
end

-- The message for a ROM no chip file knows: the boot info, and how to write a chip file.
function M.unknown_message(raw, current)
  local ver = #raw >= 4 and string.unpack("<I4", raw, 1) or 0
  return string.format("unknown boot ROM: version 0x%08X, %d bytes of boot info: %s. No chip file lists it. "
    .. "Pass --chip NAME if you know the chip (built in: %s), or describe it in a chip file: copy a built-in "
    .. "one (`%s`) to %s, add "
    .. "[0x%08X] to its rom_versions and adjust boot_info (length %d, field offsets) - see docs/new-module.md",
    ver, #raw, codec.hex(raw), table.concat(chips.names(), ", "), current or "bl616", chips.user_dir(), ver, #raw)
end

-- Decide the chip for `raw`. current = the chip in use (board's or --chip); forced = --chip was
-- given (no detection: the user knows better). Returns the chip table to use and whether it
-- differs from `current`. Raises `usage` (exit 2) for a ROM no chip file knows.
function M.resolve(raw, current, forced)
  if forced then return current, false end
  local cands = M.candidates(raw)
  for _, c in ipairs(cands) do
    if c.name == current.name then return current, false end
  end
  if #cands == 0 then
    errors.raise("usage", M.unknown_message(raw, current.name), { boot_info = codec.hex(raw),
      hint = "ncpflash --chip NAME ... overrides the detection" })
  end
  return cands[1], true
end

-- The session hook (session.lua, right after the ROM's get_boot_info): pick the chip, decode the
-- boot info with its layout, send its post-sync writes, start its RAM loader. Returns the chip
-- and the load baud (the detected chip's, unless opts/--load-baud chose one).
function M.apply(s, raw, load_baud, opts)
  opts = opts or {}
  local ctx = s.ctx or {}
  local cop = ctx.opts or {}
  local current = s.chip
  local L = current.loader
  local running = L and L.running_rom_version and #raw >= 4 and string.unpack("<I4", raw, 1) == L.running_rom_version
  local forced = opts.chip ~= nil or cop.chip ~= nil or running
  local lens = current.boot_info and current.boot_info.lengths
  if forced and not running and lens and not lens[#raw] then
    -- --chip names a chip whose boot info this ROM does not send: say so, and what it looks like
    local sizes = {}
    for n in pairs(lens) do sizes[#sizes + 1] = n end
    table.sort(sizes)
    local cands = M.candidates(raw)
    local like = cands[1] and (" it looks like a " .. cands[1].name) or " no chip file knows this ROM"
    errors.raise("usage", string.format("--chip %s: the chip sent a %d-byte boot info, a %s sends %s (ROM version "
      .. "0x%08X):%s", tostring(current.name), #raw, tostring(current.name), table.concat(sizes, " or "),
      #raw >= 4 and string.unpack("<I4", raw, 1) or 0, like), { boot_info = codec.hex(raw),
      hint = cands[1] and ("drop --chip (the chip is detected from the boot info) or give --chip " .. cands[1].name)
        or "drop --chip, or describe the chip in a chip file (docs/new-module.md)" })
  end
  local chip, changed = M.resolve(raw, current, forced)
  if changed then
    local board = s.board or {}
    local explicit = opts.board ~= nil or cop.board ~= nil or ctx.default_board ~= nil
    if explicit and board.chip and not board.detect and board.chip ~= chip.name then
      errors.raise("safety", string.format("board %s has a %s, but the ROM that answered is a %s (boot info %s); "
        .. "use the right --board, or --chip %s to override the detection", board.name or "?", board.chip,
        chip.description or chip.name, codec.hex(raw), board.chip), { boot_info = codec.hex(raw) })
    end
    if not explicit or board.detect then
      local ok, g = pcall(require, "ncpflash.boards.generic")
      if ok and type(g) == "table" then
        g.name = g.name or "generic"
        s.board = g
        if ctx._board ~= nil then ctx._board = g end
      end
    end
    s.ev:info(string.format("detected %s from the boot ROM (version 0x%08X)", chip.description or chip.name,
      string.unpack("<I4", raw, 1)), { chip = chip.name })
    s.chip = chip
    ctx._chip = chip
    -- the load speed is the detected chip's unless the caller chose one
    if not (opts.load_baud or cop.load_baud) then load_baud = chip.baud.load end
  end
  s.info = romcodec.decode_boot_info(chip, raw)
  s.info.chip = chip.name
  s.rom_timeout = s.rom_timeout or chip.session_timeout or math.huge
  for _, w in ipairs(chip.post_sync_writes or {}) do
    if w.delay then sys.sleep(w.delay) end
    s:cmd("MEMORY_WRITE", string.pack("<I4I4", w.addr, w.value), { checksum = false, no_keepalive = true })
  end
  if chip.load_function == 1 then
    local bi = require("ncpflash.loader").start(s, load_baud, opts)
    if bi then s.loader_boot_info = bi end
  end
  return chip, load_baud
end

return M
