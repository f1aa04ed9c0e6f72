-- ncpflash.efuse_burn: the eFuse on a connected chip (protocol.md §6.7, §6.8): read, the secure
-- channel (ECDH + challenge), the guard rails, the burn and its audit record. Plans, maps and
-- files are ncpflash.efuse (pure); this module is the only one that writes eFuse bits.
--
--   read(s, map [, channel])       the whole eFuse (0x41, or 0x81 decrypted)
--   secure_channel(s, root_key)    ECDH (0x90) + challenge (0x91) checked against the root key
--   secure_boot_guard(ctx, s, plan, map, board_efuse)
--   apply(ctx, s, job)             plan -> refuse conflicts -> guard rails -> dry run or confirm
--                                  -> ECDH + challenge -> region writes in burn order -> read back
--                                  + verify -> audit
--   audit(path, record)            one JSON line
local codec = require("ncpflash.core.codec")
local crypto = require("ncpflash.core.crypto")
local errors = require("ncpflash.errors")
local json = require("ncpflash.json")
local header = require("ncpflash.header")
local efuse = require("ncpflash.efuse")

local M = {}

local ZERO_IV = string.rep("\0", 16)
local touches, active_locks, lock_at, is_zero = efuse.touches, efuse.active_locks, efuse.lock_at, efuse.is_zero
local region_names = efuse.region_names

---------------------------------------------------------------------------------------------------
-- chip access

--- Read the whole eFuse (0x41 in map.read_chunk pieces; with `channel`, 0x81 decrypted). A read
--- reply carries no checksum: two reads must agree (up to four tries), so a garbled byte can
--- neither fake a burnt bit nor hide one.
function M.read(s, map, channel)
  local last
  for _ = 1, 4 do
    local d = M.read_once(s, map, channel)
    if d == last then return d end
    last = d
  end
  errors.raise("protocol", "eFuse read: four reads of the eFuse disagree (bytes garbled on the line)",
    { op = channel and "efuse_security_read" or "efuse_read" })
end

function M.read_once(s, map, channel)
  local out, pos = {}, 0
  local chunk = map.read_chunk or map.size
  while pos < map.size do
    local n = math.min(chunk, map.size - pos)
    local op = channel and "EFUSE_SECURITY_READ" or "EFUSE_READ"
    local d = s:cmd(op, string.pack("<I4I4", pos, n), { data = true, timeout = 5 })
    if #d ~= n then
      errors.raise("protocol", ("%s at %d: asked %d bytes, got %d"):format(op:lower(), pos, n, #d),
        { op = op:lower(), got = d })
    end
    if channel then d = crypto.aes128_cbc_decrypt(channel.key, ZERO_IV, d) end
    out[#out + 1] = d
    pos = pos + n
  end
  return table.concat(out)
end

--- ECDH (0x90) + challenge (0x91) with the challenge signature checked against root_key
--- ({xy =, path =}). Returns a channel {key = 16-byte AES key}. Raises "safety" when the
--- signature does not verify (nothing has been written at that point).
function M.secure_channel(s, root_key)
  local kp <close> = crypto.ecdh_keypair()
  local dev = s:cmd("ECDH_GET_PK", kp:public_xy(), { data = true, timeout = 5 })
  if #dev < 64 then
    errors.raise("protocol", ("ecdh_get_pk: device key of %d bytes, expected 64"):format(#dev),
      { op = "ecdh_get_pk", got = dev })
  end
  local ok, shared = pcall(kp.derive, kp, dev:sub(1, 64))
  if not ok then
    errors.raise("protocol", "ecdh_get_pk: the device's key is not a point on P-256", { op = "ecdh_get_pk" })
  end
  local key = shared:sub(1, 16)
  local ch = s:cmd("ECDH_CHALLENGE", "", { data = true, timeout = 5 })
  if #ch < 96 then
    errors.raise("protocol", ("ecdh_challenge: %d bytes, expected 96"):format(#ch), { op = "ecdh_challenge", got = ch })
  end
  local rnd = crypto.aes128_cbc_decrypt(key, ZERO_IV, ch:sub(1, 32))
  if not crypto.ecdsa_verify_p256(root_key.xy, rnd, ch:sub(33, 96)) then
    errors.raise("safety", ("the chip's challenge signature (0x91) does not verify against %s: not burning")
      :format(root_key.path or "the root key"),
      { hint = "this is not a genuine ROM, or the wrong --root-key was given" })
  end
  return { key = key }
end

---------------------------------------------------------------------------------------------------
-- audit

local function os_error(err, path)
  err = tostring(err)
  if path and err:sub(1, #path + 2) == path .. ": " then err = err:sub(#path + 3) end
  return err
end

--- Append one JSON line to `path`; raises "input" when the file cannot be opened, written or
--- closed (a full disk shows at the close).
function M.audit(path, record)
  local f, err = io.open(path, "ab")
  if not f then
    errors.raise("input", ("cannot append to the eFuse audit file %s: %s"):format(path, os_error(err, path)),
      { file = path })
  end
  local ok, werr = f:write(json.encode(record), "\n")
  local cok, cerr = f:close()
  if not ok or not cok then
    errors.raise("input", ("cannot append to the eFuse audit file %s: %s"):format(path, os_error(werr or cerr, path)),
      { file = path })
  end
end

---------------------------------------------------------------------------------------------------
-- guard rails

local function board_images(board_efuse)
  return board_efuse and board_efuse.boot_images or { { name = "boot2", address = 0x0 },
    { name = "FW", address = 0x10000 } }
end

--- Refuse (safety) when the plan enables secure boot over images that would not boot with the key
--- being burnt: every board boot image must be on flash, signed, carry a public key whose SHA-256
--- is the key hash the chip will hold, have a body whose on-chip SHA-256 is the header's hash, and
--- a signature over that hash (ECDSA-P256/SHA-256 over the image bytes, as Bouffalo's image tool
--- signs: bflb_mcu_tool img_create_sign_data) that verifies with that public key.
--- Returns true when the plan enables secure boot (the caller warns about the lock).
---
--- `view` (optional) is where the images are read: {read = fn(addr, n), sha256 = fn(addr, n),
--- where = text, untouched = text}; a read that returns nil means "not known before the flash"
--- and skips that image (planned_view, for `flash --efuse` before it flashes). Default: the chip.
function M.secure_boot_guard(ctx, s, p, map, board_efuse, view)
  view = view or { read = function(a, n) return s:read(a, n) end, sha256 = function(a, n) return s:sha256(a, n) end,
    where = "on chip", untouched = "nothing was written" }
  local sign_f, hash_f
  for _, f in ipairs(map.fields) do
    if f.security == "sign_cfg" then sign_f = f end
    if f.security == "pk_hash" then hash_f = f end
  end
  if not sign_f or not touches(sign_f, p.after) then return false end
  if not (touches(sign_f, p.to_set) or (hash_f and touches(hash_f, p.to_set))) then return false end
  local H = s.chip.header
  local want = hash_f and p.after:sub(hash_f.offset + 1, hash_f.offset + hash_f.len) or ""
  if is_zero(want) then
    errors.raise("safety", "refusing to enable secure boot (sign_cfg) without a public-key hash in key slots 0-1: "
      .. "the module could never boot again (" .. view.untouched .. ")")
  end
  local function refuse(msg, hint)
    errors.raise("safety", "refusing to enable secure boot: " .. msg .. " (" .. view.untouched .. ")", { hint = hint or
      "flash the release set signed with the key the eFuse data names first, e.g. `flash --config X.ini "
      .. "--efuse FILE`" })
  end
  local checked = {}
  for _, im in ipairs(board_images(board_efuse)) do
    -- header, public key + CRC, signature length + up to 256 signature bytes + CRC
    local head = view.read(im.address, H.size + 64 + 4 + 4 + 256 + 4)
    local where = ("%s @0x%X"):format(im.name, im.address)
    if not head then goto next_image end
    if not header.is_header(head) then
      refuse(("no boot image at %s (an unsigned or missing image would never boot again)"):format(where))
    end
    local h = header.parse(s.chip, head, { file = "flash@" .. ("0x%X"):format(im.address) })
    if h.header_crc_ok == false or h.flash_cfg_crc_ok == false or h.clock_cfg_crc_ok == false then
      refuse(("the boot header at %s has a bad CRC32"):format(where))
    end
    if not h.signed or not h.public_key_hash then refuse(("the image at %s is not signed"):format(where)) end
    if h.public_key_crc_ok == false then
      refuse(("the public-key block of the image at %s is damaged"):format(where))
    end
    if h.public_key_hash ~= want then
      refuse(("the image at %s is signed with key SHA-256 %s, but the eFuse data holds %s"):format(where,
        codec.hex(h.public_key_hash), codec.hex(want)))
    end
    if not h.image_len or h.image_len == 0 then refuse(("the image at %s has no image length"):format(where)) end
    local got = view.sha256(im.address + h.image_offset, h.image_len)
    if not got then goto next_image end
    if got ~= h.sha256 then
      refuse(("the image at %s does not match its header's SHA-256 (on chip %s, header %s): it would not boot")
        :format(where, codec.hex(got):sub(1, 16), codec.hex(h.sha256):sub(1, 16)))
    end
    local vok, valid = errors.catch(crypto.ecdsa_verify_p256_digest, h.public_key, h.sha256,
      h.signature and #h.signature == 64 and h.signature or string.rep("\0", 64))
    if not vok then refuse(("the public key in the image at %s is not a P-256 key"):format(where)) end
    if not h.signature or #h.signature ~= 64 or not valid then
      refuse(("the signature of the image at %s does not verify with its public key: it would not boot"):format(where))
    end
    checked[#checked + 1] = ("0x%X"):format(im.address)
    ::next_image::
  end
  if #checked > 0 then
    ctx.ev:info(("secure-boot check: the image%s at %s %s signed with the key the eFuse data names (SHA-256 %s); "
      .. "hash and signature verified %s"):format(#checked == 1 and "" or "s", table.concat(checked, ", "),
      #checked == 1 and "is" or "are", codec.hex(want), view.where))
  end
  return true
end

--- The flash as it will be after `plan` is flashed, for the secure-boot guard before flashing:
--- bytes inside one planned region come from its file, bytes no region touches from the chip
--- (unless `erase` is 2: blank); a range that straddles a region's edge is not known (nil).
function M.planned_view(s, plan, erase)
  local function locate(a, n)
    for _, r in ipairs(plan.regions) do
      local e = r.address + #r.data
      if a >= r.address and a + n <= e then return r end
      if a < e and a + n > r.address then return false end
    end
    return nil
  end
  local function bytes(a, n)
    local r = locate(a, n)
    if r then return r.data:sub(a - r.address + 1, a - r.address + n) end
    if r == false then return nil end
    if erase == 2 then return string.rep("\xFF", n) end
    return s:read(a, n)
  end
  return {
    read = bytes,
    sha256 = function(a, n)
      local r = locate(a, n)
      if r then return codec.sha256(r.data:sub(a - r.address + 1, a - r.address + n)) end
      if r == false then return nil end
      if erase == 2 then return codec.sha256(string.rep("\xFF", n)) end
      return s:sha256(a, n)
    end,
    where = "in the images about to be flashed", untouched = "nothing was flashed or burnt" }
end

---------------------------------------------------------------------------------------------------
-- after a failed write: read back, region status, the pending record for the next session

--- Read the eFuse after a failed write, giving a busy device (an unanswered command) a few
--- seconds; nil when the chip does not answer.
function M.read_back_after_failure(s, map)
  local deadline = require("ncpflash.core.sys").now() + 12
  repeat
    pcall(function() s.port:flush_input() end)
    local ok, back = errors.catch(M.read, s, map)
    if ok then return back end
    if back.code == "interrupted" or back.code == "port" then return nil end
    require("ncpflash.core.sys").sleep(0.3)
    -- the ROM may have given up on the session meanwhile (its timeout, 2 s during eFuse writes):
    -- a new handshake on the same port, as after a failed flash frame
    if s._rehandshake then pcall(s._rehandshake, s) end
  until require("ncpflash.core.sys").now() > deadline
  return nil
end

--- The state of every planned region: list of {region = "A..B", status =}. `status` maps a
--- region of p.regions to what the burn knows ("written", "sent, outcome unknown"; others were
--- not sent); `back` (the eFuse read after the failure, or nil) decides the regions that were
--- sent: "written (read back)", "partly written (read back)", "not written (read back)".
function M.region_status(p, status, back)
  local out = {}
  for _, r in ipairs(p.regions) do
    local st = status[r] or "not written"
    if back and status[r] then
      local want, got, all, none = 0, 0, true, true
      for i = r.start, r.start + r.len - 1 do
        local w = p.to_set:byte(i + 1)
        if w ~= 0 then
          want = want + 1
          local g = back:byte(i + 1) & w
          if g ~= w then all = false end
          if g ~= 0 then none = false; got = got + 1 end
        end
      end
      if want == 0 or all then st = st == "written" and "written" or "written (read back)"
      elseif none then st = "not written (read back)"
      else st = "partly written (read back)" end
    end
    out[#out + 1] = { region = ("%d..%d"):format(r.start, r.start + r.len - 1), status = st }
  end
  return setmetatable(out, json.array)
end

local function pending_dir()
  local d = require("ncpflash.journal").dir()
  return d and (require("ncpflash.util").dirname(d) .. "/efuse-pending") or nil
end

local function pending_path(chip_id)
  local d = pending_dir()
  return d and (d .. "/" .. tostring(chip_id) .. ".json") or nil
end

-- Can a file be created in folder `d`? nil, or the OS error.
local function cannot_create_in(d)
  local probe = d .. "/.ncpflash-probe-" .. require("ncpflash.core.sys").pid()
  local f, err = io.open(probe, "wb")
  if not f then return os_error(err, probe) end
  f:close()
  os.remove(probe)
  return nil
end

--- Before a confirmed burn touches anything: the audit file must open for append (when it does
--- not exist yet, its folder must take a new file; nothing is created) and the pending-record
--- folder must take a file; else "input", naming the path and the OS error. Sets
--- job.audit_path (absolute).
function M.check_records(job)
  local sys = require("ncpflash.core.sys")
  local util = require("ncpflash.util")
  local why = efuse.untouched(job)
  if job.audit then
    local err
    if sys.stat(job.audit) then
      local f, ferr = io.open(job.audit, "ab")
      if f then f:close() else err = os_error(ferr, job.audit) end
    else
      local d = util.dirname(job.audit)
      if d == "" then d = "." end
      local st = sys.stat(d)
      if not st then err = "No such file or directory"
      elseif st.type ~= "dir" then err = "Not a directory"
      else err = cannot_create_in(d) end
    end
    if err then
      errors.raise("input", ("cannot append to the eFuse audit file %s: %s; refusing to burn (%s)"):format(job.audit,
        err, why), { file = job.audit, hint = "give --audit a file in a folder you can write" })
    end
    local d, base = util.dirname(job.audit), job.audit:match("[^/\\]*$")
    job.audit_path = sys.realpath(job.audit) or ((sys.realpath(d == "" and "." or d) or d) .. "/" .. base)
  end
  local d = pending_dir()
  if not d then
    errors.raise("input", ("no folder for the eFuse pending record (the record of a burn in progress): set "
      .. "XDG_STATE_HOME or NCPFLASH_JOURNAL_DIR; refusing to burn (%s)"):format(why))
  end
  local ok, err = sys.mkdirs(d)
  if ok then err = cannot_create_in(d) end
  if not ok or err then
    errors.raise("input", ("cannot write the eFuse pending-record folder %s: %s; refusing to burn (%s)"):format(d,
      tostring(err), why), { file = d, hint = "the record of a burn in progress lives there, so that "
      .. "a burn killed at any moment is read back at the next connect" })
  end
end

--- Every check of a burn that needs no chip (ncpflash.efuse.precheck, then the audit file and
--- the pending-record folder): call it before connecting, or before flashing.
function M.precheck(job)
  efuse.precheck(job)
  if job.confirm then M.check_records(job) end
  return job
end

--- Write the pending record of a burn (atomically: a temporary file renamed over the old one),
--- so that a process killed at any moment leaves a complete record. `record.regions` is the
--- state of every planned region. Returns the path, or nil and an error.
function M.write_pending(s, job, record, p)
  local sys = require("ncpflash.core.sys")
  local path = pending_path(record.chip_id)
  if not path then return nil, "no pending-record folder" end
  local rec = { v = 1, time = record.time, command = record.command, chip_id = record.chip_id, mac = record.mac,
    file = record.file, file_sha256 = record.file_sha256,
    audit = job.audit_path or (job.audit and sys.realpath(job.audit)) or job.audit,
    before = record.before, to_set = codec.hex(p.to_set), regions = record.regions, result = record.result,
    chip = job.map and job.map.chip_name or (s.chip and s.chip.name), board = job.map and job.map.board_name }
  rec.spans = setmetatable({}, json.array)
  for _, r in ipairs(p.regions) do rec.spans[#rec.spans + 1] = { r.start, r.len } end
  local ok, err = sys.mkdirs(require("ncpflash.util").dirname(path))
  if not ok then return nil, err end
  local tmp = path .. ".tmp"
  local f, ferr = io.open(tmp, "wb")
  if not f then return nil, ferr end
  local wok, werr = f:write(json.encode(rec), "\n")
  local cok, cerr = f:close()
  if not wok or not cok then os.remove(tmp); return nil, werr or cerr end
  local rok, rerr = sys.replace(tmp, path)
  if not rok then os.remove(tmp); return nil, rerr end
  return path
end

--- Called after every connect: when an earlier burn on this chip ended with a write sent but
--- not answered, read the eFuse now, append the real after-state to that burn's audit file and
--- say what happened. Never raises (a failure is a warning).
function M.settle_pending(ctx, s)
  local chip_id = s.info and s.info.chip_id
  local path = chip_id and pending_path(chip_id)
  if not path or not require("ncpflash.core.sys").stat(path) then return end
  local ok, err = pcall(function()
    local f = assert(io.open(path, "rb"))
    local rec = json.decode(f:read("a"))
    f:close()
    local map = efuse.load_map(rec.chip or (s.chip and s.chip.name) or "bl616", rec.board)
    local back = M.read(s, map)
    local p = { to_set = codec.unhex(rec.to_set), regions = {} }
    local status = {}
    for i, sp in ipairs(rec.spans or {}) do
      local r = { start = sp[1], len = sp[2] }
      p.regions[i] = r
      local old = rec.regions and rec.regions[i] and rec.regions[i].status
      if old and old ~= "not written" then status[r] = old end
    end
    local regions = M.region_status(p, status, back)
    local detail = {}
    for _, rs in ipairs(regions) do detail[#detail + 1] = rs.region .. ": " .. rs.status end
    local out = { time = os.date("!%Y-%m-%dT%H:%M:%SZ"), command = rec.command, chip_id = rec.chip_id, mac = rec.mac,
      file = rec.file, file_sha256 = rec.file_sha256, result = rec.result == "ok"
        and "read back after a burn whose audit record could not be appended" or "read back after an interrupted burn",
      interrupted_burn = rec.time, before = rec.before, after = codec.hex(back), regions = regions }
    if rec.audit then M.audit(rec.audit, out) end
    os.remove(path)
    ctx.ev:warn(("the eFuse burn of %s on this chip (%s) %s: read back now: %s%s"):format(
      tostring(rec.file), tostring(rec.time), rec.result == "ok" and "had no audit record" or "was interrupted",
      table.concat(detail, "; "),
      rec.audit and ("; audit record appended to " .. rec.audit) or ""), { regions = regions })
  end)
  if not ok then
    ctx.ev:warn("could not read back the eFuse of an interrupted burn (" .. path .. "): "
      .. tostring(errors.is(err) and err.message or err))
  end
end

---------------------------------------------------------------------------------------------------
-- the job

local function refuse_conflicts(p, job)
  if #p.conflicts == 0 then return end
  local c = p.conflicts[1]
  errors.raise("safety", ("refusing to burn: %d conflict%s (first at 0x%03X, %s: %s); %s")
    :format(#p.conflicts, #p.conflicts == 1 and "" or "s", c.offset, c.field, c.reason, efuse.untouched(job)),
    { offset = c.offset, hint = "eFuse bits can only be set, never cleared" })
end

-- the lock-out fields of plan `p` that need --allow-lockout and were not named (map fields)
local function plan_lockouts(p, job)
  local need, out = efuse.lockouts_needing_flag(p, job.allow_lockout), {}
  for _, n in ipairs(need) do
    for _, f in ipairs(job.map.fields) do if f.name == n then out[#out + 1] = f; break end end
  end
  return out
end

-- secure boot enabled without a key hash in the eFuse after the burn: refused (needs no flash)
local function refuse_keyless_secure_boot(p, map, job)
  local sign_f, hash_f
  for _, f in ipairs(map.fields) do
    if f.security == "sign_cfg" then sign_f = f end
    if f.security == "pk_hash" then hash_f = f end
  end
  if not sign_f or not touches(sign_f, p.after) then return end
  if not (touches(sign_f, p.to_set) or (hash_f and touches(hash_f, p.to_set))) then return end
  if not hash_f or is_zero(p.after:sub(hash_f.offset + 1, hash_f.offset + hash_f.len)) then
    errors.raise("safety", "refusing to enable secure boot (sign_cfg) without a public-key hash in key slots 0-1: "
      .. "the module could never boot again (" .. efuse.untouched(job) .. ")")
  end
end

--- The eFuse step of `flash --efuse`, on the flashing session before any flash command: the
--- plan against the chip's current eFuse, refused now for what the flash cannot change
--- (conflicts, write/read locks, lock-out fields without --allow-lockout, secure boot without a
--- key hash; with `flash_plan`, the secure-boot guard over the images as they will be after the
--- flash: planned_view, with `erase` the flash's erase mode). The burn itself (apply) plans and
--- guards again after the flash, on the chip.
function M.preflight(ctx, s, job, flash_plan, erase)
  local current = M.read(s, job.map)
  local p = efuse.plan(current, job.wanted, job.mask, job.map)
  refuse_conflicts(p, job)
  if p.empty then
    ctx.ev:info(("eFuse step: the chip already holds every wanted bit (%d): nothing to burn after the flash")
      :format(p.bits_already))
    return p
  end
  local need = plan_lockouts(p, job)
  if #need > 0 and job.confirm then efuse.refuse_lockouts(need, job) end
  refuse_keyless_secure_boot(p, job.map, job)
  if flash_plan then
    M.secure_boot_guard(ctx, s, p, job.map, job.board_efuse, M.planned_view(s, flash_plan, erase))
  end
  ctx.ev:info(("eFuse step: checked against the chip's eFuse before flashing: %d bit%s to set, no conflict; "
    .. "burnt after the flash"):format(p.bits_to_set, p.bits_to_set == 1 and "" or "s"))
  return p
end

-- The read-back check of the written regions: bad (list of texts), verified (bits), unverified
-- (list of {range, bytes, bits, lock}: bytes with bits to set in a read-locked range (locked on
-- the chip or by this burn) that read back as zeros, so cannot be checked).
local function check_back(p, back, map, written_list)
  local rd = active_locks(back, map, "rd")
  for _, l in ipairs(active_locks(p.after, map, "rd")) do rd[#rd + 1] = l end
  local bad, verified, by_lock, unverified = {}, 0, {}, setmetatable({}, json.array)
  local function bits(b) local n = 0; while b ~= 0 do n = n + (b & 1); b = b >> 1 end return n end
  for _, r in ipairs(written_list) do
    for i = r.start, r.start + r.len - 1 do
      local w, got, ts = p.want:byte(i + 1), back:byte(i + 1), p.to_set:byte(i + 1)
      local lk = lock_at(rd, i)
      -- a read-locked byte reads as zero: burnt bits that read back are verified all the same (the
      -- lock may not be in effect yet), a zero is "cannot be read back", anything else is wrong
      if lk and got & w ~= w and got == 0 then
        if ts ~= 0 then
          local u = by_lock[lk]
          if not u then
            u = { first = i, last = i, bits = 0, lock = lk }
            by_lock[lk] = u
            unverified[#unverified + 1] = u
          end
          u.last, u.bits = i, u.bits + bits(ts)
        end
      elseif got & w ~= w then
        bad[#bad + 1] = ("0x%03X: expected bits 0x%02X, read 0x%02X"):format(i, w, got)
      else
        verified = verified + bits(ts)
      end
    end
  end
  for _, u in ipairs(unverified) do
    u.range = ("0x%03X..0x%03X"):format(u.first, u.last)
    u.bytes = u.last - u.first + 1
    u.first, u.last = nil, nil
  end
  return bad, verified, unverified
end

local function plural(n, word) return ("%d %s%s"):format(n, word, n == 1 and "" or "s") end

-- job fields: wanted (512 B), mask (512 B or nil), source ({path=, sha256=, format=} or label),
-- insecure (plain 0x40 path), root_key (path), confirm (--confirm-efuse-burn), audit (path),
-- command (label for the audit record), allow_lockout (set of field names: --allow-lockout).
-- Returns a result table; raises on refusal or failure.
--
-- The record of a burn in progress: before the first eFuse write a pending record (the chip,
-- the plan, every region's state: the one about to be sent is "sent, outcome unknown") is on
-- disk, and it is rewritten as each write is acknowledged; it is removed only once the burn's
-- audit record is appended. A process killed at any moment (SIGKILL, SIGHUP, a closed pipe)
-- leaves it, and the next connect to the chip settles it (settle_pending).
function M.apply(ctx, s, job)
  local ev = ctx.ev
  local map, board_efuse = job.map, job.board_efuse
  local current = M.read(s, map)
  local p = efuse.plan(current, job.wanted, job.mask, map)
  for _, l in ipairs(efuse.plan_text(p)) do ev:info(l) end
  local res = { command = job.command, bits_to_set = p.bits_to_set, bits_already = p.bits_already,
    conflicts = #p.conflicts, regions = {}, written = {}, dry_run = true, file_sha256 = job.source.sha256 }
  for _, r in ipairs(p.regions) do res.regions[#res.regions + 1] = ("%d..%d"):format(r.start, r.start + r.len - 1) end
  setmetatable(res.regions, json.array)
  setmetatable(res.written, json.array)
  refuse_conflicts(p, job)
  if p.empty then
    res.dry_run = false
    res.nothing_to_do = true
    ev:result(res)
    return res
  end
  -- lock-out fields that a burn may only set when the user names them (--allow-lockout NAME)
  local need = plan_lockouts(p, job)
  if #need > 0 then
    if job.confirm then efuse.refuse_lockouts(need, job) end
    local what, names = {}, {}
    for _, f in ipairs(need) do
      what[#what + 1] = ("%s (%s)"):format(f.name, f.description)
      names[#names + 1] = f.name
    end
    ev:warn(("this plan sets %s: a real burn needs --allow-lockout %s"):format(table.concat(what, ", "),
      table.concat(names, ",")))
  end
  local secure_boot = M.secure_boot_guard(ctx, s, p, map, board_efuse)
  if secure_boot then
    ev:warn("this burn enables SECURE BOOT: afterwards the module only boots images signed with the key whose "
      .. "SHA-256 is in key slots 0-1; this is irreversible" .. (board_efuse and board_efuse.lock_warning
        and (" (" .. board_efuse.lock_warning .. ")") or ""))
  end
  for _, d in ipairs(p.diff) do
    if d.name:match("jtag") then ev:warn("this burn disables JTAG for good") break end
  end
  local secure = map.secure_write and not job.insecure
  if not job.confirm then
    if ctx.opts.yes then
      errors.raise("safety", "--yes alone does not burn eFuses: add --confirm-efuse-burn (nothing was written)")
    end
    ev:info("dry run: nothing was written (add --confirm-efuse-burn to burn)")
    ev:result(res)
    return res
  end
  -- the chip-less checks (a recipe may call apply without them): root key, lock-out fields, the
  -- audit file and the pending-record folder
  M.precheck(job)
  local root_key
  if secure then
    root_key = efuse.load_root_key(job.root_key)
    if board_efuse and board_efuse.root_key_xy_sha256 and root_key.sha256 ~= board_efuse.root_key_xy_sha256 then
      ev:warn(("%s is not the vendor's root key (%s); accepted because you named it"):format(root_key.path,
        board_efuse.root_key_file or "expected fingerprint " .. board_efuse.root_key_xy_sha256))
    end
  end
  local chip_id = s:boot_info().chip_id
  local old_pending = pending_path(chip_id)
  if old_pending and require("ncpflash.core.sys").stat(old_pending) then
    errors.raise("safety", ("an earlier eFuse burn on this chip is not settled yet (%s could not be read back or "
      .. "audited, see the warning above): refusing to burn over its record (nothing was written)"):format(old_pending),
      { file = old_pending, hint = "fix what the warning names and connect again; or move the file away after "
        .. "reading it" })
  end
  local prompt = ("About to burn %d eFuse bit%s (regions %s) on chip %s. This cannot be undone."):format(
    p.bits_to_set, p.bits_to_set == 1 and "" or "s", table.concat(res.regions, ", "), chip_id)
  if not ctx:confirm(prompt, "BURN", true) then
    errors.raise("safety", "eFuse burn not confirmed (type BURN on a terminal, or add --yes with "
      .. "--confirm-efuse-burn); nothing was written")
  end
  res.dry_run = false
  res.path = secure and "secure" or "plain"
  local record = { time = os.date("!%Y-%m-%dT%H:%M:%SZ"), command = job.command, chip_id = chip_id,
    mac = s:mac(), file = job.source.path or job.source.label, file_sha256 = job.source.sha256,
    file_format = job.source.format, before = codec.hex(current), path = res.path, written = res.written,
    regions_planned = res.regions }
  local audit_error
  local function audit()
    if not job.audit then return true end
    local ok, err = pcall(M.audit, job.audit, record)
    if ok then return true end
    audit_error = errors.is(err) and err.message or tostring(err)
    ev:warn(("could not append the audit record to %s: %s"):format(job.audit, audit_error))
    return false
  end
  -- the pending record: every region's state as far as this process knows it
  local status = {}
  local pending_warned
  local function save_pending()
    record.regions = M.region_status(p, status, nil)
    local path, err = M.write_pending(s, job, record, p)
    if not path and not pending_warned then
      pending_warned = true
      ev:warn("could not update the eFuse pending record: " .. tostring(err))
    end
    return path, err
  end
  -- the ROM timeout as the vendor tool sets it, then the key exchange and the challenge check:
  -- a refusal here has written nothing
  local rt = s.chip and s.chip.rom_timeout
  if map.write_timeout and rt then s:set_rom_timeout(map.write_timeout) end
  local channel = secure and M.secure_channel(s, root_key) or nil
  -- on disk before the first write, or no write at all
  status[p.regions[1]] = "sent, outcome unknown"
  local pending, perr = save_pending()
  if not pending then
    errors.raise("input", ("cannot write the eFuse pending record: %s; refusing to burn (nothing was written)")
      :format(tostring(perr)))
  end
  status[p.regions[1]] = nil
  local written_list = {}
  local bad, verified_bits, unverified
  local ok, err = pcall(function()
    ev:stage("efuse-write", { regions = res.regions })
    for _, r in ipairs(p.regions) do
      local payload = r.data
      if channel then payload = crypto.aes128_cbc_encrypt(channel.key, ZERO_IV, payload) end
      status[r] = "sent, outcome unknown"
      save_pending()
      s:cmd(channel and "EFUSE_SECURITY_WRITE" or "EFUSE_WRITE", string.pack("<I4", r.start) .. payload,
        { timeout = 5 })
      status[r] = "written"
      save_pending()
      written_list[#written_list + 1] = r
      res.written[#res.written + 1] = ("%d..%d"):format(r.start, r.start + r.len - 1)
      ev:info(("  wrote eFuse %d..%d (%d bit%s to set)"):format(r.start, r.start + r.len - 1, r.bits,
        r.bits == 1 and "" or "s"))
    end
    ev:stage("efuse-verify")
    local back = M.read(s, map, channel)
    res.after = codec.hex(back)
    record.after = res.after
    bad, verified_bits, unverified = check_back(p, back, map, written_list)
    if rt then pcall(s.set_rom_timeout, s, rt.long) end
    if #bad > 0 then
      errors.raise("verify", ("eFuse read-back does not hold the written bits at %d byte%s (%s)"):format(#bad,
        #bad == 1 and "" or "s", table.concat(bad, "; ", 1, math.min(#bad, 4))),
        { written = region_names(written_list) })
    end
  end)
  if not ok then
    -- what each region holds: acknowledged writes, the one in flight (sent, outcome unknown until
    -- the chip is read back), the ones never sent; then the read-back decides where it can
    local lost = errors.is(err) and (err.code == "port" or err.code == "handshake")
    local back = not record.after and not lost and M.read_back_after_failure(s, map) or nil
    if back then record.after = codec.hex(back) end
    record.regions = M.region_status(p, status, back)
    local w, nw, unk = {}, {}, {}
    for _, rs in ipairs(record.regions) do
      if rs.status:match("^written") then w[#w + 1] = rs.region
      elseif rs.status:match("^not written") then nw[#nw + 1] = rs.region
      else unk[#unk + 1] = rs.region end
    end
    local function names(list) return #list > 0 and table.concat(list, ", ") or "none" end
    record.result = "failed"
    record.error = errors.is(err) and err.message or tostring(err)
    record.not_written = names(nw)
    record.unknown = #unk > 0 and names(unk) or nil
    local audited = audit()
    -- the pending record stays while the outcome is unknown (read back at the next connect) or
    -- while the audit has no record of this burn
    if #unk > 0 or not audited then
      local path = M.write_pending(s, job, record, p)
      if path then
        ev:info("the burn's outcome is " .. (#unk > 0 and "unknown" or "not audited") .. ": recorded in " .. path
          .. "; the next connect to this chip reads the eFuse back")
      end
    else
      os.remove(pending)
    end
    if errors.is(err) then
      local detail = {}
      for _, rs in ipairs(record.regions) do detail[#detail + 1] = rs.region .. ": " .. rs.status end
      local summary = ("eFuse regions written: %s; not written: %s%s (%s)"):format(names(w), names(nw),
        #unk > 0 and ("; outcome unknown: " .. names(unk)) or "", table.concat(detail, "; "))
      if err.code ~= "verify" then err.message = ("%s - %s"):format(err.message, summary) end
      if #unk > 0 then
        err.message = err.message .. (" - read back at the next connect to this chip%s"):format(job.audit
          and (", and recorded in " .. job.audit) or "")
      end
      -- the link was lost with eFuse writes sent: the device's failure (exit 4), not "no contact"
      if lost and (#written_list > 0 or next(status)) then err.code = "device" end
      err.written = names(w)
      err.not_written = names(nw)
      err.unknown = #unk > 0 and names(unk) or nil
      ev:warn("eFuse burn failed: " .. summary, { written = err.written, not_written = err.not_written,
        unknown = err.unknown })
    end
    error(err, 0)
  end
  record.result = "ok"
  record.verified_bits = verified_bits
  record.unverified = #unverified > 0 and unverified or nil
  record.regions = M.region_status(p, status, nil)
  local audited = audit()
  if audited then
    os.remove(pending)
  else
    M.write_pending(s, job, record, p)
  end
  res.audit = audited and job.audit or nil
  res.audit_error = audit_error
  res.verified = #unverified == 0
  res.verified_bits = verified_bits
  res.unverified = #unverified > 0 and unverified or nil
  local check
  if #unverified == 0 then
    check = "read back and verified"
  else
    local parts = {}
    for _, u in ipairs(unverified) do
      parts[#parts + 1] = ("%s in %s %s read-locked (%s)"):format(plural(u.bits, "bit"), plural(u.bytes, "byte"),
        u.range, u.lock)
    end
    check = ("read back: verified %s; %s, cannot be read back: burnt but unverified"):format(
      plural(verified_bits, "bit"), table.concat(parts, "; "))
  end
  local audit_text = ""
  if audited and job.audit then
    audit_text = "; audit record appended to " .. job.audit
  elseif job.audit then
    audit_text = ("; audit record NOT appended to %s (%s): kept in %s, appended at the next connect to this chip")
      :format(job.audit, audit_error, pending)
  end
  res.summary = { ("burnt %s in %s; %s%s"):format(plural(p.bits_to_set, "bit"), region_names(written_list), check,
    audit_text) }
  ev:result(res)
  return res
end

return M
