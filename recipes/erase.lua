-- erase: the whole chip, or LEN bytes from ADDR.
local errors = require("ncpflash.errors")

return {
  help = "erase the whole flash (--all) or LEN bytes from ADDR (rounded out to whole sectors, which it prints)",
  args = {
    { "--all", flag = true, help = "chip erase" },
    { "addr", type = "u32", optional = true, help = "start address" },
    { "len", type = "u32", optional = true, help = "length in bytes (k/M suffixes allowed)" },
  },
  run = function(ctx, a)
    -- every mistake in the arguments is found before the port is opened
    local all = a.all == true
    if all == (a.addr ~= nil) or (a.addr ~= nil and a.len == nil) then
      errors.raise("usage", "erase: give --all, or ADDR LEN", { hint = "e.g. ncpflash erase 0x10000 1M" })
    end
    if not all and a.len == 0 then
      errors.raise("usage", "erase: LEN is 0: nothing to erase", { hint = "e.g. ncpflash erase 0x10000 1M" })
    end
    local sector = ctx:chip().sector_size or 4096
    local lo, hi
    if not all then
      lo = a.addr - a.addr % sector                          -- the ROM erases whole sectors
      local e = a.addr + a.len
      hi = e + (sector - e % sector) % sector
      local fs = ctx:board().flash_size
      if fs and hi > fs then
        errors.raise("input", string.format("erase 0x%X + %d ends beyond the %d-byte flash", a.addr, a.len, fs))
      end
    end
    local s <close> = ctx:connect()
    s:flash_set()   -- as the vendor's flasher before an erase-only job: 0x3B with flash_set alone
    if all then
      ctx.ev:stage("erase", { all = true })
      s:erase_all()
      ctx.ev:result({ command = "erase", all = true, seconds = s.stats.erase,
        summary = string.format("chip erased in %.2f s", s.stats.erase) })
    else
      local fs = s.flash_size
      if fs and hi > fs then
        errors.raise("input", string.format("erase 0x%X + %d ends beyond the %d-byte flash", a.addr, a.len, fs))
      end
      ctx.ev:stage("erase", { address = lo, size = hi - lo })
      s:erase(lo, hi - lo)
      local asked = (lo ~= a.addr or hi ~= a.addr + a.len)
        and string.format("; asked 0x%X..0x%X", a.addr, a.addr + a.len - 1) or ""
      ctx.ev:result({ command = "erase", address = lo, size = hi - lo, asked_address = a.addr, asked_size = a.len,
        seconds = s.stats.erase, summary = string.format(
          "erased 0x%X..0x%X (%d bytes, whole %d KiB sectors%s) in %.2f s",
          lo, hi - 1, hi - lo, sector // 1024, asked, s.stats.erase) })
    end
  end,
}
