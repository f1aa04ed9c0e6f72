-- image info FILE: describe a partition table, a boot-header image or an OTA file.
local partition = require("ncpflash.partition")
local ota = require("ncpflash.ota")
local header = require("ncpflash.header")
local codec = require("ncpflash.core.codec")
local util = require("ncpflash.util")
local errors = require("ncpflash.errors")

-- A boot header is read with the layout whose header CRC fits (`prefer`, the --chip, first), else
-- with `chip`'s (the --chip or the board's): a damaged header is reported against that layout.
local function describe(data, file, prefer, chip)
  if partition.is_table(data) then
    local pt = partition.parse(data, { file = file })
    return "partition", partition.describe(pt), { count = pt.count, age = pt.age }
  elseif header.is_header(data) then
    local c = header.identify(data, prefer) or chip
    local h = header.parse(c, data, { file = file })
    return "bootheader", header.describe(h), { chip = c.name, header_size = h.size, signed = h.signed,
      image_len = h.image_len, image_offset = h.image_offset, segment_count = h.segment_count,
      sha_ok = h.image_sha_ok, problems = #h.problems,
      public_key_sha256 = h.public_key_hash and codec.hex(h.public_key_hash) }
  elseif ota.is_ota(data) then
    local h = ota.parse(data, { file = file })
    local lines = ota.describe(h)
    local f = { type = h.type, version = h.version, payload_len = h.payload_len, sha_ok = h.payload_sha_ok,
      problems = #h.problems }
    if h.payload and header.is_header(h.payload) then
      local bh = header.parse(header.identify(h.payload, prefer) or chip, h.payload, { file = file .. " (payload)" })
      for _, l in ipairs(header.describe(bh)) do lines[#lines + 1] = "  " .. l end
      f.problems = f.problems + #bh.problems
    end
    return "ota", lines, f
  end
  errors.raise("input", file .. ": not a partition table (BFPT), boot header (BFNP) or OTA file (QCC74X_OTA)",
    { file = file })
end

local function create(ctx, a)
  if not a.out then
    errors.raise("usage", "image create APP.bin OUT.bin: the output file is missing")
  end
  local chip = ctx:chip()
  local board = ctx:board()
  if board.chip ~= chip.name then board = nil end      -- board overrides only for its own chip
  local app = util.readfile(a.file, "application")
  if #app == 0 then errors.raise("input", a.file .. ": empty file", { file = a.file }) end
  if header.is_header(app) then
    errors.raise("input", a.file .. ": already starts with a boot header (BFNP); give the raw application binary",
      { file = a.file })
  end
  local out
  if a.ram then
    out = header.build_ram(chip, { { dest = a.ram, data = app } }, { entry = a.entry })
  else
    out = header.build_flash(chip, app, { offset = a.offset, entry = a.entry, board = board })
  end
  local f, err = io.open(a.out, "wb")
  if not f then errors.raise("input", "cannot write " .. a.out .. ": " .. tostring(err), { file = a.out }) end
  f:write(out)
  f:close()
  local h = header.parse(chip, out, { file = a.out })
  local lines = { string.format("%s: %d bytes (%s boot header, %d bytes, for %s%s)", a.out, #out,
    a.ram and "RAM image" or "flash image", chip.header.size, chip.description or chip.name,
    board and (", board " .. board.name) or "") }
  for _, l in ipairs(header.describe(h)) do lines[#lines + 1] = l end
  ctx.ev:result({ command = "image", action = "create", file = a.out, chip = chip.name, size = #out,
    header_size = chip.header.size, image_offset = h.image_offset, image_len = h.image_len,
    sha256 = codec.hex(codec.sha256(out)), summary = lines })
end

return {
  help = "image info FILE | image create APP.bin OUT.bin: describe an image, or wrap a raw application",
  description = "info: describe a partition table, a boot-header image (any chip's layout) or an .ota file.\n"
    .. "create: wrap a raw application binary (as build systems emit it) with the chip's boot header - flash\n"
    .. "and clock configuration from the chip/board files, image SHA-256, all CRCs, unsigned - ready to flash\n"
    .. "(the chip is --chip, or the board's). --ram ADDR makes a RAM image (one segment loaded at ADDR).",
  examples = { "ncpflash --chip bl808 image create build/app.bin app_with_header.bin",
    "ncpflash --chip bl808 --port /dev/ttyUSB0 flash 0x0 app_with_header.bin" },
  args = {
    { "action", type = "choice", choices = { "info", "create" }, help = "info or create" },
    { "file", type = "file", help = "the file (create: the raw application binary)" },
    { "out", type = "path", optional = true, help = "create: the output file" },
    { "--offset", type = "u32", help = "create: offset of the application behind the header (default 0x1000)" },
    { "--entry", type = "u32", help = "create: boot entry address (default: the chip's)" },
    { "--ram", type = "u32", help = "create: a RAM image loaded at this address instead of a flash image" },
  },
  run = function(ctx, a)
    if a.action == "create" then return create(ctx, a) end
    local data = util.readfile(a.file, "image")
    local prefer = ctx.opts.chip and ctx:chip() or nil
    local kind, lines, fields = describe(data, a.file, prefer, ctx:chip())
    fields.command, fields.kind, fields.file, fields.size = "image", kind, a.file, #data
    fields.sha256 = codec.hex(codec.sha256(data))
    table.insert(lines, 1, string.format("%s: %d bytes, SHA-256 %s", a.file, #data, fields.sha256))
    fields.summary = lines
    ctx.ev:result(fields)
    if (fields.problems or 0) > 0 then
      errors.raise("input", a.file .. ": " .. fields.problems .. " problem(s) found (see above)", { file = a.file })
    end
  end,
}
