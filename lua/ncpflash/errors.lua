-- ncpflash.errors: the one error shape of expected failures.
--
-- An expected failure is raised as a table {code =, message =, ...} with the
-- metatable registry["ncpflash.error"] (tostring gives the message).  Codes
-- are stable and map to exit codes; misuse raises plain string errors.
local sys = require "ncpflash.core.sys"

local M = {}

M.exit_codes = {
  usage = 2, handshake = 3, port = 3, timeout = 4, device = 4, protocol = 4,
  verify = 5, safety = 6, input = 7, interrupted = 130,
}

--- Raise an expected failure. `fields` are copied into the error.
function M.raise(code, message, fields)
  sys.error(code, message, fields)
end

--- True when `e` is an ncpflash error (and has `code`, when given).
function M.is(e, code)
  return sys.is_error(e) and (code == nil or e.code == code)
end

--- The process exit code for an error value (1 for anything unclassified).
function M.exit_code(e)
  if sys.is_error(e) then return M.exit_codes[e.code] or 1 end
  return 1
end

--- pcall for expected failures: true, f's results when f returns; false, err when f raises an
--- ncpflash error. Any other error (a bug, misuse: a string) propagates unchanged, so callers
--- never hand-roll "rethrow unless errors.is".
function M.catch(f, ...)
  local res = table.pack(pcall(f, ...))
  if res[1] then return table.unpack(res, 1, res.n) end
  if M.is(res[2]) then return false, res[2] end
  error(res[2], 0)
end

return M
