-- efuse: read, decode and burn the chip's eFuse (safely), program a customer MAC.
local efuse = require("ncpflash.efuse")
local burn = require("ncpflash.efuse_burn")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local codec = require("ncpflash.core.codec")
local chipinfo = require("ncpflash.chipinfo")

local function show(ctx, bytes, map, a, extra, board_efuse)
  local list = efuse.decode(bytes, map)
  local lines = efuse.format_decode(list, { all = a.all })
  local res = extra or {}
  res.fields = list
  res.raw = codec.hex(bytes)
  -- the vendor's chip information view (ST's NCP_get_chip_info fields), under chip_info
  local ci = chipinfo.report(bytes, board_efuse, res)
  if #ci > 0 then lines[#lines + 1] = "" end
  for _, l in ipairs(ci) do lines[#lines + 1] = l end
  res.summary = lines
  ctx.ev:result(res)
end

local function usage_sub(what)
  errors.raise("usage", "efuse: " .. what, { hint = "see 'ncpflash help efuse'" })
end

return {
  help = "eFuse: read | decode FILE | burn FILE | mac set XX:XX:XX:XX:XX:XX",
  description = [[
efuse read [--raw FILE] [--all]      read the 512-byte eFuse and decode it (--json for fields)
efuse decode FILE [--all]            decode an eFuse file offline (raw, or ST's 4608-byte format)
efuse burn FILE [--mask FILE] [--confirm-efuse-burn] [--root-key PEM] [--audit FILE]
efuse mac set XX:XX:XX:XX:XX:XX      program the next free customer MAC slot (0x64, then 0x70)

read and decode end with the board's chip information when it has one (ST67W611M1: the fields
of ST's NCP_get_chip_info, with ST's values; --json: chip_info, keyed by ST's field names).

Burning is a dry run unless --confirm-efuse-burn is given; then type BURN at the prompt, or add
--yes for automation (--yes alone never burns). The plan is refused (exit 6, nothing written)
when the file wants a bit cleared that the chip has set, or bits in a write-locked range, or
when it enables secure boot over a boot image that would not boot with the key being burnt
(unsigned, another key, a body not matching its hash, a signature that does not verify).
BL616 burns over the secure path (ECDH 0x90, challenge 0x91 verified with --root-key, AES
0x80 writes); --insecure-write uses the plain 0x40 command. Regions go 256..511, 128..255,
0..127 (lock word last); the result is read back and verified, and one JSON line is appended to
the audit file (default ./ncpflash-efuse-audit.jsonl). The plan names every field that locks
the module out for good (LOCK-OUT lines); a burn that disables UART download or enables flash
encryption also needs --allow-lockout with those field names. A write sent but not answered is
"sent, outcome unknown": read back at once if the chip answers, else at the next connect, and
the audit file gets the real after-state. A pending record is on disk before the first write,
so a burn killed at any moment is read back at the next connect; an audit file that cannot be
appended to is refused before anything is sent (exit 7). Bytes under a read lock the burn sets
cannot be read back: reported burnt but unverified (exit 0 when every readable bit verified).]],
  args = {
    { "--raw", type = "path", metavar = "FILE", help = "read: also save the 512 raw bytes to FILE" },
    { "--all", flag = true, help = "read/decode: list fields that are zero too" },
    { "--mask", type = "file", metavar = "FILE", help = "burn: mask file (default: <name>_mask.bin or derived)" },
    { "--confirm-efuse-burn", flag = true, help = "burn: really burn (else a dry run)" },
    { "--root-key", type = "file", metavar = "PEM", help = "burn: root public key for the 0x91 challenge" },
    { "--audit", type = "path", metavar = "FILE", help = "burn: audit log (JSON lines) [default "
      .. efuse.DEFAULT_AUDIT .. "]" },
    { "--insecure-write", flag = true, help = "burn: plain 0x40 writes instead of the ECDH path" },
    { "--allow-lockout", metavar = "FIELD[,FIELD]", many = true, help = "burn: allow setting these lock-out fields "
      .. "(UART download disable, flash encryption: needed to burn them)" },
    { "words", type = "string", many = true, help = "read | decode FILE | burn FILE | mac set MAC" },
  },
  run = function(ctx, a)
    local w = a.words
    local sub = w[1]
    if sub == "read" then
      if #w > 1 then usage_sub("read takes no positional arguments") end
      local map, board_efuse = efuse.map_for(ctx)
      local s <close> = ctx:connect()
      local bytes = burn.read(s, map)
      if a.raw then
        util.writefile(a.raw, bytes)
        ctx.ev:info("saved the raw eFuse (512 bytes) to " .. a.raw)
      end
      show(ctx, bytes, map, a, { command = "efuse read", chip_id = s:boot_info().chip_id, mac = s:mac() }, board_efuse)
    elseif sub == "decode" then
      if #w ~= 2 then usage_sub("decode needs one FILE") end
      local map, board_efuse = efuse.map_for(ctx)
      local f = efuse.load_file(w[2], map)
      ctx.ev:info(("%s: %s format, SHA-256 %s"):format(w[2], f.format, f.sha256))
      show(ctx, f.data, map, a, { command = "efuse decode", file = w[2], format = f.format, sha256 = f.sha256 },
        board_efuse)
    elseif sub == "burn" then
      if #w ~= 2 then usage_sub("burn needs one FILE") end
      local st = require("ncpflash.core.sys").stat(w[2])
      if not st or st.type ~= "file" then
        errors.raise("input", "efuse burn: file " .. w[2] .. " not found or not readable")
      end
      -- a bad PEM, a lock-out field without --allow-lockout, an audit file that cannot be
      -- appended to: refused before connecting
      local job = burn.precheck(efuse.prepare_file(ctx, w[2], a))
      local s <close> = ctx:connect()
      burn.apply(ctx, s, job)
    elseif sub == "mac" then
      if w[2] ~= "set" or #w ~= 3 then usage_sub("usage: efuse mac set XX:XX:XX:XX:XX:XX") end
      local mac = efuse.parse_mac(w[3])
      local map, board_efuse = efuse.map_for(ctx)
      if a.root_key then efuse.load_root_key(a.root_key) end
      if a.confirm_efuse_burn then burn.check_records({ audit = a.audit or efuse.DEFAULT_AUDIT }) end
      local s <close> = ctx:connect()
      local current = burn.read(s, map)
      local wanted, mask, slot = efuse.mac_job(current, mac, map)
      if not wanted then
        ctx.ev:info(("MAC %s is already programmed (slot 0x%02X): nothing to do"):format(w[3]:upper(), slot))
        ctx.ev:result({ command = "efuse mac set", mac = w[3]:upper(), slot = slot, nothing_to_do = true })
        return
      end
      ctx.ev:info(("MAC %s goes into customer slot 0x%02X"):format(w[3]:upper(), slot))
      burn.apply(ctx, s, { map = map, board_efuse = board_efuse, wanted = wanted, mask = mask,
        source = { label = "mac " .. w[3]:upper(), sha256 = codec.hex(codec.sha256(wanted)), format = "mac" },
        insecure = a.insecure_write, root_key = a.root_key, confirm = a.confirm_efuse_burn,
        audit = a.audit or efuse.DEFAULT_AUDIT, command = "efuse mac set",
        allow_lockout = efuse.allowed_lockouts(a.allow_lockout, map) })
    elseif sub == nil then
      usage_sub("missing subcommand (read, decode, burn, mac set)")
    else
      usage_sub(("unknown subcommand %q (read, decode, burn, mac set)"):format(sub))
    end
  end,
}
