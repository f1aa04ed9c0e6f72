/*
 * l_station_win.c - the Windows build's ncpflash.core.db and
 * ncpflash.core.http: the factory station (SQLite records, the dashboard's
 * HTTP server: l_db.c, l_http.c) is built for Linux only, so requiring
 * either raises a "usage" error that says so. Everything else (flash,
 * erase, eFuse, several devices at once) is in the Windows build.
 */
#include "host.h"

static int linux_only(lua_State *L, const char *what)
{
	return ncp_error(L, "usage", "%s is not in the Windows build of ncpflash: the factory "
			 "station runs on Linux (README \"Install\", Windows)", what);
}

int luaopen_ncpflash_core_db(lua_State *L)
{
	return linux_only(L, "ncpflash.core.db (the station's SQLite records)");
}

int luaopen_ncpflash_core_http(lua_State *L)
{
	return linux_only(L, "ncpflash.core.http (the station's dashboard)");
}
