-- Reset kind "command": an external program puts the chip in download mode (a host MCU, a
-- debugger, a relay board).
--   { kind="command", enter = argv table or a shell string, run = idem, timeout = seconds (10) }
-- --reset: "cmd:COMMAND" (run with /bin/sh -c). A non-zero exit or the deadline is a failed reset.
local sys = require("ncpflash.core.sys")
local steps = require("ncpflash.reset._steps")

local K = {
  order = 3,
  flags = {
    runs_program = true,    -- starts an external program (a recipe that passes one needs "exec")
    run_sequence = true,    -- has a "run" command that leaves the ROM (s:reset())
  },
}

local function check_argv(where, v)
  if v == nil then return nil end
  if type(v) == "string" then
    if v == "" then steps.bad(where, "empty command") end
    return { "/bin/sh", "-c", v }
  end
  if type(v) ~= "table" or #v == 0 then steps.bad(where, "a command is a string or an argv list") end
  for i, a in ipairs(v) do
    if type(a) ~= "string" then steps.bad(string.format("%s[%d]", where, i), "argv items are strings") end
  end
  return v
end

function K.claims(v) return v:match("^cmd:") ~= nil end

function K.parse(part) return { kind = "command", enter = part:sub(5) } end

function K.validate(st, where, n)
  n.enter = check_argv(where .. ".enter", st.enter)
  n.run = check_argv(where .. ".run", st.run)
  if not n.enter then steps.bad(where .. ".enter", "missing") end
  n.timeout = st.timeout or 10
  return n
end

function K.describe(st)
  return "external command: " .. table.concat(st.enter, " "):gsub("^/bin/sh %-c ", "")
end

local function run_argv(d, argv)
  if not argv then return false, "no run sequence" end
  local pid = sys.spawn(argv, { stdout = "null", stdin = "null" })
  local status = sys.wait(pid, d.st.timeout)
  if not status then
    sys.kill(pid, "KILL")
    sys.wait(pid, 1)
    return false, string.format("reset command did not finish within %g s", d.st.timeout)
  end
  if status ~= 0 then return false, string.format("reset command exited with status %d", status) end
  return true
end

function K.enter(d) return run_argv(d, d.st.enter) end
function K.run(d) return run_argv(d, d.st.run) end

return K
