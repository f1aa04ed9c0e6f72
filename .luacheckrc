-- luacheck configuration (make lint)
std = "lua54"
max_line_length = 120
codes = true
files["tests/lua/"] = {
  globals = { "test", "skip", "skip_if", "eq", "ne", "ok", "match", "nomatch", "raises", "helpers" },
}
files["tests/run.lua"] = { allow_defined_top = true }
