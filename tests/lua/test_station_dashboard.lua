-- The station's dashboard in headless Chromium (Debian's chromium): the tiles' states and units
-- read from the page's DOM (after the event stream has updated it), and a screenshot kept in the
-- build folder (build/station-dashboard.png).  Skipped, saying so, when Chromium is not installed.
local sys = require "ncpflash.core.sys"
local SL = require "stationlib"

local why_not = not sys.stat("/usr/bin/chromium") and "chromium is not installed"
  or (not sys.stat("/usr/bin/chromedriver") and "chromium-driver is not installed") or nil
skip_if(why_not, tostring(why_not) .. " (tools/deps.sh installs chromium and chromium-driver as root)")

local PROBE = { interval = 0.1, max_interval = 0.3, removal_interval = 0.15, removal_misses = 2 }

test("dashboard: tiles pass/fail/running/waiting from the DOM, an SSE update, a screenshot", function()
  local dir = helpers.tmpdir()
  helpers.writefile(dir .. "/fw.bin", helpers.random_bytes(96 * 1024, 51))
  local good <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x11) }
  local bad <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x12), "--fault", "fl:31:0005:0",
    "--fault", "fl:3F:0005:0" }
  -- every write frame of this unit takes 0.4 s: the tile shows a job in progress (about 10 s)
  local slow <close> = helpers.ncpsim{ "--boot-info", helpers.boot_info(0x13), "--fault", "stall:31:0.4:0",
    "--fault", "stall:3F:0.4:0" }
  local file = SL.write_station(dir, { station = "line-3", operator = "maria", http = "127.0.0.1:0", probe = PROBE,
    ports = { good.url, bad.url, slow.url, "rfc2217://127.0.0.1:" .. SL.free_port() },
    job = { name = "mission_t02-2.0.89", regions = { { 0x10000, "fw.bin" } } } })
  local st <close> = SL.start(file)
  SL.wait_slot(st, 1, "pass")
  SL.wait_slot(st, 2, "fail")
  SL.wait_slot(st, 3, "running", 10, function(s) return s.stage == "write" and (s.progress or 0) > 0.1 end)
  eq(SL.status(st).slots[4].state, "waiting")

  -- the page loads nothing from the network: no absolute URL in what the station serves
  for _, p in ipairs({ "/", "/station.js", "/station.css" }) do
    local code, body = SL.api(st, "GET", p)
    eq(code, 200, p)
    ok(not body:find("https?://"), p .. " names no external URL")
  end

  -- load the page in Chromium; then change slot 4 while it is open: the change must reach the page
  -- through the event stream
  local br <close> = assert(SL.browser({ width = 1280, height = 760 }))
  br:go(st.url .. "/#token=" .. st.token)
  local TILES = [[return Array.from(document.querySelectorAll("article.tile")).map(function (t) {
    return [t.getAttribute("data-slot"), t.getAttribute("data-state"), t.getAttribute("data-unit"), t.className]; })]]
  local function tiles_now()
    local t = {}
    for _, row in ipairs(br:run(TILES)) do
      t[tonumber(row[1])] = { state = row[2], unit = row[3], class = row[4] }
    end
    return t
  end
  SL.wait_for("the page's event stream", function()
    return br:run([[return document.getElementById("conn").getAttribute("data-conn")]]) == "live"
  end, 10)
  eq(tiles_now()[4].state, "waiting")
  local code = SL.api(st, "POST", "/api/slots/4/stop", st.token)
  eq(code, 200)
  SL.wait_for("slot 4 stopped on the page", function() return tiles_now()[4].state == "stopped" end, 5)
  local tiles = tiles_now()
  local html = br:source()
  eq(tiles[1] and tiles[1].state, "pass", html:sub(1, 300))
  eq(tiles[1].unit, "40:82:7b:03:d2:11")
  eq(tiles[1].class, "tile state-pass")
  eq({ tiles[2].state, tiles[2].unit }, { "fail", "40:82:7b:03:d2:12" })
  eq({ tiles[3].state, tiles[3].unit }, { "running", "40:82:7b:03:d2:13" })
  match(html, 'id="c%-pass">1<')
  match(html, 'id="c%-fail">1<')
  match(html, 'id="c%-yield">50%.0 %%<')
  match(html, 'data%-conn="live"')
  match(html, "FL 0x0005 FLASH_WRITE_ADDR_ERROR")
  match(html, 'id="station%-name">line%-3<')
  ok(not html:find("read%-only: open the dashboard URL"), "the token from the URL enables control")

  -- a screenshot for people (kept in the build folder)
  local shot = helpers.build .. "/station-dashboard.png"
  os.remove(shot)
  local png = br:screenshot(shot)
  eq(png:sub(1, 8), "\137PNG\r\n\26\n")
  ok(#png > 20000, "a real picture (" .. #png .. " bytes)")
  local w = string.unpack(">I4", png, 17)
  eq(w, 1280)
end)
