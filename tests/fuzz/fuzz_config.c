/*
 * fuzz_config.c - libFuzzer target for cfg_load: the YAML reader
 * (gateway/core/ytree.c) and every key's validation (gateway/core/config.c).
 * Each input is written to one memfd, loaded through /proc/self/fd/N,
 * then freed (and, when valid, dumped with cfg_to_json).  FUZZ_VERBOSE=1
 * prints each rejection (handy when writing seeds).
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c;
	char *err = NULL;
	size_t off = 0;

	if (fd < 0) {
		fd = memfd_create("infergw-fuzz-config.yaml", 0);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0)
		abort();
	while (off < size) {
		ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);

		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	c = cfg_load(path, &err);
	if (c) {
		json_t *j = cfg_to_json(c);

		if (!j)
			abort();
		json_decref(j);
		cfg_free(c);
		free(err);	/* should be NULL; freeing keeps leaks out of the report */
	} else {
		if (!err || !err[0]) {
			fprintf(stderr, "cfg_load failed without a message\n");
			abort();
		}
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "cfg_load: %s\n", err);
		free(err);
	}
	return 0;
}
