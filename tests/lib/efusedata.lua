-- efusedata: eFuse test data shared by tests/lua/test_efuse_file.lua and test_efuse_sim.lua.
local codec = require "ncpflash.core.codec"

local M = {}

M.ZERO = string.rep("\0", 512)
-- the public-key hash in ST's efusedata.bin
M.ST_HASH = codec.unhex("9e0cb12265b514e65071743555e9c9d1937d1287a7ff63aa5add5d76c08b35eb")

function M.put(bytes, off, s) return bytes:sub(1, off) .. s .. bytes:sub(off + #s + 1) end
function M.u32(bytes, off, v) return M.put(bytes, off, string.pack("<I4", v)) end

-- The data ST's efusedata.bin holds (st67w611m1.md §2.6), with the key hash given.
function M.st_like(hash)
  local d = M.ZERO
  d = M.u32(d, 0x00, 0x0C000000)
  d = M.put(d, 0x1C, hash)
  d = M.u32(d, 0x5C, 0x00000080)
  d = M.u32(d, 0x7C, 0x00061000)
  d = M.u32(d, 0xDC, 0x04000000)
  return d
end

--- The eFuse write commands (0x40 plain, 0x80 secure) in an ncpsim handle's log.
function M.efuse_writes(sim)
  local n = 0
  for _, l in ipairs(sim:log_lines()) do
    if l:match("^0x40 ") or l:match("^0x80 ") then n = n + 1 end
  end
  return n
end

return M
