-- verify: compare flash contents with files by on-chip SHA-256.
local flash = require("ncpflash.flash")

return {
  help = "check that flash holds FILE at ADDR (on-chip SHA-256): verify ADDR FILE [ADDR FILE ...]",
  args = {
    { "pairs", type = "string", many = true, help = "ADDR FILE pairs" },
  },
  run = function(ctx, a)
    local plan = flash.plan(flash.parse_pairs(a.pairs), { flash_size = ctx:board().flash_size, chip = ctx:chip() })
    local s <close> = ctx:connect()
    ctx.ev:stage("verify", { regions = #plan.regions })
    local res = flash.verify(ctx, s, plan, { raise = false })
    local bad = 0
    for _, r in ipairs(res) do if not r.match then bad = bad + 1 end end
    ctx.ev:result({ command = "verify", regions = setmetatable(res, require("ncpflash.json").array),
      differ = bad, summary = string.format("%d of %d regions match", #res - bad, #res) })
    if bad > 0 then
      require("ncpflash.errors").raise("verify", string.format("%d of %d regions differ from the files", bad, #res))
    end
  end,
}
