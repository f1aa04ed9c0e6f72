-- st67w611m1/mfg: flash ST's mfg profile from an X-CUBE-ST67W61 release folder.
return require("ncpflash.release").profile_recipe("st67w611m1", "mfg")
