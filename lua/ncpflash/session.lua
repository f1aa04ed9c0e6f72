-- ncpflash.session: one conversation with a chip's boot ROM (protocol.md §2, §5.1).
--
--   local s <close> = require("ncpflash.session").connect(ctx, opts)
--
-- connect: open the port at the handshake speed, probe for a live ROM session (bare
-- get_boot_info), else reset (board data) + sync burst until the adjacent "OK" pair; decode the
-- boot info; raise the ROM timeout; switch to the load speed; read the MAC (CRC checked); set the
-- flash parameters and read the JEDEC id. Every command goes through isp.command.
--
-- Getting the ROM to answer (reset strategies, sync, classification, the ladder) is
-- ncpflash.handshake; the chip is picked from the boot info by ncpflash.detect; boot info and
-- flash configuration bytes are ncpflash.romcodec. This file is the command path and the flash
-- operations.
local sys = require("ncpflash.core.sys")
local isp = require("ncpflash.core.isp")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local reset = require("ncpflash.reset")
local handshake = require("ncpflash.handshake")
local romcodec = require("ncpflash.romcodec")
local detect = require("ncpflash.detect")

local M = {}

local Session = {}
Session.__index = Session
Session.__close = function(self) self:close() end
Session.__gc = Session.__close
M.Session = Session

local function op(name)
  local code = isp.op[name]
  if not code then error("isp.op." .. name .. " is not defined") end
  return code
end

local function hexs(s, max) return util.hex_prefix(s, max or 24) end

---------------------------------------------------------------------------------------------------
-- commands

-- A "protocol" error whose reply starts with our own command byte `code`: our frame came back,
-- TX is looped to RX (a "handshake" error of kind "echo"). Returns the reply bytes otherwise.
local function raise_if_echo(err, code, name, hint)
  local got = type(err.got) == "string" and err.got or ""
  if err.code == "protocol" and #got >= 2 and got:byte(1) == code then
    errors.raise("handshake", string.format("%s: the reply starts with our own command bytes (%s): TX is looped "
      .. "back to RX", name, hexs(got, 8)), { kind = "echo", got = got, hint = hint })
  end
  return got
end

-- The one command path: name = isp.op key, opts as isp.command (+ keepalive bookkeeping).
function Session:cmd(name, payload, opts)
  opts = opts or {}
  if opts.checksum == nil then opts.checksum = true end
  if not opts.no_keepalive then self:_keepalive() end
  local code = op(name)
  local ok, res = errors.catch(isp.command, self.port, code, payload or "", opts)
  self.last_io = sys.now()
  if not ok then
    local got = raise_if_echo(res, code, isp.op_name[code] or name,
      "an adapter loopback or a module that is not driving its TX line echoes everything")
    -- silence: the ROM may have dropped back to handshake mode, or it is still in its session
    -- (a lost frame). A sync burst inside the session would be parsed as frames, so first wait
    -- out the ROM timeout this session set, then re-sync at this speed, once
    if res.code == "timeout" and got == "" and self.ready and not opts.no_resync
      and name ~= "FLASH_DECOMPRESS_WRITE" then
      self.ev:debug(string.format("%s: no reply; wait out the %.1f s ROM timeout, re-handshake at %d baud and retry",
        name, self:_rom_timeout(), self.port:baud()))
      self:_await_rom_timeout()
      if pcall(self._rehandshake, self) then
        opts.no_resync = true
        return self:cmd(name, payload, opts)
      end
    end
  end
  if not ok then error(res, 0) end
  return res
end

-- The ROM timeout in force (what 0x23 set; the ROM's own 2 s before that), or nil for ROMs
-- without one.
function Session:_rom_timeout()
  local rt = self.chip.rom_timeout
  if not rt then return nil end
  return self.rom_timeout or rt.short or 2
end

-- Sleep until the ROM timeout has certainly passed since the last traffic: only then is the ROM
-- waiting for a handshake (issue 14: recovery waits out the timeout it set before re-syncing).
function Session:_await_rom_timeout()
  local t = self:_rom_timeout()
  if not t then return end
  local left = (self.last_io or 0) + t + 0.25 - sys.now()
  if left > 0 then sys.sleep(left) end
end

-- The ROM drops back to handshake mode after its timeout without traffic. Quiet for less than
-- the timeout (minus a margin): the session stands, send. Near or past it: wait until it has
-- surely passed, then re-handshake at the current speed (never a burst into a live session).
function Session:_keepalive()
  if not self.ready or not self.last_io then return end
  local t = self:_rom_timeout()
  if not t then return end
  local idle = sys.now() - self.last_io
  if idle >= t - 0.3 then
    self.ev:debug(string.format("idle %.1f s, ROM timeout %.1f s: wait it out, re-handshake at %d baud", idle,
      t, self.port:baud()))
    self:_await_rom_timeout()
    self:_rehandshake()
  end
end

function Session:_rehandshake()
  self.ready = false
  local baud = self.port:baud()
  local ok_pair = handshake.sync_once(self, baud)
  if not ok_pair then
    errors.raise("handshake", string.format("the ROM session timed out and the chip did not answer a new sync "
      .. "at %d baud", baud), { baud = baud })
  end
  self.rehandshakes = (self.rehandshakes or 0) + 1
  self:set_rom_timeout(self.chip.rom_timeout and self.chip.rom_timeout.long)
  if self.flash_prepared then
    self.flash_prepared = false
    self:_prepare_flash()
    if self.block_sent then self:flash_config() end   -- XIP reads in flight use it
  end
  self.ready = true
end

function Session:set_rom_timeout(seconds)
  local rt = self.chip.rom_timeout
  if not rt then return end
  local ms = math.floor(seconds * 1000 + 0.5)
  local mw = rt.mem_write
  if mw and self.info and mw.rom_versions[self.info.rom_version] then
    self:cmd("MEMORY_WRITE", string.pack("<I4I4", mw.addr, (ms << 16 | mw.low) & 0xFFFFFFFF),
      { checksum = false, no_keepalive = true })
  else
    self:cmd("SET_TIMEOUT", string.pack("<I4", ms), { checksum = false, no_keepalive = true })
  end
  self.rom_timeout = seconds
end

---------------------------------------------------------------------------------------------------
-- connect

-- opts: port (url), baud (handshake), load_baud, retries, probe (default true), reset (false =
-- none, a --reset string, or a list of strategies; default: --reset / --no-reset / the board's),
-- baud_ladder (true = the chip's sync.baud_ladder, or a list of lower bauds), on_attempt
-- (function(attempt) called after each handshake attempt), on_port (function(port) after the
-- open), app (false: do not listen for an application again), sync (overrides chip.sync fields),
-- board, chip (tables).
-- The reset strategies are validated before the port opens.
function M.connect(ctx, opts)
  opts = opts or {}
  local board = opts.board or ctx:board()
  local chip = opts.chip or ctx:chip()
  local cop = ctx.opts or {}
  if board.sync or opts.sync then   -- a tuned board (probe --tune) may shorten the sync burst
    local sync = {}
    for k, v in pairs(chip.sync) do sync[k] = v end
    for k, v in pairs(board.sync or {}) do sync[k] = v end
    for k, v in pairs(opts.sync or {}) do sync[k] = v end
    chip = setmetatable({ sync = sync }, { __index = chip })
  end
  local s = setmetatable({ ctx = ctx, ev = ctx.ev, board = board, chip = chip, stats = {} }, Session)
  if opts.app == false then s.app = false end   -- the caller listened already: no application
  local hs_baud = opts.baud or cop.baud or chip.baud.handshake
  local load_baud = opts.load_baud or cop.load_baud or chip.baud.load
  local rsel = opts.reset
  if rsel == nil or rsel == true then
    if cop.no_reset then rsel = false else rsel = cop.reset end
  end
  s.strategies = reset.ladder({ reset = rsel }, board)
  opts.retries = opts.retries or cop.retries
  if opts.retries ~= nil and (math.type(opts.retries) ~= "integer" or opts.retries < 1 or opts.retries > 100) then
    errors.raise("usage", "--retries: give 1..100 handshake attempts per reset strategy")
  end
  s.url = opts.port or cop.port
  local t0 = sys.now()
  s.ev:stage("connect", { port = s.url, baud = hs_baud })
  s.port = ctx:open_port({ url = s.url, baud = hs_baud })
  if opts.on_port then opts.on_port(s.port) end
  local ok, err = pcall(M._connect, s, hs_baud, load_baud, opts)
  if not ok then
    s:close()
    error(err, 0)
  end
  s.stats.connect = sys.now() - t0
  return s
end

function M._connect(s, hs_baud, load_baud, opts)
  local chip = s.chip
  local info
  -- 1. probe: maybe the ROM is already listening (a previous run, or a manual reset)
  if opts.probe ~= false then
    local ok, res = errors.catch(isp.command, s.port, op("GET_BOOT_INFO"), "",
      { data = true, checksum = false, timeout = chip.probe_timeout })
    if ok then info = res; s.probed = true
    elseif res.code == "interrupted" or res.code == "port" then error(res, 0) end
  end
  -- 2. the ladder: reset strategies with retries (and lower bauds when asked)
  if not info then
    s.handshake = handshake.ladder(s, hs_baud, opts)
    if chip.boot_info_wait then sys.sleep(chip.boot_info_wait) end
    info = s:cmd("GET_BOOT_INFO", "", { data = true, checksum = false, no_keepalive = true })
  end
  -- chip detection from the boot info, post-sync writes, RAM loader upload (chip data)
  chip, load_baud = detect.apply(s, info, load_baud, opts)
  -- 3. ROM timeout, baud switch
  s:set_rom_timeout(chip.rom_timeout and chip.rom_timeout.long)
  hs_baud = s.port:baud()                      -- the ladder may have lowered it
  if load_baud ~= hs_baud and load_baud ~= s.port:baud() then
    local t0 = sys.now()
    s:cmd("CLK_SET", string.pack("<I4I4", 1, load_baud), { no_keepalive = true })   -- ack at the old rate
    s.stats.clk_set = sys.now() - t0
    s.port:drain(0.5)
    s.port:set_baud(load_baud)
    s.port:flush_input()
    sys.sleep(chip.baud_switch_guard or 0.01)
  end
  s.baud = s.port:baud()
  s.ready = true
  -- 4. MAC (CRC32 checked)
  local t_mac = sys.now()
  local ok, mac = pcall(s.cmd, s, "EFUSE_READ_MAC", "", { data = true })
  s.stats.first_command = sys.now() - t_mac
  if not ok then
    if errors.is(mac) and (mac.code == "timeout" or mac.code == "protocol") and s.baud ~= hs_baud then
      mac.message = mac.message .. string.format(" - first command after switching to %d baud; the adapter may "
        .. "not support that rate (try --load-baud %d)", s.baud, hs_baud)
      mac.hint = "USB-UART bridges such as the CP2102 stop at 1 Mbaud"
    end
    error(mac, 0)
  end
  local n = chip.mac_len or 6
  if #mac < n + 4 then
    errors.raise("protocol", string.format("efuse_read_mac: reply of %d bytes, expected %d", #mac, n + 4),
      { op = "efuse_read_mac", got = mac })
  end
  local m, crc = mac:sub(1, n), string.unpack("<I4", mac, n + 1)
  if codec.crc32(m) ~= crc then
    errors.raise("protocol", string.format("efuse_read_mac: CRC32 mismatch (MAC %s, CRC 0x%08X, computed 0x%08X)",
      hexs(m), crc, codec.crc32(m)), { op = "efuse_read_mac", got = mac })
  end
  s.mac_bytes = m
  -- 5. flash parameters + JEDEC (the 84-byte block goes before each region, as the vendor's)
  s:_prepare_flash()
  s:_choose_flash_config(opts.flash_config or (s.ctx.opts or {}).flash_config)
  s.ev:info(string.format("connected: %s ROM 0x%08X, chip id %s, %s, flash %s%s %s at %d baud",
    s.info.rom_name or "chip", s.info.rom_version, s.info.chip_id,
    s.info.secure_boot and "secure boot ON" or "secure boot off", s.jedec_hex,
    s.flash_part and (" " .. s.flash_part.name) or "",
    s.flash_size and string.format("%d MiB", s.flash_size // (1024 * 1024)) or "(size unknown)", s.baud),
    { rom_version = s.info.rom_version, chip_id = s.info.chip_id, mac = s:mac(), jedec = s.jedec_hex,
      flash_part = s.flash_part and s.flash_part.name, flash_config = s.flash_config_source,
      flash_size = s.flash_size, baud = s.baud, probed = s.probed or false })
  -- 6. larger frames only after a harmless probe, here: before anything is erased
  local want = opts.frame_size
  if want == nil then want = (s.ctx.opts or {}).frame_size end
  if want then s:probe_frames(want) end
end

function Session:_flash_set_bytes()
  local fs = self.chip.flash_set
  local pin = fs.pin
  if pin & 0x80 ~= 0 and self.info.flash_pin then pin = self.info.flash_pin end
  return string.pack("BBBB", pin, fs.clk, fs.io, fs.delay)
end

function Session:_prepare_flash()
  local c = self.chip
  self:cmd("FLASH_SET_PARA", self:_flash_set_bytes())
  local j = self:cmd("FLASH_READ_JEDEC_ID", "", { data = true })
  if #j < 4 then
    errors.raise("protocol", "flash_read_jedec_id: short reply " .. hexs(j), { op = "flash_read_jedec_id", got = j })
  end
  local mfg, typ, cap, flag = j:byte(1, 4)
  self.jedec_id = { mfg = mfg, type = typ, capacity = cap, flag = flag }
  self.jedec_hex = string.format("%02X%02X%02X", mfg, typ, cap)
  self.flash_size = romcodec.jedec_size(cap) or (self.board and self.board.flash_size)
  local identified = flag == (c.jedec_identified_flag or 0x80)
  if c.jedec_flag_required and not identified then
    errors.raise("device", string.format("flash %s not identified by the loader (flag 0x%02X)", self.jedec_hex, flag),
      { op = "flash_read_jedec_id" })
  end
  self.flash_identified = identified
  self.flash_prepared = true
end

-- Which 84-byte flash configuration 0x3B carries (issue 14): `want` = "auto" (default: the
-- flash table's entry for the JEDEC id, as the vendor's flasher does; the chip's flash_cfg -
-- ST's flash_para.bin on the BL616 - for ids the table does not know), "table", "chip", or a
-- file of 84 bytes. Nothing when the flash was identified by a loader (JEDEC flag 0x80).
function Session:_choose_flash_config(want)
  local c = self.chip
  want = want or "auto"
  self.flash_part = c.flash_table and romcodec.flash_part(self.jedec_hex, c.flash_table) or nil
  local chip_block = c.flash_cfg and romcodec.flash_cfg_bytes(c) or nil
  local block, source
  if want == "auto" or want == "table" then
    if self.flash_part then
      block = self.flash_part.block
      source = string.format("%s entry of %s", self.flash_part.name, self.flash_part.source)
    elseif want == "table" then
      errors.raise("usage", string.format("--flash-config table: flash %s is not in %s", self.jedec_hex,
        c.flash_table or "a flash table (this chip has none)"), { hint = "use --flash-config auto, chip or a file" })
    else
      block, source = chip_block, chip_block and ("the chip's default (" .. c.name .. ".lua flash_cfg)")
    end
  elseif want == "chip" then
    block, source = chip_block, chip_block and ("the chip's default (" .. c.name .. ".lua flash_cfg)")
  else
    local f, err = io.open(want, "rb")
    if not f then errors.raise("input", "--flash-config: " .. tostring(err)) end
    block = f:read("a")
    f:close()
    if #block ~= romcodec.FLASH_CFG_SIZE then
      errors.raise("input", string.format("--flash-config %s: %d bytes, expected %d (an SPI_Flash_Cfg block such as "
        .. "flash_para.bin)", want, #block, romcodec.FLASH_CFG_SIZE))
    end
    source = want
  end
  if self.flash_identified then block, source = nil, "identified by the loader (none sent)" end
  self.flash_block, self.flash_config_source = block, source
end

-- 0x3B with flash_set and the 84-byte block: before each region, as the vendor's flasher does.
function Session:flash_config()
  if not self.flash_block then return end
  self:cmd("FLASH_SET_PARA", self:_flash_set_bytes() .. self.flash_block)
  self.block_sent = true
end

-- 0x3B with flash_set only: before an erase-only job, as the vendor's flasher does.
function Session:flash_set()
  self:cmd("FLASH_SET_PARA", self:_flash_set_bytes())
end

-- Frame sizes (issue 14): the chip's (the vendor's 2048) unless `size` is larger and a harmless
-- probe shows the ROM takes it: a 0x31 of `size` 0xFF bytes (programming 0xFF changes no NOR
-- bit) and a 0x32 read of `size` at the end of the flash, both before anything is erased. FL or
-- silence: the chip's size stays (after silence the ROM timeout is waited out and the session
-- re-synced). The result is reported and kept in self.frame_probe.
function Session:probe_frames(size)
  local c = self.chip
  if math.type(size) ~= "integer" or size < 256 or size > 4096 then
    errors.raise("usage", "--frame-size: give 256..4096 data bytes per frame")
  end
  local base_tx, base_rd = c.tx_chunk or 2048, c.read_chunk or 2048
  if size <= base_tx and size <= base_rd then
    self.tx_chunk, self.read_chunk = size, math.min(size, base_rd)
    return
  end
  local rt = c.rom_timeout
  if rt then self:set_rom_timeout(rt.short) end   -- a silent refusal then costs 2 s, not 10
  local addr = (self.flash_size or 0x400000) - size
  local res = { size = size }
  local function try(what, name, payload, opts)
    local t0 = sys.now()
    opts.no_resync = true
    local ok, err = errors.catch(self.cmd, self, name, payload, opts)
    res[what .. "_seconds"] = sys.now() - t0
    if ok then res[what] = "accepted"; return true end
    if err.code == "device" then
      res[what] = string.format("FL 0x%04X", err.fl or 0)
    elseif err.code == "timeout" or err.code == "protocol" then
      res[what] = err.code == "timeout" and "no reply" or "bad reply"
      self:_await_rom_timeout()
      self:_rehandshake()
    else
      error(err, 0)
    end
    return false
  end
  if size > base_tx and try("write", "FLASH_WRITE", string.pack("<I4", addr) .. string.rep("\255", size),
      { timeout = 2 }) then
    self.tx_chunk = size
  end
  if size > base_rd and try("read", "FLASH_READ", string.pack("<I4I4", addr, size), { data = true, timeout = 2 }) then
    self.read_chunk = size
  end
  if rt then self:set_rom_timeout(rt.long) end
  res.tx_chunk, res.read_chunk = self.tx_chunk or base_tx, self.read_chunk or base_rd
  self.frame_probe = res
  self.ev:info(string.format("frames: %d data bytes per write (%d-byte probe %s), %d per read (probe %s)",
    res.tx_chunk, size, res.write or "not needed", res.read_chunk, res.read or "not needed"), { frame_probe = res })
end

---------------------------------------------------------------------------------------------------
-- public methods

function Session:boot_info() return self.info end

-- The MAC as people write it.  eFuse stores it least significant byte
-- first (the tools write slots reversed, like the chip id), and 0x42
-- returns the stored order; chips set `mac_reversed = false` otherwise.
function Session:mac()
  local m = self.mac_bytes or ""
  if self.chip.mac_reversed ~= false then m = m:reverse() end
  return (codec.hex(m):gsub("(%x%x)", "%1:"):gsub(":$", ""))
end

function Session:jedec() return self.jedec_hex, self.flash_size, self.jedec_id end

local function u32(v, what)
  if math.type(v) ~= "integer" or v < 0 or v > 0xFFFFFFFF then
    error(what .. " must be an integer 0..0xFFFFFFFF", 3)
  end
  return v
end

-- The erase units a 0x30 start..end (inclusive) becomes on the chip, by the loop of Bouffalo's
-- SDK (bflb_sflash_erase): a 64 KiB block where the address is 64K-aligned and more than
-- 64K - sector remain, else a 32 KiB block by the same rule, else one sector. {n64, n32, n4}.
function M.erase_units(start, last, sector)
  sector = sector or 4096
  local n = { n64 = 0, n32 = 0, n4 = 0 }
  local a = start
  while a <= last do
    local rest = last - a + 1
    if a % 65536 == 0 and rest > 65536 - sector then n.n64 = n.n64 + 1; a = a + 65536
    elseif a % 32768 == 0 and rest > 32768 - sector then n.n32 = n.n32 + 1; a = a + 32768
    else n.n4 = n.n4 + 1; a = a + sector end
  end
  return n
end

-- The flash part's maximum erase times (ms): its table entry, never below the chip's floors
-- (the GT25Q entries list 12/12/12/24, which cannot be milliseconds for these parts).
function Session:erase_times()
  local f = self.chip.erase_floor_ms or { sector = 400, blk32 = 1600, blk64 = 2000, chip = 50000 }
  local v = self.flash_part and self.flash_part.values or {}
  local chip = math.max(v.chip_erase_time or 0, f.chip)
  if not self.flash_part and self.flash_size then chip = chip * math.max(1, self.flash_size / 0x400000) end
  return { sector = math.max(v.sector_erase_time or 0, f.sector), blk32 = math.max(v.blk32k_erase_time or 0, f.blk32),
    blk64 = math.max(v.blk64k_erase_time or 0, f.blk64), chip = chip }
end

-- Deadline (s) for erasing [addr, addr+len), or the whole chip (len nil).
function Session:erase_deadline(addr, len)
  local m, t = self.chip.erase_margin or 1.5, self:erase_times()
  if not len then return 2 + m * t.chip / 1000 end
  local n = M.erase_units(addr, addr + len - 1, self.chip.sector_size)
  return 2 + m * (n.n64 * t.blk64 + n.n32 * t.blk32 + n.n4 * t.sector) / 1000
end

-- An erase that outlived its deadline: say what the deadline was made of, and that the chip may
-- still be erasing (what the range holds is unknown).
local function erase_timeout(self, err, what, how)
  if not (errors.is(err) and err.code == "timeout") then error(err, 0) end
  err.message = string.format("%s: %s; the deadline is %.1f x the maximum erase times of the %s + 2 s (%s). The "
    .. "chip may still be erasing: what the range holds now is unknown", what, err.message, self.chip.erase_margin
    or 1.5, self.flash_part and self.flash_part.name or "flash part", how)
  error(err, 0)
end

function Session:erase(addr, len)
  u32(addr, "address"); u32(len, "length")
  if len == 0 then return end
  -- from the start of its sector: the chip erases that whole sector anyway, and the SDK's loop
  -- steps from an unaligned start by whole sectors, which can leave the sector holding the
  -- range's last byte unerased (docs/conformance.md, "Not in the recordings")
  local sector = self.chip.sector_size or 4096
  local lead = addr % sector
  addr, len = addr - lead, len + lead
  local t0 = sys.now()
  local ok, err = pcall(self.cmd, self, "FLASH_ERASE", string.pack("<I4I4", addr, addr + len - 1),
    { timeout = self:erase_deadline(addr, len), pending = true, pending_extend = self.chip.erase_pd_extend })
  if not ok then
    local n, t = M.erase_units(addr, addr + len - 1, self.chip.sector_size), self:erase_times()
    erase_timeout(self, err, string.format("erase 0x%X..0x%X", addr, addr + len - 1), string.format(
      "%d x 64 KiB at %d ms, %d x 32 KiB at %d ms, %d x 4 KiB at %d ms", n.n64, t.blk64, n.n32, t.blk32, n.n4,
      t.sector))
  end
  self.stats.erase = (self.stats.erase or 0) + (sys.now() - t0)
end

function Session:erase_all()
  local t0 = sys.now()
  local ok, err = pcall(self.cmd, self, "FLASH_CHIP_ERASE", "", { timeout = self:erase_deadline(), pending = true,
    pending_extend = self.chip.erase_pd_extend })
  if not ok then
    erase_timeout(self, err, "chip erase", string.format("chip erase at %d ms", self:erase_times().chip))
  end
  self.stats.erase = (self.stats.erase or 0) + (sys.now() - t0)
end

-- Decide whether compressing `data` pays: compress a sample with a throwaway encoder.
function Session:_compression_pays(data)
  local c = self.chip
  if not c.decompress_write or #data <= (c.compress_min or 4096) then return false end
  if not codec.xz_encoder then return false end
  local sample = data:sub(1, 65536)
  local e = codec.xz_encoder({ dict = c.xz.dict, check = c.xz.check, preset = 0 })
  local out = e:feed(sample) .. e:finish()
  return #out < #sample * 0.95
end

-- Write `data` at `addr`. opts: progress(done, total, acked), compress (nil = auto, true, false),
-- on_compress(bool) (told whether XZ is used, before the first frame).
-- Progress counts what the device acknowledged: `done` bytes of `data` (with XZ an upper bound:
-- the acknowledged stream can decode to no more than the input it was made from), `acked`
-- payload bytes (compressed bytes with XZ).
-- Returns {sent = bytes of payload sent, written = #data, compressed = bool, frames = n}.
function Session:write(addr, data, opts)
  u32(addr, "address")
  opts = opts or {}
  local c = self.chip
  local chunk = self.tx_chunk or c.tx_chunk or 2048
  local total = #data
  local progress = opts.progress or function() end
  local wrate = c.write_rate or 20000
  local compress = opts.compress
  if compress == nil then compress = self:_compression_pays(data) end
  if opts.on_compress then opts.on_compress(compress) end   -- before the first frame
  local st = { sent = 0, acked = 0, written = total, compressed = compress, frames = 0 }
  local t0 = sys.now()
  -- Frames go out through isp.send/isp.reply with at most `window` unacknowledged. window 1
  -- (default) is stop-and-wait on the wire: the next frame is only prepared (compressed) while the
  -- device works on the previous one. window > 1 sends before the previous ack, which needs a ROM
  -- that buffers the next frame or acks before programming (protocol.md §4.2: unconfirmed for
  -- the BL616 ROM), so it is only used when the chip data or opts ask for it.
  local window = math.max(1, opts.window or c.write_window or 1)
  local inflight = {}
  local function reap()
    local f = table.remove(inflight, 1)
    local ok, err = pcall(isp.reply, self.port, f.code, { timeout = f.timeout })
    self.last_io = sys.now()
    if ok then
      st.acked = f.sent_after
      progress(f.done, total, st.acked)
      return
    end
    -- the replies of later frames still in flight are drained and dropped: the error is this frame's
    for _, g in ipairs(inflight) do pcall(isp.reply, self.port, g.code, { timeout = 0.2 }) end
    inflight = {}
    pcall(self.port.flush_input, self.port)
    if errors.is(err) then
      raise_if_echo(err, f.code, isp.op_name[f.code])
      err.frame, err.frame_offset = f.index, f.offset
      err.message = string.format("%s (frame %d, data offset %d)", err.message, f.index, f.offset)
    end
    error(err, 0)
  end
  -- done: the bytes of `data` this frame completes once acknowledged
  local function post(name, payload, timeout, offset, done)
    if #inflight >= window then reap() end
    if #inflight == 0 then self:_keepalive() end
    local code = op(name)
    isp.send(self.port, code, payload)
    st.frames = st.frames + 1
    inflight[#inflight + 1] = { code = code, timeout = timeout, index = st.frames, offset = offset, done = done,
      sent_after = st.sent + #payload - 4 }
  end
  if not compress then
    local pos = 1
    while pos <= total do
      local piece = data:sub(pos, pos + chunk - 1)
      local payload = string.pack("<I4", addr + pos - 1) .. piece
      if window > 1 then post("FLASH_WRITE", payload, 2 + #piece / wrate, pos - 1, pos - 1 + #piece)
      else
        self:cmd("FLASH_WRITE", payload, { timeout = 2 + #piece / wrate })
        st.frames = st.frames + 1
        st.acked = st.sent + #piece
        progress(pos - 1 + #piece, total, st.acked)
      end
      st.sent = st.sent + #piece
      pos = pos + #piece
    end
    while #inflight > 0 do reap() end
  else
    local enc = codec.xz_encoder({ dict = c.xz.dict, check = c.xz.check, preset = c.xz.preset })
    local buf, fed, first = {}, 0, true
    local buflen = 0
    local step = 16 * 1024
    local function send(piece)
      local a = first and ((addr | 0x80000000) & 0xFFFFFFFF) or (addr + st.sent)
      -- the ROM may program far more than the frame carries (highly compressible data)
      local ratio = fed / math.max(st.sent + #piece, 1)
      local t = math.min(60, 2 + #piece * ratio / wrate)
      post("FLASH_DECOMPRESS_WRITE", string.pack("<I4", a) .. piece, t, st.sent, math.min(fed, total))
      first = false
      st.sent = st.sent + #piece
    end
    local function pump(final)
      local s = table.concat(buf)
      local pos = 1
      while #s - pos + 1 >= chunk or (final and pos <= #s) do
        local piece = s:sub(pos, pos + chunk - 1)
        send(piece)
        pos = pos + #piece
      end
      buf = { s:sub(pos) }
      buflen = #buf[1]
    end
    local pos = 1
    while pos <= total do
      local piece = data:sub(pos, pos + step - 1)
      pos = pos + #piece
      fed = pos - 1
      local out = enc:feed(piece)
      if #out > 0 then buf[#buf + 1] = out; buflen = buflen + #out end
      if buflen >= chunk then pump(false) end
    end
    buf[#buf + 1] = enc:finish()
    pump(true)
    while #inflight > 0 do reap() end
    progress(total, total, st.acked)
  end
  st.seconds = sys.now() - t0
  self.stats.write = (self.stats.write or 0) + st.seconds
  self.stats.sent = (self.stats.sent or 0) + st.sent
  self.stats.written = (self.stats.written or 0) + st.written
  return st
end

function Session:write_check()
  self:cmd("FLASH_WRITE_CHECK", "", { timeout = 2 })
end

-- On-chip SHA-256 (XIP) of [addr, addr+len): 32-byte string.
function Session:sha256(addr, len)
  u32(addr, "address"); u32(len, "length")   -- before XIP_READ_START: a bad range sends nothing
  return self:xip_sha(function(sha) return sha(addr, len) end)
end

-- Run fn(sha) inside one XIP session (0x60 ... 0x61), where sha(addr, len) is one 0x3E -> 32-byte
-- digest; returns what fn returns (blank and unchanged checks).
function Session:xip_sha(fn)
  if self.flash_block and not self.block_sent then self:flash_config() end   -- XIP reads through it
  local t0 = sys.now()
  local function sha(addr, len)
    u32(addr, "address"); u32(len, "length")
    local t = 2 * (len // (2 * 1024 * 1024) + 1) + len / (self.chip.sha_rate or 2097152)
    local d = self:cmd("FLASH_XIP_READ_SHA", string.pack("<I4I4", addr, len), { data = true, timeout = t })
    if #d < 32 then
      errors.raise("protocol", "flash_xip_read_sha: short reply " .. hexs(d), { op = "flash_xip_read_sha", got = d })
    end
    return d:sub(1, 32)
  end
  self:cmd("XIP_READ_START", "")
  local ok, res = pcall(fn, sha)
  local ok2, err2 = pcall(self.cmd, self, "XIP_READ_FINISH", "")
  if not ok then error(res, 0) end
  if not ok2 then error(err2, 0) end
  self.stats.verify = (self.stats.verify or 0) + (sys.now() - t0)
  return res
end

-- On-chip SHA-256 of several ranges ({addr=, len=} each) in one XIP session: list of digests.
function Session:sha256_many(ranges)
  return self:xip_sha(function(sha)
    local out = {}
    for i, r in ipairs(ranges) do out[i] = sha(r.addr, r.len) end
    return out
  end)
end

-- The on-chip SHA-256 of each range {addr=, len=, want=} for a verify, in one XIP session: list
-- of digests. A 0x3E reply carries no checksum, so a digest that differs from `want` is asked
-- again: one that then matches was a garbled reply (nothing on the line can forge the right
-- digest); a mismatch counts when two replies agree on it; four replies that never agree are a
-- protocol error (the line, not the flash).
function Session:verify_sha(ranges)
  return self:xip_sha(function(sha)
    local out = {}
    for i, r in ipairs(ranges) do
      local seen, got = {}, sha(r.addr, r.len)
      local tries = 1
      while got ~= r.want and not seen[got] do
        if tries == 4 then
          errors.raise("protocol", string.format("flash_xip_read_sha of 0x%X+%d: %d replies, no two agree (bytes "
            .. "garbled on the line)", r.addr, r.len, tries), { op = "flash_xip_read_sha", address = r.addr })
        end
        seen[got] = true
        got = sha(r.addr, r.len)
        tries = tries + 1
      end
      out[i] = got
    end
    return out
  end)
end

-- Read [addr, addr+len) from flash. opts.progress(done, total).
function Session:read(addr, len, opts)
  u32(addr, "address"); u32(len, "length")
  local progress = opts and opts.progress or function() end
  local chunk = self.read_chunk or self.chip.read_chunk or 2048
  local out, done = {}, 0
  local bps = self.port:baud() / 10
  while done < len do
    local n = math.min(chunk, len - done)
    local d = self:cmd("FLASH_READ", string.pack("<I4I4", addr + done, n), { data = true, timeout = 2 + 2 * n / bps })
    if #d ~= n then
      errors.raise("protocol", string.format("flash_read at 0x%X: asked %d bytes, got %d", addr + done, n, #d),
        { op = "flash_read", got = d })
    end
    out[#out + 1] = d
    done = done + n
    progress(done, len)
  end
  return table.concat(out)
end

-- Leave the ROM: board "run" sequence when the lines work, else the reset command.
function Session:reset()
  if self.lines_ok ~= false and handshake.run_sequence(self, "run") then return true end
  self:cmd("RESET", "")
  return true
end

function Session:close()
  for _, d in pairs(self.drivers or {}) do pcall(d.close, d) end
  self.drivers = nil
  if self.port then
    local p = self.port
    self.port = nil
    self.ready = false
    pcall(p.close, p)
  end
end

return M
