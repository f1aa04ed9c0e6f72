-- ncpflash.station.records: the station's unit database (SQLite through ncpflash.core.db).
--
-- One file per station, WAL journal, synchronous = FULL: every finished attempt is on disk when
-- its COMMIT returns, so a crash or a power cut loses at most the attempt that was running; the
-- next start marks that one `interrupted` (recover()).  The schema (README "Production station"):
--
--   sessions  one row per station run: station, operator, station file and its SHA-256, image-set
--             SHA-256, job name and command, ncpflash version, host, pid, started/ended, end reason
--   attempts  one row per unit attempt: session, slot, port, chip id, MAC, unit_attempt (1 for the
--             first attempt of that chip id in this database), is_repeat, image-set SHA-256, job,
--             station, operator, started/ended, seconds, result (running, pass, fail, stopped,
--             interrupted), exit code, error code and message, bytes written, log path
--   regions   one row per region of an attempt: name, address, size, SHA-256, outcome (written,
--             unchanged, resumed, failed, interrupted, started, not-reached), detail
local db = require "ncpflash.core.db"
local sys = require "ncpflash.core.sys"

local M = {}
M.SCHEMA_VERSION = 1
M.RESULTS = { "running", "pass", "fail", "stopped", "interrupted" }

local SCHEMA = [[
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY,
  station TEXT NOT NULL,
  operator TEXT,
  station_file TEXT NOT NULL,
  station_file_sha256 TEXT NOT NULL,
  image_set_sha256 TEXT NOT NULL,
  job_name TEXT NOT NULL,
  job_command TEXT NOT NULL,
  ncpflash_version TEXT NOT NULL,
  host TEXT,
  pid INTEGER,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  end_reason TEXT
);
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  slot INTEGER NOT NULL,
  port TEXT NOT NULL,
  chip_id TEXT,
  mac TEXT,
  unit_attempt INTEGER NOT NULL,
  is_repeat INTEGER NOT NULL CHECK (is_repeat IN (0, 1)),
  image_set_sha256 TEXT NOT NULL,
  job_name TEXT NOT NULL,
  station TEXT NOT NULL,
  operator TEXT,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  seconds REAL,
  result TEXT NOT NULL CHECK (result IN ('running', 'pass', 'fail', 'stopped', 'interrupted')),
  exit_code INTEGER,
  error_code TEXT,
  error_message TEXT,
  bytes_written INTEGER,
  log_path TEXT
);
CREATE INDEX IF NOT EXISTS attempts_chip ON attempts (chip_id);
CREATE INDEX IF NOT EXISTS attempts_session ON attempts (session_id);
CREATE TABLE IF NOT EXISTS regions (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  name TEXT NOT NULL,
  address INTEGER NOT NULL,
  size INTEGER,
  sha256 TEXT,
  outcome TEXT NOT NULL,
  detail TEXT,
  PRIMARY KEY (attempt_id, name, address)
);
]]

--- Wall-clock time as ISO 8601 UTC with milliseconds.  The wall clock is read once (os.time) and
--- advanced with the monotonic clock, so times within one run never go backwards.
local wall0, mono0 = os.time(), sys.now()
function M.now_iso(at)
  local t = wall0 + ((at or sys.now()) - mono0)
  local s = math.floor(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. (".%03dZ"):format(math.floor((t - s) * 1000))
end

local Records = {}
Records.__index = Records

--- Open (create) the database at path.  opts.readonly: for reports (no schema changes).
function M.open(path, opts)
  opts = opts or {}
  local conn = db.open(path, { readonly = opts.readonly, timeout = opts.timeout or 10 })
  local self = setmetatable({ conn = conn, path = path }, Records)
  if not opts.readonly then
    local mode = conn:query("PRAGMA journal_mode = WAL")[1]
    self.journal_mode = mode and mode.journal_mode
    conn:exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
    conn:exec("BEGIN IMMEDIATE;" .. SCHEMA .. "COMMIT")
    local v = conn:query("SELECT value FROM meta WHERE key = 'schema_version'")[1]
    if not v then
      conn:run("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", tostring(M.SCHEMA_VERSION))
    elseif tonumber(v.value) ~= M.SCHEMA_VERSION then
      conn:close()
      require("ncpflash.errors").raise("input", ("%s: schema version %s, this ncpflash writes %d"):format(path,
        v.value, M.SCHEMA_VERSION))
    end
  end
  return self
end

function Records:close() self.conn:close() end
Records.__close = Records.close

-- Run fn inside one transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK on error).
function Records:tx(fn)
  self.conn:exec("BEGIN IMMEDIATE")
  local ok, res = pcall(fn)
  if not ok then
    pcall(self.conn.exec, self.conn, "ROLLBACK")
    error(res, 0)
  end
  self.conn:exec("COMMIT")
  return res
end

--- Attempts a crash or power cut left `running`, and sessions left open: mark them interrupted.
--- Returns the list of attempts so marked ({id, slot, chip_id, started_at}).
function Records:recover(now)
  return self:tx(function()
    local rows = self.conn:query("SELECT id, slot, port, chip_id, mac, started_at FROM attempts "
      .. "WHERE result = 'running'")
    self.conn:run([[UPDATE attempts SET result = 'interrupted', error_code = 'interrupted',
      error_message = 'the station stopped during this attempt (crash, kill or power cut): the unit''s flash '
        || 'content is unknown; flash it again' WHERE result = 'running']])
    self.conn:run("UPDATE sessions SET ended_at = ?, end_reason = 'crashed (found open at the next start)' "
      .. "WHERE ended_at IS NULL", now or M.now_iso())
    return rows
  end)
end

--- A new session row; returns its id.
function Records:begin_session(s)
  local _, id = self.conn:run([[INSERT INTO sessions (station, operator, station_file, station_file_sha256,
    image_set_sha256, job_name, job_command, ncpflash_version, host, pid, started_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], s.station, s.operator, s.station_file, s.station_file_sha256,
    s.image_set_sha256, s.job_name, s.job_command, s.version, s.host, s.pid, s.started_at or M.now_iso())
  return id
end

function Records:end_session(id, reason)
  self.conn:run("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?", M.now_iso(), reason, id)
end

--- Start an attempt (result 'running'); returns id, unit_attempt, is_repeat.  A unit is its chip
--- id: the same chip id again (in any session of this database) is a repeat.
function Records:begin_attempt(a)
  return table.unpack(self:tx(function()
    local n = 0
    if a.chip_id then
      n = self.conn:query("SELECT count(*) AS n FROM attempts WHERE chip_id = ?", a.chip_id)[1].n
    end
    local rep = n > 0 and 1 or 0
    local _, id = self.conn:run([[INSERT INTO attempts (session_id, slot, port, chip_id, mac, unit_attempt,
      is_repeat, image_set_sha256, job_name, station, operator, started_at, result)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')]], a.session_id, a.slot, a.port, a.chip_id, a.mac,
      n + 1, rep, a.image_set_sha256, a.job_name, a.station, a.operator, a.started_at or M.now_iso())
    return { id, n + 1, rep == 1 }
  end))
end

--- Finish an attempt and write its regions, in one transaction.
function Records:finish_attempt(id, f, regions)
  self:tx(function()
    self.conn:run([[UPDATE attempts SET chip_id = coalesce(?, chip_id), mac = coalesce(?, mac), ended_at = ?,
      seconds = ?, result = ?, exit_code = ?, error_code = ?, error_message = ?, bytes_written = ?, log_path = ?
      WHERE id = ?]], f.chip_id, f.mac, f.ended_at or M.now_iso(), f.seconds, f.result, f.exit_code, f.error_code,
      f.error_message, f.bytes_written, f.log_path, id)
    for _, r in ipairs(regions or {}) do
      self.conn:run([[INSERT OR REPLACE INTO regions (attempt_id, name, address, size, sha256, outcome, detail)
        VALUES (?, ?, ?, ?, ?, ?, ?)]], id, r.name, r.address, r.size, r.sha256, r.outcome, r.detail)
    end
  end)
end

--- Recent attempts (newest first): opts.limit (default 50), opts.slot, opts.session_id.
function Records:attempts(opts)
  opts = opts or {}
  local where, args = {}, {}
  if opts.slot then where[#where + 1] = "slot = ?"; args[#args + 1] = opts.slot end
  if opts.session_id then where[#where + 1] = "session_id = ?"; args[#args + 1] = opts.session_id end
  if opts.result then where[#where + 1] = "result = ?"; args[#args + 1] = opts.result end
  args[#args + 1] = math.min(math.max(math.tointeger(opts.limit) or 50, 1), 10000)
  return self.conn:query("SELECT * FROM attempts" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "")
    .. " ORDER BY id DESC LIMIT ?", table.unpack(args))
end

function Records:regions(attempt_id)
  return self.conn:query("SELECT * FROM regions WHERE attempt_id = ? ORDER BY address", attempt_id)
end

return M
