-- Reset kind "manual": a person presses the buttons. `prompt` is printed once, then the
-- handshake is retried until the ROM answers or `timeout` (s, default 30) passes.
--   { kind="manual", prompt=, timeout= }        --reset: "manual" or "manual:SECONDS"
local steps = require("ncpflash.reset._steps")

local K = {
  order = 4,
  flags = {
    retry_without_reset = true,   -- later attempts only re-sync: the enter step (the prompt) is done once
    until_timeout = true,         -- retried until its timeout, not a count of retries
  },
}

function K.claims(v) return v:match("^manual") ~= nil end

function K.parse(part, _, where)
  local t = part:match("^manual:(.+)$")
  local d = t and steps.parse_duration(t)
  if t and not d then steps.bad(where, "manual:SECONDS expects a duration") end
  if part ~= "manual" and not t then steps.bad(where, "unknown strategy") end
  return { kind = "manual", timeout = d }
end

function K.validate(st, _, n)
  n.prompt = st.prompt or "put the module in download mode now: hold BOOT high, pulse CHIP_EN (reset) low, "
    .. "then release BOOT"
  n.timeout = st.timeout or 30
  return n
end

function K.describe(st)
  return string.format("manual (press the buttons; waiting up to %g s)", st.timeout)
end

function K.enter(d)
  if not d.prompted then
    d.prompted = true
    d.ev:info(d.st.prompt .. string.format(" (waiting up to %g s for the ROM to answer)", d.st.timeout),
      { reset = "manual" })
  end
  return true
end

function K.run() return true end

return K
