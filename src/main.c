/* main.c - ncpflash entry point: hands the arguments to the Lua host. */
#include "host.h"

int main(int argc, char **argv)
{
	return host_run(argc, argv);
}
