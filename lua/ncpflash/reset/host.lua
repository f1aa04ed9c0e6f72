-- Reset kind "host": a host MCU between the PC and the module puts the module in download mode
-- when it starts a loader program, and the loader is put on the host with STM32CubeProgrammer's
-- command line (ST's NUCLEO kits with the X-NUCLEO-67W61M1 and ST's NCP_Loader: DTR/RTS do
-- not reach the module there, st67w611m1.md §3.3, §5). The st67w611m1/* recipes build it from
-- the host-board table (`--host auto|BOARD`); a board file may declare one too.
--
--   { kind = "host", programmer = PATH, connect = {"-c", "port=swd", "mode=ur"}, board = NAME,
--     enter = {steps},   -- the first attempt: program and start the loader
--     again = {steps},   -- later attempts (default: enter again)
--     run = {steps},     -- leave the ROM: the host application back (the module boots its flash)
--     settle = 1.0,      -- seconds after the steps before the sync burst (the loader's blink + pulse)
--     timeout = 180,     -- seconds per programmer call
--     no_wait = false,   -- true (--yes): prompts are printed, not waited for
--     shared = {} }      -- kept across the connects of one run (a later connect runs `again`)
-- enter raises a "handshake" error (kind reset-failed) when a step fails (see K.enter); run
-- returns false, why.
-- A step: {file = PATH, address = N, extload = PATH, go = bool} (one `-w FILE ADDR [--extload X]
-- [--go]` call), {prompt = "text"} (a person acts; Enter on stdin continues), {wait = seconds}.
-- Driver method identify(): the "Board :" line of a bare connect, and the programmer's output.
local sys = require("ncpflash.core.sys")
local errors = require("ncpflash.errors")
local steps = require("ncpflash.reset._steps")

local K = {
  order = 7,
  flags = {
    runs_program = true,    -- starts an external program (STM32_Programmer_CLI)
    run_sequence = true,    -- "run" programs the host application back
  },
  methods = {},
}

local function check_steps(where, list)
  if list == nil then return nil end
  if type(list) ~= "table" then steps.bad(where, "must be a list of steps") end
  local out = {}
  for i, s in ipairs(list) do
    local w = ("%s[%d]"):format(where, i)
    if type(s) ~= "table" then steps.bad(w, "a step is a table: {file=, address=}, {prompt=} or {wait=}") end
    if s.prompt ~= nil then
      if type(s.prompt) ~= "string" or s.prompt == "" then steps.bad(w .. ".prompt", "must be a text") end
      out[i] = { prompt = s.prompt }
    elseif s.wait ~= nil then
      if type(s.wait) ~= "number" or s.wait < 0 or s.wait > 60 then steps.bad(w .. ".wait", "must be 0..60 s") end
      out[i] = { wait = s.wait }
    else
      if type(s.file) ~= "string" or s.file == "" then steps.bad(w .. ".file", "missing") end
      if math.type(s.address) ~= "integer" or s.address < 0 or s.address > 0xFFFFFFFF then
        steps.bad(w .. ".address", "must be an integer 0..0xFFFFFFFF")
      end
      if s.extload ~= nil and type(s.extload) ~= "string" then steps.bad(w .. ".extload", "must be a path") end
      out[i] = { file = s.file, address = s.address, extload = s.extload, go = s.go == true }
    end
  end
  return out
end

function K.validate(st, where, n)
  if type(st.programmer) ~= "string" or st.programmer == "" then
    steps.bad(where .. ".programmer", "the STM32_Programmer_CLI path is missing")
  end
  n.programmer = st.programmer
  n.connect = st.connect or { "-c", "port=swd", "mode=ur" }
  for i, a in ipairs(n.connect) do
    if type(a) ~= "string" then steps.bad(("%s.connect[%d]"):format(where, i), "must be a text") end
  end
  n.board = st.board
  n.enter = check_steps(where .. ".enter", st.enter) or {}
  n.again = check_steps(where .. ".again", st.again)
  n.run = check_steps(where .. ".run", st.run)
  n.settle = st.settle or 1.0
  n.timeout = st.timeout or 180
  n.no_wait = st.no_wait == true
  n.shared = type(st.shared) == "table" and st.shared or {}
  return n
end

function K.describe(st)
  return ("host MCU %s through %s (starts the NCP loader: BOOT high while CHIP_EN rises)"):format(
    st.board or "(board unknown)", st.programmer:match("([^/\\]+)$"))
end

-- Run the programmer with `args`; returns ok, status, output (stdout and stderr together).
local function programmer(d, args)
  local argv = { d.st.programmer }
  for _, a in ipairs(d.st.connect) do argv[#argv + 1] = a end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out = os.tmpname()
  local ok, pid = pcall(sys.spawn, argv, { stdout = out, stderr = out, stdin = "null", append = true })
  if not ok then
    os.remove(out)
    return false, nil, ("cannot start %s: %s"):format(d.st.programmer, tostring(pid))
  end
  local deadline = sys.now() + d.st.timeout
  local status
  repeat
    status = sys.wait(pid, 0.2)
    if not status and sys.interrupted() then
      sys.kill(pid, "TERM"); sys.wait(pid, 2)
      os.remove(out)
      errors.raise("interrupted", "interrupted while " .. d.st.programmer:match("([^/\\]+)$") .. " was running")
    end
  until status or sys.now() >= deadline
  if not status then
    sys.kill(pid, "KILL"); sys.wait(pid, 2)
  end
  local f = io.open(out, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
  d.ev:debug(table.concat(argv, " ") .. "\n" .. text)
  if not status then return false, nil, text, ("did not finish within %g s"):format(d.st.timeout) end
  return status == 0, status, text
end

-- The most telling line of the programmer's output: its first "Error" line, else its last line.
local function telling(text)
  local last
  for line in text:gmatch("[^\r\n]+") do
    line = line:match("^%s*(.-)%s*$")
    if line:match("^[Ee]rror") then return line end
    if line ~= "" then last = line end
  end
  return last or "no output"
end

local function program(d, s)
  local args = { "-w", s.file, ("0x%08X"):format(s.address) }
  if s.extload then args[#args + 1] = "--extload"; args[#args + 1] = s.extload end
  if s.go then args[#args + 1] = "--go" end
  local name = s.file:match("([^/\\]+)$")
  d.ev:info(("host %s: programming %s at 0x%08X%s"):format(d.st.board or "MCU", name, s.address,
    s.extload and (" (external loader " .. s.extload:match("([^/\\]+)$") .. ")") or ""),
    { host = d.st.board, file = s.file, address = s.address })
  local ok, status, text, why = programmer(d, args)
  if not ok then
    return false, ("STM32_Programmer_CLI could not program %s at 0x%08X (%s): %s"):format(name, s.address,
      why or ("exit status " .. tostring(status)), telling(text))
  end
  if text:find("\n%s*Error") or text:find("^%s*Error") then
    d.ev:warn(("STM32_Programmer_CLI reported success for %s but printed: %s"):format(name, telling(text)))
  end
  return true
end

local function ask(d, text)
  if d.st.no_wait then
    d.ev:warn(text .. " (not waiting: --yes)")
    return true
  end
  d.ev:info(text .. "; then press Enter", { prompt = true })
  local line = io.stdin:read("l")
  if line == nil then return false, "nobody answered on stdin: " .. text end
  return true
end

local function run_steps(d, list)
  for _, s in ipairs(list or {}) do
    local ok, why = true, nil
    if s.prompt then ok, why = ask(d, s.prompt)
    elseif s.wait then sys.sleep(s.wait)
    else ok, why = program(d, s) end
    if not ok then return false, why end
  end
  return true
end

-- A loader that could not be put on the host is the end of this connect: the module keeps
-- running whatever it ran, and another sync burst would only report that (an "application"
-- talking), not why. So enter raises instead of returning false, as the gpio kind does for a
-- line it cannot request.
function K.enter(d)
  local st = d.st
  local list = st.enter
  if st.shared.entered and st.again then list = st.again end
  local ok, why = run_steps(d, list)
  if not ok then
    errors.raise("handshake", ("host %s: the NCP loader could not be started: %s"):format(st.board or "MCU", why),
      { kind = "reset-failed", hint = "check the NUCLEO's ST-LINK USB connection and STM32CubeProgrammer "
        .. "(run with -v for the programmer's output)" })
  end
  st.shared.entered = true
  sys.sleep(st.settle)
  if d.port then d.port:flush_input() end
  return true
end

function K.run(d)
  if not d.st.run or #d.st.run == 0 then return false, "no host application to program" end
  return run_steps(d, d.st.run)
end

--- The board the programmer sees: the value of its "Board :" line (nil when there is none), and
--- the output (for messages).
function K.methods.identify(d)
  local ok, status, text, why = programmer(d, {})
  if not ok then
    return nil, ("%s -c port=swd failed (%s): %s"):format(d.st.programmer:match("([^/\\]+)$"),
      why or ("exit status " .. tostring(status)), telling(text))
  end
  for line in text:gmatch("[^\r\n]+") do
    local v = line:match("^%s*Board%s*:%s*(.-)%s*$")
    if v and v ~= "" then return v, text end
  end
  return nil, "no \"Board :\" line in its output (" .. telling(text) .. ")"
end

return K
