-- image info FILE: describe a partition table, a boot-header image or an OTA file.
local partition = require("ncpflash.partition")
local bootheader = require("ncpflash.bootheader")
local ota = require("ncpflash.ota")
local image = require("ncpflash.core.image")
local util = require("ncpflash.util")
local errors = require("ncpflash.errors")

local function describe(data, file)
  if partition.is_table(data) then
    local pt = partition.parse(data, { file = file })
    return "partition", partition.describe(pt), { count = pt.count, age = pt.age }
  elseif bootheader.is_header(data) then
    local h = bootheader.parse(data, { file = file })
    return "bootheader", bootheader.describe(h), { signed = h.signed, image_len = h.image_len,
      image_offset = h.image_offset, sha_ok = h.image_sha_ok, problems = #h.problems,
      public_key_sha256 = h.public_key_hash and image.hex(h.public_key_hash) }
  elseif ota.is_ota(data) then
    local h = ota.parse(data, { file = file })
    local lines = ota.describe(h)
    local f = { type = h.type, version = h.version, payload_len = h.payload_len, sha_ok = h.payload_sha_ok,
      problems = #h.problems }
    if h.payload and bootheader.is_header(h.payload) then
      local bh = bootheader.parse(h.payload, { file = file .. " (payload)" })
      for _, l in ipairs(bootheader.describe(bh)) do lines[#lines + 1] = "  " .. l end
      f.problems = f.problems + #bh.problems
    end
    return "ota", lines, f
  end
  errors.raise("input", file .. ": not a partition table (BFPT), boot header (BFNP) or OTA file (QCC74X_OTA)",
    { file = file })
end

return {
  help = "image info FILE: describe a partition table, boot-header image or .ota file",
  args = {
    { "action", type = "choice", choices = { "info" }, help = "what to do (info)" },
    { "file", type = "file", help = "the file" },
  },
  run = function(ctx, a)
    local data = util.readfile(a.file, "image")
    local kind, lines, fields = describe(data, a.file)
    fields.command, fields.kind, fields.file, fields.size = "image", kind, a.file, #data
    fields.sha256 = image.hex(image.sha256(data))
    table.insert(lines, 1, string.format("%s: %d bytes, SHA-256 %s", a.file, #data, fields.sha256))
    fields.summary = lines
    ctx.ev:result(fields)
    if (fields.problems or 0) > 0 then
      errors.raise("input", a.file .. ": " .. fields.problems .. " problem(s) found (see above)", { file = a.file })
    end
  end,
}
