/*
 * l_port.h - what other Lua bindings (l_isp.c) use of ncpflash.core.port:
 * the port userdata and raising variants of the port.h calls.
 *
 *	struct port *p = ncp_checkport(L, 1);      raises on a closed port
 *	ncp_port_read(L, p, buf, len, 0.5);        bytes read (short = deadline)
 *	ncp_port_write(L, p, frame, flen);         whole buffer or raise
 *
 * They raise ncp_error(L, "port"|"interrupted", ...) with field url=.
 */
#ifndef NCP_L_PORT_H
#define NCP_L_PORT_H

#include <lua.h>

#include "port.h"

#define NCP_PORT_MT "ncpflash.port"

struct port *ncp_checkport(lua_State *L, int idx);
size_t ncp_port_read(lua_State *L, struct port *p, uint8_t *buf, size_t n,
		     double timeout_s);
void ncp_port_write(lua_State *L, struct port *p, const uint8_t *buf, size_t n);

#endif
