/*
 * fuzz_repository.c - libFuzzer target for the model repository request
 * bodies (gateway/api/repository.c): the input, as an exact-size copy, is
 * parsed as an index, an unload and a load body.  Invariants: every refusal
 * says why (err set, NUL-terminated, bounded), a load that parses carries
 * only values its keys allow (preferred sizes ascending and positive, at
 * most 8 of them, a batch limit >= 1), and a load without config clears
 * the override.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "repository.h"

static char *fz_copy(const uint8_t *p, size_t n)
{
	char *b = malloc(n ? n : 1);

	if (!b)
		abort();
	if (n)
		memcpy(b, p, n);
	return b;
}

static void fz_check_err(int rc, const char *err, size_t errlen)
{
	FZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc)
		FZ_CHECK(err[0] && strnlen(err, errlen) < errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fz_copy(data, size), err[512];
	struct repo_override ov;
	bool ready = false, has_config = true;
	int rc;

	err[0] = 0;
	fz_check_err(repo_parse_index(body, size, &ready, err, sizeof(err)), err, sizeof(err));
	err[0] = 0;
	fz_check_err(repo_parse_unload(body, size, err, sizeof(err)), err, sizeof(err));
	err[0] = 0;
	memset(&ov, 0xa5, sizeof(ov));
	rc = repo_parse_load("digits", body, size, &ov, &has_config, err, sizeof(err));
	fz_check_err(rc, err, sizeof(err));
	if (rc == 0 && !has_config)
		FZ_CHECK(ov.set == 0);
	if (rc == 0 && has_config) {
		if (ov.set & REPO_MAX_BATCH)
			FZ_CHECK(ov.max_batch >= 1);
		if (ov.set & REPO_PREFERRED) {
			FZ_CHECK(ov.n_preferred >= 0 && ov.n_preferred <= 8);
			for (int i = 0; i < ov.n_preferred; i++)
				FZ_CHECK(ov.preferred[i] >= 1 && (i == 0 || ov.preferred[i] > ov.preferred[i - 1]));
		}
	}
	free(body);
	return 0;
}
