/*
 * main.c - infergw-agent: the command line; everything else is agt_run.
 */
#include "agent.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	struct agt_opts o;
	char err[256];
	int rc = agt_opts_parse(&o, argc, argv, err, sizeof(err));

	switch (rc) {
	case AGT_ARGS_HELP:
		agt_usage(stdout);
		return 0;
	case AGT_ARGS_VERSION:
		printf("%s %s\nprotocol: %d\n", AGT_SW_NAME, infergw_version, AGP_VERSION);
		return 0;
	case AGT_ARGS_RUN:
		return agt_run(&o);
	default:
		fprintf(stderr, "infergw-agent: %s\n(infergw-agent --help for the options)\n", err);
		return 2;
	}
}
