-- ncpflash.loader: start a RAM eflash_loader through the boot ROM (protocol.md §4.1, §5.2, §5.3)
-- on chips whose ROM cannot program the flash itself (chip.load_function == 1: BL602, BL702).
--
-- The loader image is the user's file (--loader FILE, env NCPFLASH_LOADER, or the board's
-- `loader` field); ncpflash ships no vendor binaries. The image is a RAM boot image: a boot
-- header of chip.header.size bytes, then for each of its segments a 16-byte segment header
-- (dest, len, data CRC32, header CRC32) and the data. Sequence: 0x11 header, [0x17 segment
-- header, 0x18 data chunks]..., 0x19 check, then chip.loader.run_sequence (0x1A, or BL702's
-- memory writes), re-handshake at the load speed, get_boot_info from the loader.
local sys = require("ncpflash.core.sys")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local handshake = require("ncpflash.handshake")

local M = {}

local function bad(...) util.bad_field("RAM loader image", ...) end

-- Split a RAM image into {header=, segments={{header=, data=, dest=, len=}}}; checks what the
-- ROM checks (magic, header CRC, segment-header CRCs, lengths), so a bad file fails before the
-- first byte is sent.
function M.parse(chip, data, file)
  file = file or "loader"
  local H = chip.header or {}
  local hs = H.size
  if not hs then
    errors.raise("usage", string.format("chip %s has no boot-header layout (`header` in its chip file)",
      tostring(chip.name)))
  end
  if #data < hs + 16 then bad(file, 0, "length", ">= " .. (hs + 16) .. " bytes", #data .. " bytes") end
  if data:sub(1, 4) ~= "BFNP" then bad(file, 0, "magic", "'BFNP'", string.format("%q", data:sub(1, 4))) end
  local hdr = data:sub(1, hs)
  local crc_off = H.crc or (hs - 4)
  local crc = string.unpack("<I4", hdr, crc_off + 1)
  local bootcfg = H.bootcfg and string.unpack("<I4", hdr, H.bootcfg + 1) or 0
  local crc_ignore = (bootcfg >> 16) & 1 == 1 and crc == 0xDEADBEEF
  if not crc_ignore and crc ~= codec.crc32(hdr:sub(1, crc_off)) then
    bad(file, crc_off, "header CRC32", string.format("0x%08X", codec.crc32(hdr:sub(1, crc_off))),
      string.format("0x%08X", crc))
  end
  if bootcfg & 0x3 ~= 0 or (bootcfg >> 2) & 0x3 ~= 0 then
    bad(file, H.bootcfg, "boot cfg", "an unsigned, unencrypted loader", string.format("0x%08X", bootcfg))
  end
  local count = string.unpack("<I4", hdr, (H.image_len or (hs - 56)) + 1)
  if count == 0 or count > 64 then bad(file, H.image_len, "segment count", "1..64", count) end
  local segs, pos = {}, hs + 1
  for i = 1, count do
    if #data < pos + 15 then bad(file, pos - 1, "segment " .. i .. " header", "16 bytes", "end of file") end
    local sh = data:sub(pos, pos + 15)
    local dest, len, dcrc, hcrc = string.unpack("<I4I4I4I4", sh)
    if hcrc ~= codec.crc32(sh:sub(1, 12)) then
      bad(file, pos - 1, "segment " .. i .. " header CRC32", string.format("0x%08X", codec.crc32(sh:sub(1, 12))),
        string.format("0x%08X", hcrc))
    end
    local d = data:sub(pos + 16, pos + 15 + len)
    if #d ~= len then bad(file, pos + 15, "segment " .. i .. " data", len .. " bytes", #d .. " bytes") end
    if dcrc ~= codec.crc32(d) then
      bad(file, pos + 15, "segment " .. i .. " data CRC32", string.format("0x%08X", codec.crc32(d)),
        string.format("0x%08X", dcrc))
    end
    segs[i] = { header = sh, data = d, dest = dest, len = len }
    pos = pos + 16 + len
  end
  return { header = hdr, segments = segs, size = #data }
end

-- Where the loader file comes from: opts.loader, --loader / NCPFLASH_LOADER, the board.
function M.path(s, opts)
  local cop = s.ctx and s.ctx.opts or {}
  return opts.loader or cop.loader or sys.getenv("NCPFLASH_LOADER") or (s.board and s.board.loader)
end

-- Upload and start the loader on session `s` (after the ROM's get_boot_info); then the session
-- talks to the loader at `load_baud`. Returns the loader's raw boot info.
function M.start(s, load_baud, opts)
  local chip, L = s.chip, s.chip.loader or {}
  if s.info and L.running_rom_version and s.info.rom_version == L.running_rom_version then
    s.ev:info("an eflash_loader is already running: no upload")
    s.loader_running = true
    return nil
  end
  local path = M.path(s, opts or {})
  if not path or path == "" then
    errors.raise("usage", string.format("the %s ROM cannot program flash itself: it needs a RAM eflash_loader "
      .. "image, which ncpflash does not ship. Give it with --loader FILE (or NCPFLASH_LOADER, or `loader = "
      .. "\"PATH\"` in a board file)", chip.description or chip.name),
      { hint = L.hint })
  end
  local data = util.readfile(path, "loader image", 16 * 1024 * 1024)
  local img = M.parse(chip, data, path)
  local t0 = sys.now()
  s.ev:stage("loader", { file = path, size = #data })
  s:cmd("LOAD_BOOT_HEADER", img.header, { checksum = false, no_keepalive = true, no_resync = true })
  local total, done = 0, 0
  for _, sg in ipairs(img.segments) do total = total + sg.len end
  local chunk = L.chunk or 4080
  for _, sg in ipairs(img.segments) do
    local rep = s:cmd("LOAD_SEG_HEADER", sg.header, { data = true, checksum = false, no_keepalive = true,
      no_resync = true })
    local want = #rep >= 8 and string.unpack("<I4", rep, 5) or sg.len   -- the ROM's view of the length
    local pos = 1
    while pos <= want do
      local piece = sg.data:sub(pos, math.min(pos + chunk - 1, want))
      s:cmd("LOAD_SEG_DATA", piece, { checksum = false, no_keepalive = true, no_resync = true })
      pos = pos + #piece
      done = done + #piece
      s.ev:progress(done, total, { name = "loader" })
    end
  end
  s:cmd("CHECK_IMAGE", "", { checksum = false, no_keepalive = true, no_resync = true })
  for _, step in ipairs(L.run_sequence or { { cmd = "RUN_IMAGE" } }) do
    local payload = step.addr and string.pack("<I4I4", step.addr, step.value) or ""
    if step.no_reply then
      s.port:write(require("ncpflash.core.isp").frame(require("ncpflash.core.isp").op[step.cmd], payload, false))
      s.port:drain(0.5)
    else
      s:cmd(step.cmd, payload, { checksum = false, no_keepalive = true, no_resync = true })
    end
  end
  -- the loader starts from scratch: it measures the baud from a new sync burst
  sys.sleep(L.settle or 0.2)
  if s.port:baud() ~= load_baud then s.port:set_baud(load_baud) end
  s.port:flush_input()
  local ok
  for _ = 1, (chip.sync.retries or 3) do
    ok = handshake.sync_once(s, load_baud)
    if ok then break end
    sys.sleep(0.1)
  end
  if not ok then
    errors.raise("handshake", string.format("the eflash_loader (%s) did not answer a sync at %d baud after it "
      .. "was started", path, load_baud), { kind = "nothing", baud = load_baud,
      hint = "is it the loader for this chip and crystal? try a lower --load-baud" })
  end
  s.loader_running = true
  s.stats.loader = sys.now() - t0
  local bi = s:cmd("GET_BOOT_INFO", "", { data = true, checksum = false, no_keepalive = true, no_resync = true })
  s.ev:info(string.format("eflash_loader %s started (%d bytes, %d segment%s, %.2f s); talking to it at %d baud",
    path, #data, #img.segments, #img.segments == 1 and "" or "s", sys.now() - t0, load_baud))
  return bi
end

return M
