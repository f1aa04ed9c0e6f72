-- erase: the whole chip, or LEN bytes from ADDR.
local errors = require("ncpflash.errors")

return {
  help = "erase the whole flash (--all) or LEN bytes from ADDR (rounded to 4 KiB sectors)",
  args = {
    { "--all", flag = true, help = "chip erase" },
    { "addr", type = "u32", optional = true, help = "start address" },
    { "len", type = "u32", optional = true, help = "length in bytes (k/M suffixes allowed)" },
  },
  run = function(ctx, a)
    if a.all == (a.addr ~= nil) or (a.addr ~= nil and a.len == nil) then
      errors.raise("usage", "erase: give --all, or ADDR LEN", { hint = "e.g. ncpflash erase 0x10000 1M" })
    end
    local s <close> = ctx:connect()
    s:flash_set()   -- as the vendor's flasher before an erase-only job: 0x3B with flash_set alone
    if a.all then
      ctx.ev:stage("erase", { all = true })
      s:erase_all()
      ctx.ev:result({ command = "erase", all = true, seconds = s.stats.erase,
        summary = string.format("chip erased in %.2f s", s.stats.erase) })
    else
      local fs = s.flash_size
      if fs and a.addr + a.len > fs then
        errors.raise("input", string.format("erase 0x%X + %d ends beyond the %d-byte flash", a.addr, a.len, fs))
      end
      ctx.ev:stage("erase", { address = a.addr, size = a.len })
      s:erase(a.addr, a.len)
      ctx.ev:result({ command = "erase", address = a.addr, size = a.len, seconds = s.stats.erase,
        summary = string.format("erased 0x%X..0x%X in %.2f s", a.addr, a.addr + a.len - 1, s.stats.erase) })
    end
  end,
}
