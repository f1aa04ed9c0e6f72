-- st67w611m1/mission_t02: flash ST's mission_t02 profile from an X-CUBE-ST67W61 release folder.
return require("ncpflash.release").profile_recipe("st67w611m1", "mission_t02")
