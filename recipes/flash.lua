-- flash: write files to flash, from a QConn flash_prog_cfg.ini or from ADDR FILE pairs.
local flash = require("ncpflash.flash")
local errors = require("ncpflash.errors")

return {
  help = "write files to flash: flash --config X.ini | flash ADDR FILE [ADDR FILE ...]",
  description = [[
Writes each file at its address: XZ-compressed while sending (0x3F) where compression pays,
plain 0x31 writes otherwise; then write-check and an on-chip SHA-256 verify per region.
The erases are planned over all regions before anything is sent (regions sharing a 4 KiB
sector form one unit, erased once, just before its writes; skip_mode bytes inside an erased
sector are read first and written back). A failed region is retried once, together with
the regions sharing its sectors. Success is reported only after every region was verified
again on chip after the last write. Everything is
validated (overlaps, flash size, partition sizes, missing or empty files) before anything
is sent.

--config reads a QConn_Flash / BLFlashCommand flash_prog_cfg.ini ([cfg] erase/skip_mode,
one section per file, @partition addresses resolved from the partition table).
--erase: 0 none, 1 erase each written range (default for ADDR FILE; one chip erase instead
when that is cheaper and everything else already reads erased), 2 every byte not written
ends erased (0xFF): the chip's SHA-256 of its flash shows what holds data, and only that and
the written ranges are erased, unless a chip erase is cheaper or the flash is encrypted
(--chip-erase: always the chip erase, as the vendor's flasher).]],
  args = {
    { "--config", type = "file", metavar = "INI", help = "QConn/BLFlashCommand flash_prog_cfg.ini" },
    { "--allow-outside", flag = true, help = "with --config: accept files outside the ini's release folder "
      .. "(README \"Hostile inputs\")" },
    { "--efuse", type = "file", metavar = "FILE", help = "eFuse data to burn after a successful flash (see "
      .. "'ncpflash help efuse'; a dry run without --confirm-efuse-burn)" },
    { "--efuse-mask", type = "file", metavar = "FILE", help = "with --efuse: mask file" },
    { "--confirm-efuse-burn", flag = true, help = "with --efuse: really burn (type BURN, or add --yes)" },
    { "--root-key", type = "file", metavar = "PEM", help = "with --efuse: root public key for the 0x91 challenge" },
    { "--audit", type = "path", metavar = "FILE", help = "with --efuse: audit log (JSON lines)" },
    { "--insecure-write", flag = true, help = "with --efuse: plain 0x40 eFuse writes" },
    { "--allow-lockout", metavar = "FIELD[,FIELD]", many = true, help = "with --efuse: allow these lock-out "
      .. "fields (UART download disable, flash encryption)" },
    { "--allow-bad-image", flag = true, help = "flash boot images the ROM would not boot (a CRC, a body cut "
      .. "short or not matching the header's SHA-256, another chip's layout); refused without it" },
    { "--erase", type = "choice", choices = { 0, 1, 2 },
      help = "0 none, 1 written ranges, 2 all but the written bytes end 0xFF" },
    { "--chip-erase", flag = true, help = "with erase = 2: always the chip erase (0x3C), even where erasing less "
      .. "ends in the same bytes" },
    { "--skip-unchanged", flag = true, help = "leave regions whose on-chip SHA-256 already matches" },
    { "--no-verify", flag = true, help = "skip the on-chip SHA-256 check after writing" },
    { "--reset", flag = true, help = "afterwards, reset the chip into its flash image (board reset lines)" },
    { "--resume", flag = true, help = "keep a journal and continue an interrupted flash: no second chip erase, "
      .. "regions verified on chip are not rewritten" },
    { "--provision", type = "file", metavar = "FILE.lua", help = "per-unit data: FILE.lua gets the device "
      .. "identity and returns regions to write (README \"Provisioning\")" },
    { "pairs", type = "string", many = true, optional = true, help = "ADDR FILE pairs" },
  },
  run = function(ctx, a)
    -- --efuse: the file is validated before flashing, burnt (ncpflash.efuse) after a successful flash
    -- (every refusal it can decide without the chip comes before connecting; the plan against the
    -- chip's eFuse is checked on the flashing session before the first flash command)
    local efuse_job
    if a.efuse then
      local efuse = require("ncpflash.efuse")
      if ctx.opts.yes and not a.confirm_efuse_burn then
        errors.raise("safety", "--yes alone does not burn eFuses: add --confirm-efuse-burn, or drop --yes for a "
          .. "dry run of the eFuse step (nothing was flashed or burnt)")
      end
      efuse_job = efuse.prepare_file(ctx, a.efuse, { mask = a.efuse_mask,
        confirm_efuse_burn = a.confirm_efuse_burn, root_key = a.root_key, audit = a.audit,
        insecure_write = a.insecure_write, allow_lockout = a.allow_lockout })
      efuse_job.command = "flash --efuse"
      efuse_job.before_flash = true
      require("ncpflash.efuse_burn").precheck(efuse_job)
    end
    local prov = a.provision and require("ncpflash.provision").load(ctx, a.provision)
    if prov and a.no_verify then errors.raise("usage", "flash: --provision needs the verify (drop --no-verify)") end
    -- runs on the flashing session after a successful flash: the unit's provisioning data is
    -- committed (everything was verified), then the eFuse burn, then the optional reset
    local function finish(s)
      if prov then prov:commit() end
      if efuse_job then require("ncpflash.efuse_burn").apply(ctx, s, efuse_job) end
      if a.reset then
        s:reset()
        ctx.ev:info("reset: the chip runs from flash now")
      end
    end
    local before, opts
    if prov or efuse_job then
      before = function(s, plan)
        if efuse_job then
          -- the erase mode: --erase, 1 for ADDR FILE pairs; an ini's own erase is not known here
          -- (then the guard may pass an image the chip erase wipes: the burn's guard refuses it)
          require("ncpflash.efuse_burn").preflight(ctx, s, efuse_job, plan, opts.erase)
          efuse_job.before_flash = nil
        end
        if prov then prov:before(s, plan) end
      end
    end
    opts = { erase = a.erase, verify = not a.no_verify, skip_unchanged = a.skip_unchanged, after = finish,
      resume = a.resume, chip_erase = a.chip_erase, before = before,
      allow_outside = a.allow_outside, allow_bad_image = a.allow_bad_image }
    local function body()
      if a.config then
        if a.pairs and #a.pairs > 0 then
          errors.raise("usage", "flash: give either --config INI or ADDR FILE pairs, not both")
        end
        -- an X-CUBE-ST67W61 1.3.0 template ini: say how to choose the version
        require("ncpflash.release_layout").check_template(ctx:board(), a.config)
        flash.from_config(ctx, a.config, opts)
        return
      end
      if opts.erase == nil then opts.erase = 1 end
      local plan = flash.plan(flash.parse_pairs(a.pairs or {}), { flash_size = ctx:board().flash_size,
        chip = ctx:chip(), allow_bad_image = a.allow_bad_image })
      local s <close> = ctx:connect()
      flash.run(ctx, s, plan, opts)
      finish(s)
    end
    if not prov then return body() end
    local ok, err = pcall(body)
    if not ok then
      prov:release(err)
      error(err, 0)
    end
  end,
}
