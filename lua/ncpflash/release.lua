-- ncpflash.release: the board recipes that do one job of ST's X-CUBE-ST67W61 scripts
-- (recipes/st67w611m1/{mission_t01,mission_t02,mfg}.lua = NCP_update_mission_profile_t01/t02 and
-- NCP_update_mfg), driven by the board's `release` table:
--
--   1. the profile's ini and firmware version (ncpflash.release_layout: the newest, or
--      --version X.Y.Z, on every release layout)
--   2. everything checked before anything is sent: the image set, the eFuse file and its root
--      key, the host board's files and programmer (--host)
--   3. connect (through the host MCU with --host), flash and verify; a failed flash is retried
--      once, as ST's script retries QConn (see retry_reason)
--   4. the eFuse step on the same session: ST's efusedata.bin with ncpflash's burn (plan,
--      conflicts refused, secure-boot guard, confirmation, challenge, read-back, audit)
--   5. with --host, the host application programmed back
local sys = require("ncpflash.core.sys")
local codec = require("ncpflash.core.codec")
local errors = require("ncpflash.errors")
local util = require("ncpflash.util")
local flash = require("ncpflash.flash")
local efuse = require("ncpflash.efuse")
local burn = require("ncpflash.efuse_burn")
local layout = require("ncpflash.release_layout")
local chipinfo = require("ncpflash.chipinfo")
local hostboard = require("ncpflash.hostboard")

local M = {}

-- the error codes after which the whole flash is tried once more (nothing else is):
-- no answer / a lost port / a device or wire error / a verify mismatch
M.RETRY = { handshake = true, port = true, timeout = true, device = true, protocol = true, verify = true }

--- Why `err` is not retried (nil: it is). `state.efuse_started`: the eFuse step had begun.
function M.retry_reason(err, state)
  if state.efuse_started then
    return "the eFuse step had started: bits may be burnt; the audit and the message say which regions"
  end
  local code = errors.is(err) and err.code or "internal"
  if not M.RETRY[code] then
    return ({ input = "a bad input file fails the same way again", usage = "a usage error",
      safety = "a refusal is not retried", interrupted = "you interrupted it" })[code]
      or ("an unexpected error (" .. code .. ")")
  end
  return nil
end

local function find_root_key(rel, sel)
  local bins = layout.binaries_dir(sel.ini)
  local looked = {}
  for _, r in ipairs(rel.root_keys or {}) do
    local p = bins .. "/" .. r
    looked[#looked + 1] = p
    local st = sys.stat(p)
    if st and st.type == "file" then return p, looked end
  end
  return nil, looked
end

-- The eFuse step, prepared before anything is sent (nil with --no-efuse).
local function prepare_efuse(ctx, a, sel, rel)
  if a.no_efuse then
    if a.confirm_efuse_burn then errors.raise("usage", "--no-efuse and --confirm-efuse-burn contradict each other") end
    ctx.ev:warn("eFuse step skipped (--no-efuse): ST's images are meant for a module locked with "
      .. rel.efuse_file .. " (\"binaries only usable with a locked NCP\")")
    return nil
  end
  if ctx.opts.yes and not a.confirm_efuse_burn then
    errors.raise("safety", "--yes alone does not burn eFuses: add --confirm-efuse-burn to burn " .. rel.efuse_file
      .. " as ST's script does, or --no-efuse to flash only (nothing was flashed)")
  end
  if a.confirm_efuse_burn and not ctx.opts.yes and (ctx.job or not sys.isatty(0)) then
    errors.raise("safety", "--confirm-efuse-burn: the burn is confirmed by typing BURN on a terminal, and this "
      .. "is not one; add --yes for automation (nothing was flashed)")
  end
  local file = util.dirname(sel.ini) .. "/" .. rel.efuse_file
  if not sys.stat(file) then
    errors.raise("input", ("%s not found next to %s (ST's scripts burn it with every flash)"):format(rel.efuse_file,
      sel.ini), { file = file, hint = "--no-efuse flashes without the eFuse step" })
  end
  local key = a.root_key
  if not key then
    local looked
    key, looked = find_root_key(rel, sel)
    if key then ctx.ev:info("root key: " .. key .. " (found in the release)")
    elseif a.confirm_efuse_burn then
      errors.raise("safety", ("the eFuse burn checks the chip's challenge with the root public key, and the release "
        .. "has none (looked at %s): give --root-key PEM (nothing was flashed)"):format(table.concat(looked, ", ")),
        { hint = "--no-efuse flashes without the eFuse step" })
    end
  end
  local job = efuse.prepare_file(ctx, file, { confirm_efuse_burn = a.confirm_efuse_burn, root_key = key,
    audit = a.audit })
  job.command = ctx.command .. " (eFuse step)"
  burn.precheck(job)   -- the file, the lock-out fields, the audit file and pending folder: before the flash
  -- ST's warning, in our words: what the file does, in the terms of ST's chip information
  local be = job.board_efuse or {}
  local sets = {}
  if be.chip_info then
    local ci = chipinfo.decode(job.wanted, be.chip_info)
    for _, name in ipairs({ "JTAG", "Public Key", "Anti-rollback" }) do
      if ci.values[name] then sets[#sets + 1] = name .. " " .. tostring(ci.values[name]) end
    end
  end
  local hash = codec.hex(job.wanted:sub(0x1D, 0x3C))
  ctx.ev:warn(("ST's images are signed, and ST's scripts lock the module with %s on every flash (%s; key hash "
    .. "%s...): afterwards it boots only images signed with that key, for good. A module locked before with the "
    .. "same data has no bit left to set, and nothing is burnt again."):format(rel.efuse_file,
    #sets > 0 and table.concat(sets, ", ") or "eFuse bits", hash:sub(1, 16)))
  if a.confirm_efuse_burn then
    ctx.ev:info("eFuse step: after the flash, the plan is shown, then the burn (type BURN, or --yes)")
  else
    ctx.ev:info("eFuse step: a dry run after the flash (the plan only); --confirm-efuse-burn burns as ST's script "
      .. "does, --no-efuse skips the step")
  end
  return job
end

local function efuse_line(res, rel)
  if not res then return "eFuse step skipped (--no-efuse)" end
  if res.nothing_to_do then
    return ("eFuse: the module already holds %s (%d bits set, 0 to set): nothing burnt"):format(rel.efuse_file,
      res.bits_already or 0)
  end
  if res.dry_run then
    return ("eFuse: dry run, the module is NOT locked yet (%d bits to set); add --confirm-efuse-burn to burn "
      .. "%s"):format(res.bits_to_set or 0, rel.efuse_file)
  end
  if res.verified == false then
    return ("eFuse: %d bits burnt; read back: %d verified, the rest read-locked (burnt but unverified)"):format(
      res.bits_to_set or 0, res.verified_bits or 0)
  end
  return ("eFuse: %d bits burnt, read back and verified"):format(res.bits_to_set or 0)
end

--- The recipe table for `profile` (a key of the board's release.ini) of board `board`.
function M.profile_recipe(board, profile)
  return {
    board = board,
    needs = { "exec" },       -- --host runs STM32_Programmer_CLI
    help = "ST's NCP_update_" .. (profile == "mfg" and "mfg" or ("mission_profile_" .. profile:gsub("^mission_", "")))
      .. " job: flash the " .. profile .. " profile of a release folder, then the eFuse step",
    description = ([[
Does what ST's X-CUBE-ST67W61 script does, in one command, with ncpflash's checks:

1. Finds the %s ini of the release (FOLDER, FOLDER/Binaries/NCP_Binaries, ...) and the
   firmware: with X-CUBE-ST67W61 1.3.0 and later NCP_Binaries holds several versions and the
   ini is a template (..._vxxx.bin): the newest version is taken (version sort, as ST's
   script), or the one --version X.Y.Z names (refused with the list when it is not there).
   It says which file it picked.
2. Checks everything before anything is sent: the image set, efusedata.bin, the root key
   (found in the release: Binaries/QConn_Flash/utils/pem/ or NCP_info/utils/pem/), and with
   --host the host board's files and STM32_Programmer_CLI.
3. Flashes and verifies the set (erase mode from the ini unless --erase). A failed flash is
   retried once after 1 s, as ST's script retries QConn: a new reset and handshake, then the
   whole set again (a chip erase included). Not retried: bad input, a refusal (exit 6),
   Ctrl-C, and anything once the eFuse step has begun - a burn may have set some bits;
   ncpflash says which regions were written, and a rerun re-reads the chip and burns only
   what is missing. --no-retry turns the retry off.
4. The eFuse step, on the same connection: ST's efusedata.bin locks the module to ST-signed
   firmware for good (ST: "This will lock the ST67W61M if not yet locked"). ncpflash shows the
   plan (a module locked before needs 0 bits: nothing is burnt again), refuses conflicts and
   a secure boot over images signed with another key, and burns only with
   --confirm-efuse-burn (then type BURN, or add --yes), over the ROM's secure path checked
   with the root key, reads back, verifies and appends an audit line. Without
   --confirm-efuse-burn it is a dry run; --no-efuse skips it.
5. --host auto|BOARD: ST's NUCLEO kits (NUCLEO-U575ZI-Q, -H563ZI, -H7S3L8 (H7R3L8 too),
   -N657X0-Q with the X-NUCLEO-67W61M1), whose ST-LINK does not wire DTR/RTS to the module:
   STM32_Programmer_CLI (PATH or STM32CubeProgrammer's default folder) names the board,
   programs <BOARD>_Binaries/Bootloader.bin (ST's NCP loader: it puts the module in download
   mode), the module is flashed over the ST-LINK's virtual COM port at 2 Mbaud (found
   when --port is not given), then the host application goes back. The N6 asks you to set
   its BOOT switches.]]):format(profile),
    examples = {
      ("ncpflash st67w611m1/%s ST67W6X_Scripts --port /dev/ttyUSB0            # newest firmware, eFuse dry run")
        :format(profile),
      ("ncpflash st67w611m1/%s ST67W6X_Scripts --host auto --confirm-efuse-burn   # ST's whole job on a NUCLEO")
        :format(profile),
      ("ncpflash st67w611m1/%s ST67W6X_Scripts --version 2.0.97 --no-efuse --port COM5"):format(profile),
    },
    args = {
      { "folder", type = "path", help = "ST67W6X_Scripts (or its Binaries/NCP_Binaries) folder, or the ini" },
      { "--version", metavar = "X.Y.Z", help = "the firmware version to flash (default: the newest in the release)" },
      { "--no-efuse", flag = true, help = "flash only: skip the eFuse step (efusedata.bin)" },
      { "--confirm-efuse-burn", flag = true, help = "really burn efusedata.bin after the flash (type BURN, or --yes)" },
      { "--root-key", type = "file", metavar = "PEM", help = "root public key for the 0x91 challenge "
        .. "(default: the one in the release)" },
      { "--audit", type = "path", metavar = "FILE", help = "eFuse audit log (JSON lines) [default "
        .. efuse.DEFAULT_AUDIT .. "]" },
      { "--host", metavar = "auto|BOARD", help = "through a NUCLEO host board: auto (asks STM32_Programmer_CLI) or "
        .. "NUCLEO-U575ZI-Q, NUCLEO-H563ZI, NUCLEO-H7S3L8, NUCLEO-N657X0-Q" },
      { "--programmer", type = "file", metavar = "PATH", help = "with --host: STM32_Programmer_CLI to use" },
      { "--no-retry", flag = true, help = "do not retry a failed flash" },
      { "--erase", type = "choice", choices = { 0, 1, 2 }, help = "override the ini's erase mode" },
      { "--skip-unchanged", flag = true, help = "leave regions whose on-chip SHA-256 already matches" },
      { "--no-verify", flag = true, help = "skip the on-chip SHA-256 check" },
    },
    run = function(ctx, a)
      local ev = ctx.ev
      local b = ctx:board()
      local rel = b.release
      if not rel then errors.raise("usage", "board " .. tostring(b.name) .. " has no release layout") end
      if a.programmer and not a.host then errors.raise("usage", "--programmer goes with --host") end
      local sel = layout.select(b, profile, a.folder, a.version)
      ev:info(layout.describe(sel, profile), { ini = sel.ini, version = sel.version, firmware = sel.firmware,
        versions = sel.versions })
      local cfg_opts = { erase = a.erase, verify = not a.no_verify, skip_unchanged = a.skip_unchanged,
        template = sel.substitute }
      -- the image set is validated before anything else (as flash --config does), then the rest
      local cfg = require("ncpflash.progcfg").load(sel.ini, { chipname = b.chipname, template = sel.substitute })
      cfg_opts.plan = flash.config_plan(cfg, b, ctx:chip())
      local erase = a.erase or cfg.erase
      local job = prepare_efuse(ctx, a, sel, rel)
      local host
      if a.host then
        host = hostboard.prepare(ctx, b, { host = a.host, programmer = a.programmer, profile = profile,
          binaries = layout.binaries_dir(sel.ini) })
        cfg_opts.connect = hostboard.connect_opts(ctx, host)
      end
      local state, efuse_res = {}, nil
      cfg_opts.after = function(s)
        if job then
          state.efuse_started = true
          efuse_res = burn.apply(ctx, s, job)
        end
      end
      local attempts = 0
      while true do
        attempts = attempts + 1
        local ok, err = errors.catch(flash.from_config, ctx, sel.ini, cfg_opts)
        if ok then break end
        local why = M.retry_reason(err, state)
        if a.no_retry or attempts > 1 or why then
          if attempts > 1 then err.message = err.message .. " (after one retry)" end
          if why and attempts == 1 and not a.no_retry and M.RETRY[err.code] then
            ev:warn("not retried: " .. why)
          end
          error(err, 0)
        end
        ev:warn(("the flash failed (%s); retrying once in 1 s, as ST's script does: a new reset and handshake, then "
          .. "the whole image set again%s; the eFuse step had not begun"):format(err.message,
          erase == 2 and " (the chip erase included)" or ""), { retry = true, code = err.code })
        sys.sleep(1)
      end
      local restored = host and hostboard.restore(ctx, host)
      local lines = { ("%s: %s flashed and verified%s"):format(ctx.command,
        sel.firmware and sel.firmware:match("([^/]+)$") or sel.ini:match("([^/]+)$"),
        attempts > 1 and " (second attempt)" or ""), efuse_line(efuse_res, rel) }
      if host then
        lines[#lines + 1] = restored and ("host %s: its %s application is programmed back"):format(host.name, profile)
          or ("host %s: keeps the NCP loader (the release has no %s application for it)"):format(host.name, profile)
      end
      ev:result({ command = ctx.command, profile = profile, version = sel.version, firmware = sel.firmware,
        ini = sel.ini, attempts = attempts, host = host and host.name,
        efuse = not efuse_res and "skipped" or efuse_res.nothing_to_do and "already" or efuse_res.dry_run and "dry-run"
          or "burnt", summary = lines })
    end,
  }
end

return M
