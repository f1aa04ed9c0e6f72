/*
 * l_db.c - ncpflash.core.db: SQLite databases (Debian's libsqlite3), for the
 * station's unit records (lua/ncpflash/station/records.lua).
 *
 *   db.open(path, {readonly = false, timeout = 5}) -> conn
 *       opens (creates unless readonly) the database; `timeout` (seconds)
 *       is how long a statement waits for another connection's lock
 *       before failing with code "timeout" (sqlite3_busy_timeout)
 *   conn:exec(sql)                  one or more statements, no results
 *   conn:query(sql, ...) -> rows    one statement; `...` bind to ?1, ?2 ...
 *                                   rows = {{column = value, ...}, ...}
 *                                   (INTEGER -> integer, REAL -> float,
 *                                   TEXT/BLOB -> string, NULL -> absent)
 *   conn:run(sql, ...) -> changes, last_insert_rowid      one statement
 *   conn:close()                    also __close and __gc; idempotent
 *
 * Parameters: nil -> NULL, boolean -> 0/1, integer, float, string (bound
 * as TEXT; a string with a NUL byte as BLOB).  Nothing is cached: each
 * call prepares, steps and finalizes its statement, so no statement can
 * outlive its connection.
 *
 * Errors: a file that is not a database, or that cannot be opened, raises
 * "input"; a lock still held after the timeout raises "timeout"; anything
 * else "internal"; the message carries SQLite's text and the statement.
 * Misuse (a closed connection, a bad parameter type) raises a string error.
 */
#include <string.h>

#include <sqlite3.h>

#include "host.h"

#define DB_MT "ncpflash.db"

struct db_ud {
	sqlite3 *db; /* NULL once closed */
};

static sqlite3 *check_db(lua_State *L)
{
	struct db_ud *u = luaL_checkudata(L, 1, DB_MT);
	if (!u->db)
		luaL_error(L, "database connection is closed");
	return u->db;
}

static const char *code_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "timeout";
	case SQLITE_CANTOPEN:
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return "input";
	default:
		return "internal";
	}
}

/* Raise for rc on db; `what` names the statement (shortened). */
static int db_fail(lua_State *L, sqlite3 *db, int rc, const char *what)
{
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	return ncp_error(L, code_of(rc), "sqlite: %s (in: %.120s)", msg, what);
}

static int l_open(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	int readonly = 0;
	double timeout = 5.0;
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "readonly");
		readonly = lua_toboolean(L, -1);
		lua_getfield(L, 2, "timeout");
		timeout = luaL_optnumber(L, -1, 5.0);
		lua_pop(L, 2);
	}
	if (timeout < 0 || timeout > 3600)
		return luaL_argerror(L, 2, "timeout must be 0..3600 s");
	struct db_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
	u->db = NULL;
	luaL_setmetatable(L, DB_MT);
	int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	flags |= SQLITE_OPEN_FULLMUTEX;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
		lua_pushstring(L, msg);
		sqlite3_close(db);
		return ncp_error(L, code_of(rc), "sqlite: cannot open %s: %s", path, lua_tostring(L, -1));
	}
	u->db = db;
	sqlite3_busy_timeout(db, (int)(timeout * 1000));
	sqlite3_extended_result_codes(db, 1);
	/* A file that is not a database fails only at its first read: find
	 * out now, so that open() names the problem. */
	rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		lua_pushstring(L, sqlite3_errmsg(db));
		sqlite3_close(db);
		u->db = NULL;
		return ncp_error(L, code_of(rc), "sqlite: %s: %s", path, lua_tostring(L, -1));
	}
	return 1;
}

static int l_exec(lua_State *L)
{
	sqlite3 *db = check_db(L);
	const char *sql = luaL_checkstring(L, 2);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(L, db, rc, sql);
	return 0;
}

static void bind_all(lua_State *L, sqlite3 *db, sqlite3_stmt *st, int first, const char *sql)
{
	int top = lua_gettop(L);
	int want = sqlite3_bind_parameter_count(st);
	if (top - first + 1 > want) {
		sqlite3_finalize(st);
		luaL_error(L, "db: %d parameters given, the statement has %d (%.80s)", top - first + 1, want, sql);
	}
	for (int i = first; i <= top; i++) {
		int k = i - first + 1, rc;
		switch (lua_type(L, i)) {
		case LUA_TNIL:
			rc = sqlite3_bind_null(st, k);
			break;
		case LUA_TBOOLEAN:
			rc = sqlite3_bind_int(st, k, lua_toboolean(L, i));
			break;
		case LUA_TNUMBER:
			if (lua_isinteger(L, i))
				rc = sqlite3_bind_int64(st, k, (sqlite3_int64)lua_tointeger(L, i));
			else
				rc = sqlite3_bind_double(st, k, lua_tonumber(L, i));
			break;
		case LUA_TSTRING: {
			size_t n;
			const char *s = lua_tolstring(L, i, &n);
			if (memchr(s, 0, n))
				rc = sqlite3_bind_blob(st, k, s, (int)n, SQLITE_TRANSIENT);
			else
				rc = sqlite3_bind_text(st, k, s, (int)n, SQLITE_TRANSIENT);
			break;
		}
		default:
			sqlite3_finalize(st);
			luaL_error(L, "db: parameter %d is a %s (nil, boolean, number or string only)", k,
				   luaL_typename(L, i));
			return;
		}
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			db_fail(L, db, rc, sql);
		}
	}
}

static sqlite3_stmt *prepare(lua_State *L, sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
	if (rc != SQLITE_OK)
		db_fail(L, db, rc, sql);
	if (!st)
		luaL_error(L, "db: empty statement");
	while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';'))
		tail++;
	if (tail && *tail) {
		sqlite3_finalize(st);
		luaL_error(L, "db: one statement per call (use exec for scripts): %.80s", sql);
	}
	return st;
}

static void push_column(lua_State *L, sqlite3_stmt *st, int c)
{
	switch (sqlite3_column_type(st, c)) {
	case SQLITE_INTEGER:
		lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, c));
		break;
	case SQLITE_FLOAT:
		lua_pushnumber(L, sqlite3_column_double(st, c));
		break;
	case SQLITE_NULL:
		lua_pushnil(L);
		break;
	default: {
		const void *p = sqlite3_column_blob(st, c);
		int n = sqlite3_column_bytes(st, c);
		lua_pushlstring(L, p ? p : "", (size_t)n);
		break;
	}
	}
}

/* Step st to the end; with rows != 0 push a list of row tables.  The
 * statement is finalized on every path (errors included). */
static void step_all(lua_State *L, sqlite3 *db, sqlite3_stmt *st, int rows, const char *sql)
{
	if (rows)
		lua_newtable(L);
	int ncol = sqlite3_column_count(st);
	lua_Integer n = 0;
	for (;;) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			int ext = sqlite3_extended_errcode(db);
			lua_pushstring(L, sqlite3_errmsg(db));
			sqlite3_finalize(st);
			ncp_error(L, code_of(ext), "sqlite: %s (in: %.120s)", lua_tostring(L, -1), sql);
		}
		if (!rows)
			continue;
		lua_createtable(L, 0, ncol);
		for (int c = 0; c < ncol; c++) {
			push_column(L, st, c);
			lua_setfield(L, -2, sqlite3_column_name(st, c));
		}
		lua_rawseti(L, -2, ++n);
	}
	sqlite3_finalize(st);
}

static int l_query(lua_State *L)
{
	sqlite3 *db = check_db(L);
	const char *sql = luaL_checkstring(L, 2);
	sqlite3_stmt *st = prepare(L, db, sql);
	bind_all(L, db, st, 3, sql);
	step_all(L, db, st, 1, sql);
	return 1;
}

static int l_run(lua_State *L)
{
	sqlite3 *db = check_db(L);
	const char *sql = luaL_checkstring(L, 2);
	sqlite3_stmt *st = prepare(L, db, sql);
	bind_all(L, db, st, 3, sql);
	step_all(L, db, st, 0, sql);
	lua_pushinteger(L, sqlite3_changes(db));
	lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(db));
	return 2;
}

static int db_release(lua_State *L)
{
	struct db_ud *u = luaL_checkudata(L, 1, DB_MT);
	if (u->db) {
		/* close_v2: never fails for open statements (there are none
		 * between calls anyway); the last WAL checkpoint runs here */
		sqlite3_close_v2(u->db);
		u->db = NULL;
	}
	return 0;
}

static int l_version(lua_State *L)
{
	lua_pushstring(L, sqlite3_libversion());
	return 1;
}

int luaopen_ncpflash_core_db(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{"exec", l_exec},
		{"query", l_query},
		{"run", l_run},
		{"close", db_release},
		{NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
		{"open", l_open},
		{"version", l_version},
		{NULL, NULL},
	};
	luaL_newmetatable(L, DB_MT);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, db_release);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, db_release);
	lua_setfield(L, -2, "__close");
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	return 1;
}
