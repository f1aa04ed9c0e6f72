-- read: copy LEN bytes of flash from ADDR into FILE.
local util = require("ncpflash.util")
local codec = require("ncpflash.core.codec")

return {
  help = "read LEN bytes of flash at ADDR into FILE",
  args = {
    { "addr", type = "u32", help = "start address" },
    { "len", type = "u32", help = "length in bytes (k/M suffixes allowed)" },
    { "file", type = "path", help = "output file" },
  },
  run = function(ctx, a)
    local s <close> = ctx:connect()
    if s.flash_size and a.addr + a.len > s.flash_size then
      require("ncpflash.errors").raise("input", string.format("read 0x%X + %d ends beyond the %d-byte flash",
        a.addr, a.len, s.flash_size))
    end
    ctx.ev:stage("read", { address = a.addr, size = a.len })
    local t0 = require("ncpflash.core.sys").now()
    local data = s:read(a.addr, a.len, { progress = function(d, t) ctx.ev:progress(d, t, { name = "read" }) end })
    local dt = require("ncpflash.core.sys").now() - t0
    util.writefile(a.file, data)
    ctx.ev:result({ command = "read", address = a.addr, size = #data, file = a.file,
      sha256 = codec.hex(codec.sha256(data)), seconds = dt,
      summary = string.format("read %d bytes from 0x%X into %s in %.2f s", #data, a.addr, a.file, dt) })
  end,
}
