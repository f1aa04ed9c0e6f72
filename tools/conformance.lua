-- tools/conformance.lua - run ncpflash on ncpsim for recorded vendor flows and show how its
-- command sequence differs from the recording (docs/conformance.md):
--   build/ncpflash run tools/conformance.lua [FLOW...]
-- FLOW: st_t02 mfg plain erase cerase pd read efr ef2 (default all). Each difference is shown
-- with the rule of docs/conformance.md that explains it, or as UNEXPLAINED.
local root = dofile("tests/lib/init.lua")
local helpers = require "helpers"
local conform = require "conform"

local flows = { ... }
if #flows == 0 then flows = conform.FLOWS end
local rules = conform.rules(helpers.readfile(root .. "/docs/conformance.md"))
local unexplained = 0
for _, name in ipairs(flows) do
  local run, why = conform.run_flow(name, helpers)
  if not run then
    print(("== %s: skipped (%s)"):format(name, why))
  else
    local bad, diff = conform.compare(name, run.vendor, run.items, rules)
    print(("== %s: ncpflash exit %d, %d differences, %d unexplained"):format(name, run.result.code, #diff, #bad))
    for _, d in ipairs(diff) do
      local rule = "UNEXPLAINED"
      for _, r in ipairs(rules) do
        if r.side == d.side and (r.flows["*"] or r.flows[name]) and d.item:match(r.pattern) then rule = r.id; break end
      end
      print(("  %-8s %-60s %s"):format(d.side == "vendor" and "vendor" or "ncpflash", d.item, rule))
    end
    unexplained = unexplained + #bad
  end
  helpers.cleanup()
end
print(("%d unexplained difference(s)"):format(unexplained))
