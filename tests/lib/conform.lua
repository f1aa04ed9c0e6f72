-- conform: the conformance comparison (issue 14, docs/conformance.md). Turns an ncpsim --log
-- (the vendor's recordings in ../shared/conformance/vendor/*/ncpsim.log were written by our
-- ncpsim, so they read the same as an ncpflash run's) into a normalised command sequence,
-- diffs two sequences, and checks the differences against the machine-readable list of
-- deliberate differences in docs/conformance.md.
--
-- A normalised item is one string per command, or per run of writes/reads of one region:
--   sync 500000 | 10 boot_info | 23 timeout=10000 | 22 baud=2000000 | 42 mac | 36 jedec
--   3B set=0x01014108 | 3B set=0x01014108 cfg=GT25Q32A | 3C chip_erase
--   30 erase 0x00010000-0x003fffff | 3F write 0x00010000 max=2052 | 31 write 0x0000e000 max=312
--   3A check | 60 xip_start | 3E sha 0x00010000+1267264 | 61 xip_finish
--   32 read 0x00000000+65536 max=2048 | 41 efuse_read 0x000+512 | 80 efuse_write 0x100+256
-- A reply other than OK is appended: " -> FL 0102", " -> (no reply)".
local codec = require "ncpflash.core.codec"

local M = {}

-- The 0x3B payloads (4 + 84 bytes) of a vendor wire.trace, in order.
function M.trace_blocks(path)
  local out = {}
  local f = io.open(path, "r")
  if not f then return out end
  for line in f:lines() do
    local hex = line:match("^%s*[%d.]+ TX 3b(%x+)$")
    if hex and #hex == 2 * 91 then out[#out + 1] = codec.unhex(hex:sub(7)) end
  end
  f:close()
  return out
end

-- A name for an 84-byte block: "flash_para.bin" for ST's block when `st_block` is given, the
-- flash-table entry of `jedec` (default C4 60 16, the ST67W611M1's) when it is that, else the
-- first (by name) table entry it equals, else its CRC-32.
local function block_name(block, st_block, jedec)
  if st_block and block == st_block then return "flash_para.bin" end
  local rc = require "ncpflash.romcodec"
  local own = rc.flash_part(jedec or "c46016")
  if own and own.block == block then return own.name end
  local names = {}
  for id in pairs(require("ncpflash.chips.bl616_flash").parts) do
    local e = rc.flash_part(id)
    if e.block == block then names[#names + 1] = e.name end
  end
  table.sort(names)
  return names[1] or ("crc32:%08x"):format(codec.crc32(block))
end

local function reply_suffix(rep)
  if rep:match("^OK") then return "" end
  local fl = rep:match("^FL (%x+)")
  if fl then return " -> FL " .. fl end
  return " -> " .. rep:gsub(" @.*", "")
end

--- Normalise log lines (a list of strings). opts.blocks: the 0x3B payloads to use for
--- 88-byte 0x3B lines without a cfg= field (the vendor's logs: from its wire.trace);
--- opts.st_block: ST's flash_para.bin, to name it; opts.jedec: the part's id (hex).
function M.normalize(lines, opts)
  opts = opts or {}
  local items, run = {}, nil
  local nblock = 0
  local function flush()
    if run then
      local s
      if run.op == "32" then
        s = ("32 read 0x%08x+%d max=%d"):format(run.addr, run.bytes, run.max)
      else
        s = ("%s write 0x%08x max=%d"):format(run.op, run.addr, run.max)
      end
      items[#items + 1] = s .. run.fail
      run = nil
    end
  end
  for _, l in ipairs(lines) do
    local baud = l:match("^handshake baud=(%d+) %-> OK")
    local op, name, plen, note, rep = l:match("^0x(%x%x) (%S+) plen=(%d+)(.-) %-> (.*)$")
    if baud then
      flush()
      items[#items + 1] = "sync " .. baud
    elseif op then
      plen = tonumber(plen)
      local suffix = reply_suffix(rep)
      local addr = tonumber(note:match("addr=0x(%x+)") or "", 16)
      if op == "3F" or op == "31" then
        local newstream = note:find("new%-stream") ~= nil
        local dest = op == "3F" and addr and (addr & 0x7FFFFFFF) or addr
        local cont = run and run.op == op and suffix == ""
          and (op == "3F" and not newstream or op == "31" and dest == run.next)
        if not cont then
          flush()
          run = { op = op, addr = dest or 0, max = 0, bytes = 0, fail = "" }
        end
        run.max = math.max(run.max, plen)
        run.bytes = run.bytes + plen - 4
        run.next = (dest or 0) + plen - 4
        if suffix ~= "" then run.fail = suffix; flush() end
      elseif op == "32" then
        local len = tonumber(note:match("len=(%d+)") or "0")
        if not (run and run.op == "32" and addr == run.next and suffix == "") then
          flush()
          run = { op = "32", addr = addr or 0, max = 0, bytes = 0, fail = "" }
        end
        run.max = math.max(run.max, len)
        run.bytes = run.bytes + len
        run.next = (addr or 0) + len
        if suffix ~= "" then run.fail = suffix; flush() end
      else
        flush()
        local s
        if op == "10" then s = "10 boot_info"
        elseif op == "23" then s = "23 timeout=" .. (note:match("timeout_ms=(%d+)") or "?")
        elseif op == "22" then s = "22 baud=" .. (note:match("baud=(%d+)") or "?")
        elseif op == "42" then s = "42 mac"
        elseif op == "36" then s = "36 jedec"
        elseif op == "3C" then s = "3C chip_erase"
        elseif op == "3A" then s = "3A check"
        elseif op == "60" then s = "60 xip_start"
        elseif op == "61" then s = "61 xip_finish"
        elseif op == "21" then s = "21 reset"
        elseif op == "90" then s = "90 ecdh_pk"
        elseif op == "91" then s = "91 challenge"
        elseif op == "3B" then
          s = "3B set=" .. (note:match("flash_set=(0x%x+)") or "?")
          if plen == 88 then
            nblock = nblock + 1
            local hex = note:match("cfg=(%x+)")
            local block = hex and codec.unhex(hex) or (opts.blocks and opts.blocks[nblock]
              and opts.blocks[nblock]:sub(5))
            s = s .. " cfg=" .. (block and block_name(block, opts.st_block, opts.jedec) or "?")
          elseif plen ~= 4 then
            s = s .. " plen=" .. plen
          end
        elseif op == "30" then
          s = ("30 erase %s-%s"):format(note:match("start=(0x%x+)") or "?", note:match("end=(0x%x+)") or "?")
        elseif op == "3E" or op == "3D" then
          s = ("%s sha 0x%08x+%s"):format(op, addr or 0, note:match("len=(%d+)") or "?")
        elseif op == "41" or op == "81" or op == "40" or op == "80" then
          local kind = (op == "41" or op == "81") and "efuse_read" or "efuse_write"
          s = ("%s %s %s+%s"):format(op, kind, note:match("start=(0x%x+)") or "?", note:match("len=(%d+)") or "?")
        else
          s = ("%s %s plen=%d"):format(op, name, plen)
        end
        items[#items + 1] = s .. suffix
      end
    end
  end
  flush()
  return items
end

local function read_lines(path)
  local out = {}
  local f = io.open(path, "r")
  if not f then return nil end
  for l in f:lines() do out[#out + 1] = l end
  f:close()
  return out
end

--- The normalised sequence of a recorded flow directory (ncpsim.log + wire.trace).
function M.vendor(dir, opts)
  local lines = assert(read_lines(dir .. "/ncpsim.log"), dir .. "/ncpsim.log")
  return M.normalize(lines, { blocks = M.trace_blocks(dir .. "/wire.trace"), st_block = opts and opts.st_block })
end

--- The normalised sequence of an ncpsim log file of our own run.
function M.ours(log_path, opts)
  return M.normalize(assert(read_lines(log_path), log_path), opts)
end

-- Region groups (from an 88-byte 0x3B to the 0x61 that ends its verify) sorted by the first
-- write address: for flows whose region order may differ (rule side "order").
function M.sort_regions(items)
  local out, groups, cur = {}, {}, nil
  local first
  for i, it in ipairs(items) do
    if it:match("^3B set=%S+ cfg=") then
      cur = { start = i, items = {} }
      first = first or #out + 1
    end
    if cur then
      cur.items[#cur.items + 1] = it
      if it:match("^61 ") then
        cur.key = 0
        for _, x in ipairs(cur.items) do
          local a = x:match("^3[1F] write 0x(%x+)")
          if a then cur.key = tonumber(a, 16); break end
        end
        groups[#groups + 1] = cur
        cur = nil
      end
    else
      out[#out + 1] = it
    end
  end
  if cur then for _, x in ipairs(cur.items) do out[#out + 1] = x end end
  table.sort(groups, function(a, b) return a.key < b.key end)
  local merged = {}
  for _, g in ipairs(groups) do for _, x in ipairs(g.items) do merged[#merged + 1] = x end end
  if first then
    for i = #merged, 1, -1 do table.insert(out, first, merged[i]) end
  end
  return out
end

--- Longest-common-subsequence diff: list of {side = "vendor"|"ours", item =, at =} for the
--- items only one side has, in order.
function M.diff(a, b)
  local n, m = #a, #b
  local L = {}
  for i = n + 1, 1, -1 do
    L[i] = {}
    for j = m + 1, 1, -1 do
      if i > n or j > m then L[i][j] = 0
      elseif a[i] == b[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local out, i, j = {}, 1, 1
  while i <= n or j <= m do
    if i <= n and j <= m and a[i] == b[j] then
      i, j = i + 1, j + 1
    elseif j > m or (i <= n and L[i + 1][j] >= L[i][j + 1]) then
      out[#out + 1] = { side = "vendor", item = a[i], at = i }
      i = i + 1
    else
      out[#out + 1] = { side = "ours", item = b[j], at = j }
      j = j + 1
    end
  end
  return out
end

--- The rules of docs/conformance.md: the lines of its ```conformance block,
--- "ID FLOWS SIDE PATTERN" (FLOWS: comma list or *; SIDE: vendor | ours | order).
function M.rules(md_text)
  local block = md_text:match("```conformance\n(.-)\n```")
  assert(block, "docs/conformance.md has no ```conformance block")
  local out = {}
  for line in (block .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("%S") and not line:match("^%s*#") then
      local id, flows, side, pat = line:match("^%s*(%S+)%s+(%S+)%s+(%S+)%s*(.-)%s*$")
      assert(id and (side == "vendor" or side == "ours" or side == "order"),
        "bad conformance rule line: " .. line)
      local set = {}
      for f in flows:gmatch("[^,]+") do set[f] = true end
      out[#out + 1] = { id = id, flows = set, side = side, pattern = pat, used = 0 }
    end
  end
  return out
end

local function applies(rule, flow) return rule.flows["*"] or rule.flows[flow] end

--- Compare our run with a recorded flow under the rules: returns the unexplained differences
--- (list of strings) and the full diff. Rules that allowed something get .used incremented.
function M.compare(flow, vendor_items, our_items, rules)
  for _, r in ipairs(rules) do
    if r.side == "order" and applies(r, flow) then
      vendor_items, our_items = M.sort_regions(vendor_items), M.sort_regions(our_items)
      r.used = r.used + 1
    end
  end
  local d = M.diff(vendor_items, our_items)
  local bad = {}
  for _, x in ipairs(d) do
    local why
    for _, r in ipairs(rules) do
      if r.side == x.side and applies(r, flow) and x.item:match(r.pattern) then why = r; break end
    end
    if why then
      why.used = why.used + 1
    else
      bad[#bad + 1] = ("%s: %s only: %s"):format(flow, x.side == "vendor" and "vendor" or "ncpflash", x.item)
    end
  end
  return bad, d
end

-- ---- running ncpflash for each recorded flow ----------------------------------------------

M.CONF = "../shared/conformance"
M.FLOWS = { "st_t02", "mfg", "plain", "erase", "cerase", "pd", "read", "efr", "ef2" }

-- What ncpflash is asked to do for each recorded flow (../shared/conformance/README.md), and
-- the ncpsim it runs on. fixtures = true: needs ST's release folder.
local function flow_spec(name, helpers, dir)
  local bin = helpers.ncp_binaries
  local t02 = bin and bin .. "/mission_t02_flash_prog_cfg_v2.0.89.ini"
  if name == "st_t02" then
    return { fixtures = true, argv = { "flash", "--config", t02 } }
  elseif name == "mfg" then
    -- erase = 1 on a module whose flash holds old data everywhere: no range reads erased, so
    -- every region's range is erased as a whole, as the vendor's flasher does (on blank flash
    -- ncpflash skips what already reads erased: docs/conformance.md "erase-skip")
    return { fixtures = true, old_data = true,
      argv = { "flash", "--config", bin and bin .. "/mfg_flash_prog_cfg_v2.0.89.ini" } }
  elseif name == "plain" then
    -- the recording's three files: compressible 100000 bytes, random 3000, compressible 69960
    local a = helpers.writefile(dir .. "/c100k.bin", helpers.compressible_bytes(100000, 3))
    local b = helpers.writefile(dir .. "/r3k.bin", helpers.random_bytes(3000, 4))
    local c = helpers.writefile(dir .. "/c70k.bin", helpers.compressible_bytes(69960, 5))
    return { old_data = true, argv = { "flash", "--erase", "1", "0x200000", a, "0x220000", b, "0x230000", c } }
  elseif name == "erase" then
    return { argv = { "erase", "0x10000", "0x3F0000" } }
  elseif name == "cerase" then
    return { argv = { "erase", "--all" } }
  elseif name == "pd" then
    return { argv = { "erase", "--all" }, sim = { "--realtime", "--fault", "pd:100", "--chip-erase-s", "1.5" } }
  elseif name == "read" then
    return { argv = { "read", "0", "0x10000", dir .. "/read.bin" } }
  elseif name == "efr" then
    return { argv = { "efuse", "read" } }
  elseif name == "ef2" then
    local pem = dir .. "/test-key.pem"
    local sys = require "ncpflash.core.sys"
    local pid = assert(sys.spawn({ helpers.build .. "/ncpsim", "--print-test-key" }, { stdout = pem }))
    sys.wait(pid, 10)
    -- on a module that holds ST's signed t02 set (the secure-boot guard checks the images)
    return { fixtures = true, prepare = { "flash", "--config", t02 },
      argv = { "efuse", "burn", bin and bin .. "/efusedata.bin", "--root-key", pem,
      "--audit", dir .. "/audit.jsonl", "--confirm-efuse-burn", "--yes" } }
  end
  error("unknown flow " .. name)
end

--- Run ncpflash for `name` on a fresh ncpsim (extra sim args: opts.sim); returns
--- {items=, vendor=, result=(helpers.run's), log=} or nil and the reason to skip.
function M.run_flow(name, helpers, opts)
  opts = opts or {}
  local dir = helpers.tmpdir()
  local spec = flow_spec(name, helpers, dir)
  if spec.fixtures and not helpers.have_fixtures() then return nil, "ST's release folder not present" end
  local state = dir .. "/state"
  require("ncpflash.core.sys").mkdirs(state)
  if spec.old_data then helpers.writefile(state .. "/flash.bin", string.rep("\0", 4 * 1024 * 1024)) end
  local args = { "--state", state }
  for _, a in ipairs(spec.sim or {}) do args[#args + 1] = a end
  for _, a in ipairs(opts.sim or {}) do args[#args + 1] = a end
  if spec.prepare then
    local pre <close> = helpers.ncpsim(args)
    local argv = { "--port", pre.url }
    for _, a in ipairs(spec.prepare) do argv[#argv + 1] = a end
    local r = helpers.run(argv, { timeout = 300 })
    pre:stop()
    if r.code ~= 0 then error(name .. ": preparing the module failed: " .. r.err) end
  end
  local sim <close> = helpers.ncpsim(args)
  local argv = { "--port", sim.url }
  for _, a in ipairs(opts.global or {}) do argv[#argv + 1] = a end
  for _, a in ipairs(spec.argv) do argv[#argv + 1] = a end
  local r = helpers.run(argv, { timeout = 300 })
  sim:stop()
  local st_block
  if helpers.have_fixtures() then
    local f = io.open(helpers.fixtures .. "/Binaries/QConn_Flash/chips/qcc743/efuse_bootheader/flash_para.bin", "rb")
    if f then st_block = f:read("a"); f:close() end
  end
  return { result = r, log = sim.log, sim = sim,
    items = M.ours(sim.log, { st_block = st_block }),
    vendor = M.vendor(M.CONF .. "/vendor/" .. name, { st_block = st_block }) }
end

return M
