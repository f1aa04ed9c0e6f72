-- Example provisioning hook for `ncpflash flash --provision provision-mac.lua ...`.
--
-- Takes the next free row of units.csv (columns: serial,mac,calib[,status]), writes a small
-- per-unit record into the MFD partition (0x3FF000 on the ST67W611M1 layout) together with the
-- release set, and marks the row used only after everything was verified.  Safe with many
-- devices at once (--port A --port B ...): rows are claimed under a file lock.
--
-- Environment: UNITS_CSV (default units.csv), MFD_ADDR (default 0x3FF000).
local provision = require "ncpflash.provision"
local codec = require "ncpflash.core.codec"

local csv = provision.csv(os.getenv("UNITS_CSV") or "units.csv")
local addr = tonumber(os.getenv("MFD_ADDR") or "0x3FF000")
local rows = {}   -- chip id -> claimed row

return {
  unit = function(dev)
    local row = csv:claim(dev)
    rows[dev.chip_id] = row
    local mac = codec.unhex((row.mac or ""):gsub("[:%-]", ""))
    assert(#mac == 6, "units.csv row " .. row.row .. ": bad mac " .. tostring(row.mac))
    local calib = row.calib ~= "" and codec.unhex(row.calib) or ""
    -- record: "MFD1" | serial (16 bytes, NUL padded) | MAC (6) | calib length (2) | calib
    local rec = "MFD1" .. (row.serial .. ("\0"):rep(16)):sub(1, 16) .. mac .. string.pack("<I2", #calib) .. calib
    return { { name = "mfd", address = addr, data = rec } }
  end,
  commit = function(dev) csv:commit(rows[dev.chip_id], dev) end,
  release = function(dev) if rows[dev.chip_id] then csv:release(rows[dev.chip_id], dev) end end,
}
