-- ncpflash.release: board recipes that flash one profile of a vendor release folder
-- (recipes/st67w611m1/{mfg,mission_t01,mission_t02}.lua), driven by the board's `release` table.
local flash = require("ncpflash.flash")
local errors = require("ncpflash.errors")

local M = {}

--- The recipe table for `profile` (a key of the board's release.ini) of board `board`.
function M.profile_recipe(board, profile)
  return {
    board = board,
    help = "flash ST's " .. profile .. " NCP profile from a release folder (ST67W6X_Scripts or NCP_Binaries)",
    description = "Finds the " .. profile .. "_flash_prog_cfg*.ini of the release (in FOLDER, "
      .. "FOLDER/Binaries/NCP_Binaries, ...)\nand flashes it like QConn_Flash_Cmd --config would. "
      .. "eFuse programming is not done.",
    args = {
      { "folder", type = "path", help = "ST67W6X_Scripts (or its Binaries/NCP_Binaries) folder, or the ini" },
      { "--erase", type = "choice", choices = { 0, 1, 2 }, help = "override the ini's erase mode" },
      { "--skip-unchanged", flag = true, help = "leave regions whose on-chip SHA-256 already matches" },
      { "--no-verify", flag = true, help = "skip the on-chip SHA-256 check" },
    },
    run = function(ctx, a)
      local rel = ctx:board().release
      if not rel then errors.raise("usage", "board " .. tostring(ctx:board().name) .. " has no release layout") end
      local ini = flash.find_file(a.folder, rel.ini[profile], rel.subdirs)
      ctx.ev:info(profile .. ": using " .. ini, { ini = ini })
      flash.from_config(ctx, ini, { erase = a.erase, verify = not a.no_verify, skip_unchanged = a.skip_unchanged,
        template = rel.template })
    end,
  }
end

return M
