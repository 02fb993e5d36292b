/* fuzz_check.h - FZ_CHECK, shared by the fuzz targets. */
#ifndef INFERGW_FUZZ_CHECK_H
#define INFERGW_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant the parser promised broke: report it and crash so libFuzzer
 * keeps the input. */
#define FZ_CHECK(cond)                                                                     \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,  \
				#cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)

#endif
