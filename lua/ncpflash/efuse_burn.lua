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

--- Read the whole eFuse (0x41 in map.read_chunk pieces; with `channel`, 0x81 decrypted).
function M.read(s, map, channel)
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

--- Append one JSON line to `path`.
function M.audit(path, record)
  local f, err = io.open(path, "ab")
  if not f then errors.raise("input", "cannot write the eFuse audit file: " .. tostring(err), { file = path }) end
  f:write(json.encode(record), "\n")
  f:close()
end

---------------------------------------------------------------------------------------------------
-- guard rails

local function board_images(board_efuse)
  return board_efuse and board_efuse.boot_images or { { name = "boot2", address = 0x0 },
    { name = "FW", address = 0x10000 } }
end

--- Refuse (safety) when the plan enables secure boot while the images on flash are unsigned or
--- signed with a key whose SHA-256 differs from the key hash the chip will hold.
--- Returns true when the plan enables secure boot (the caller warns about the lock).
function M.secure_boot_guard(ctx, s, p, map, board_efuse)
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
      .. "the module could never boot again")
  end
  for _, im in ipairs(board_images(board_efuse)) do
    local head = s:read(im.address, H.size + 72)
    local where = ("%s @0x%X"):format(im.name, im.address)
    if not header.is_header(head) then
      errors.raise("safety", ("refusing to enable secure boot: no boot image at %s (flash the signed images "
        .. "first; an unsigned or missing image would never boot again)"):format(where),
        { hint = "flash the release set first, or use `flash --config X.ini --efuse FILE`" })
    end
    local h = header.parse(s.chip, head, { file = "flash@" .. ("0x%X"):format(im.address) })
    if not h.signed or not h.public_key_hash then
      errors.raise("safety", ("refusing to enable secure boot: the image at %s is not signed"):format(where))
    end
    if h.public_key_hash ~= want then
      errors.raise("safety", ("refusing to enable secure boot: the image at %s is signed with key SHA-256 %s, "
        .. "but the eFuse data holds %s"):format(where, codec.hex(h.public_key_hash), codec.hex(want)))
    end
  end
  local where = {}
  for _, im in ipairs(board_images(board_efuse)) do where[#where + 1] = ("0x%X"):format(im.address) end
  ctx.ev:info(("secure-boot check: the images at %s are signed with the key the eFuse data names (SHA-256 %s)")
    :format(table.concat(where, ", "), codec.hex(want)))
  return true
end

---------------------------------------------------------------------------------------------------
-- the job

-- job fields: wanted (512 B), mask (512 B or nil), source ({path=, sha256=, format=} or label),
-- insecure (plain 0x40 path), root_key (path), confirm (--confirm-efuse-burn), audit (path),
-- command (label for the audit record).
-- Returns a result table; raises on refusal or failure.
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
  if #p.conflicts > 0 then
    local c = p.conflicts[1]
    errors.raise("safety", ("refusing to burn: %d conflict%s (first at 0x%03X, %s: %s); nothing was written")
      :format(#p.conflicts, #p.conflicts == 1 and "" or "s", c.offset, c.field, c.reason),
      { offset = c.offset, hint = "eFuse bits can only be set, never cleared" })
  end
  if p.empty then
    res.dry_run = false
    res.nothing_to_do = true
    ev:result(res)
    return res
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
  local root_key
  if secure then
    efuse.precheck(job)
    root_key = efuse.load_root_key(job.root_key)
    if board_efuse and board_efuse.root_key_xy_sha256 and root_key.sha256 ~= board_efuse.root_key_xy_sha256 then
      ev:warn(("%s is not the vendor's root key (%s); accepted because you named it"):format(root_key.path,
        board_efuse.root_key_file or "expected fingerprint " .. board_efuse.root_key_xy_sha256))
    end
  end
  local prompt = ("About to burn %d eFuse bit%s (regions %s) on chip %s. This cannot be undone."):format(
    p.bits_to_set, p.bits_to_set == 1 and "" or "s", table.concat(res.regions, ", "), s:boot_info().chip_id)
  if not ctx:confirm(prompt, "BURN", true) then
    errors.raise("safety", "eFuse burn not confirmed (type BURN on a terminal, or add --yes with "
      .. "--confirm-efuse-burn); nothing was written")
  end
  res.dry_run = false
  res.path = secure and "secure" or "plain"
  local record = { time = os.date("!%Y-%m-%dT%H:%M:%SZ"), command = job.command, chip_id = s:boot_info().chip_id,
    mac = s:mac(), file = job.source.path or job.source.label, file_sha256 = job.source.sha256,
    file_format = job.source.format, before = codec.hex(current), path = res.path, written = res.written,
    regions_planned = res.regions }
  local function audit()
    if job.audit then
      local ok, err = pcall(M.audit, job.audit, record)
      if not ok then ev:warn("could not append the audit record: " .. tostring(err)) end
    end
  end
  -- the ROM timeout as the vendor tool sets it, then the key exchange and the challenge check:
  -- a refusal here has written nothing
  local rt = s.chip and s.chip.rom_timeout
  if map.write_timeout and rt then s:set_rom_timeout(map.write_timeout) end
  local channel = secure and M.secure_channel(s, root_key) or nil
  local written_list = {}
  local ok, err = pcall(function()
    ev:stage("efuse-write", { regions = res.regions })
    for _, r in ipairs(p.regions) do
      local payload = r.data
      if channel then payload = crypto.aes128_cbc_encrypt(channel.key, ZERO_IV, payload) end
      s:cmd(channel and "EFUSE_SECURITY_WRITE" or "EFUSE_WRITE", string.pack("<I4", r.start) .. payload,
        { timeout = 5 })
      written_list[#written_list + 1] = r
      res.written[#res.written + 1] = ("%d..%d"):format(r.start, r.start + r.len - 1)
      ev:info(("  wrote eFuse %d..%d (%d bit%s to set)"):format(r.start, r.start + r.len - 1, r.bits,
        r.bits == 1 and "" or "s"))
    end
    ev:stage("efuse-verify")
    local back = M.read(s, map, channel)
    res.after = codec.hex(back)
    record.after = res.after
    local rd_after = active_locks(back, map, "rd")
    local rd_planned = active_locks(p.after, map, "rd")
    for _, l in ipairs(rd_planned) do rd_after[#rd_after + 1] = l end
    local bad = {}
    for _, r in ipairs(written_list) do
      for i = r.start, r.start + r.len - 1 do
        local w, got = p.want:byte(i + 1), back:byte(i + 1)
        if got & w ~= w and not lock_at(rd_after, i) then
          bad[#bad + 1] = ("0x%03X: expected bits 0x%02X, read 0x%02X"):format(i, w, got)
        end
      end
    end
    if rt then pcall(s.set_rom_timeout, s, rt.long) end
    if #bad > 0 then
      errors.raise("verify", ("eFuse read-back does not hold the written bits at %d byte%s (%s)"):format(#bad,
        #bad == 1 and "" or "s", table.concat(bad, "; ", 1, math.min(#bad, 4))),
        { written = region_names(written_list) })
    end
  end)
  if not ok then
    local not_written = {}
    for _, r in ipairs(p.regions) do
      local done = false
      for _, w in ipairs(written_list) do if w == r then done = true end end
      if not done then not_written[#not_written + 1] = r end
    end
    record.result = "failed"
    record.error = errors.is(err) and err.message or tostring(err)
    record.not_written = region_names(not_written)
    if not record.after and not (errors.is(err) and (err.code == "interrupted" or err.code == "port")) then
      local rok, back = pcall(M.read, s, map)
      if rok then record.after = codec.hex(back) end
    end
    audit()
    if errors.is(err) then
      if err.code ~= "verify" then
        err.message = ("%s - eFuse regions written: %s; not written: %s"):format(err.message,
          region_names(written_list), region_names(not_written))
      end
      err.written = region_names(written_list)
      err.not_written = region_names(not_written)
      ev:warn(("eFuse burn failed: regions written: %s; not written: %s"):format(region_names(written_list),
        region_names(not_written)), { written = err.written, not_written = err.not_written })
    end
    error(err, 0)
  end
  record.result = "ok"
  audit()
  res.audit = job.audit
  res.verified = true
  res.summary = { ("burnt %d bit%s in %s; read back and verified%s"):format(p.bits_to_set,
    p.bits_to_set == 1 and "" or "s", region_names(written_list), job.audit and ("; audit record appended to "
    .. job.audit) or "") }
  ev:result(res)
  return res
end

return M
