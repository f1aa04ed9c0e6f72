-- Reset kind "none": do nothing (the chip is already in download mode). --reset none, --no-reset,
-- and a board without reset wiring.
local K = {
  order = 6,
  flags = {
    no_reset = true,        -- touches nothing: retries wait a little between attempts
  },
}

function K.claims(v) return v == "none" end
function K.parse() return { kind = "none" } end
function K.validate(_, _, n) return n end
function K.describe() return "none (no reset)" end
function K.enter() return true end
function K.run() return true end

return K
