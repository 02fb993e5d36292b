/*
 * test_secret.c - token files (backends/secret.c): one token, or two on two
 * lines while a token rotates; what each refusal says; which tokens a
 * hello or a bearer header may carry; copies and wiping.  Each file is a
 * real file in a temporary directory, read as the gateway and the agent
 * read theirs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "secret.h"

#define TOK_A "0123456789abcdef0123456789abcdef"
#define TOK_B "fedcba9876543210FEDCBA9876543210-next"

static char tmpdir[] = "/tmp/infergw-secret-XXXXXX";

static int tmp_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

/* path of a file in tmpdir holding len bytes of text. */
static const char *file_with(const char *text, size_t len)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", tmpdir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

/* The secret read from a file holding text (must succeed). */
static char *read_ok(const char *text)
{
	const char *why = NULL;
	char *s = NULL;

	if (be_secret_read(file_with(text, strlen(text)), &s, &why))
		fail_msg("\"%s\" refused: %s", text, why);
	return s;
}

/* A file holding len bytes of text is refused, why containing want. */
static void read_refused(const char *text, size_t len, const char *want)
{
	const char *why = NULL;
	char *s = (char *)1;

	assert_int_equal(be_secret_read(file_with(text, len), &s, &why), -1);
	assert_null(s);
	assert_non_null(why);
	if (!strstr(why, want))
		fail_msg("why \"%s\" does not say \"%s\"", why, want);
}

static bool accepts(const char *s, const char *given)
{
	return be_secret_accepts(s, given, strlen(given));
}

/* One token, with or without a line end: itself, then the list's end. */
static void test_one_token(void **state)
{
	static const char *const files[] = { TOK_A, TOK_A "\n", TOK_A "\r\n", TOK_A " \n\n\t" };

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		char *s = read_ok(files[i]);

		assert_string_equal(s, TOK_A);
		assert_int_equal(s[strlen(TOK_A) + 1], 0);	/* no second token */
		assert_true(accepts(s, TOK_A));
		assert_false(accepts(s, TOK_B));
		assert_false(accepts(s, ""));
		assert_false(accepts(s, TOK_A "x"));
		assert_false(be_secret_accepts(s, TOK_A, strlen(TOK_A) - 1));	/* a prefix */
		be_secret_free(s);
	}
}

/* Two lines: the first shown (the C string), either accepted, in order. */
static void test_two_tokens_while_rotating(void **state)
{
	static const char *const files[] = { TOK_A "\n" TOK_B, TOK_A "\r\n" TOK_B "\r\n",
					      TOK_A "\n" TOK_B "\n\n" };
	char *s, *d;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		s = read_ok(files[i]);
		assert_string_equal(s, TOK_A);
		assert_string_equal(s + strlen(TOK_A) + 1, TOK_B);
		assert_true(accepts(s, TOK_A));
		assert_true(accepts(s, TOK_B));
		assert_false(accepts(s, TOK_A "\n" TOK_B));
		assert_false(accepts(s, TOK_A TOK_B));
		assert_false(accepts(s, "0123456789abcdef"));
		d = be_secret_dup(s);
		assert_non_null(d);
		assert_string_equal(d, TOK_A);
		assert_string_equal(d + strlen(TOK_A) + 1, TOK_B);
		assert_true(accepts(d, TOK_B));
		be_secret_free(d);
		be_secret_free(s);
	}
	s = read_ok(TOK_B "\n" TOK_A "\n");	/* the next step: the new one shown */
	assert_string_equal(s, TOK_B);
	assert_true(accepts(s, TOK_A) && accepts(s, TOK_B));
	be_secret_free(s);
	assert_null(be_secret_dup(NULL));
	be_secret_free(NULL);
}

/* What cannot serve is refused, saying why; nothing is allocated. */
static void test_refusals_say_why(void **state)
{
	static char big[2 * 4096 + 8];
	static const struct { const char *text, *why; } cases[] = {
		{ "", "fewer than 16" },
		{ "0123456789abcde\n", "fewer than 16" },
		{ TOK_A "\n0123456789abcde", "fewer than 16" },	/* the second too short */
		{ TOK_A "\n\n" TOK_B, "fewer than 16" },	/* an empty line between */
		{ TOK_A "\n" TOK_B "\n" TOK_A, "more than two lines" },
		{ "0123456789 abcdef", "not visible ASCII" },
		{ TOK_A "\t" TOK_B, "not visible ASCII" },
		{ TOK_A " \n" TOK_B, "not visible ASCII" },	/* a space ends the first */
		{ TOK_A "\r\r\n" TOK_B, "not visible ASCII" },
		{ "0123456789abcdef\xc3\xa9", "not visible ASCII" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		read_refused(cases[i].text, strlen(cases[i].text), cases[i].why);
	read_refused("0123456789abcdef\0" "0123456789abcdef", 33, "not visible ASCII");
	memset(big, 'x', 4097);
	read_refused(big, 4097, "longer than 4096 bytes");
	memcpy(big + 4096, "\n", 1);	/* 4096, then a second line of 4097 */
	memset(big + 4097, 'y', 4097);
	read_refused(big, 4096 + 1 + 4097, "longer than 4096 bytes");
	memset(big, 'z', sizeof(big));	/* more than any two tokens */
	read_refused(big, sizeof(big), "longer than two tokens");
}

/* The longest two tokens with CRLFs are taken whole. */
static void test_longest_pair(void **state)
{
	static char text[2 * (4096 + 2) + 1];
	char *s;

	(void)state;
	memset(text, 'a', 4096);
	memcpy(text + 4096, "\r\n", 2);
	memset(text + 4098, 'b', 4096);
	memcpy(text + 8194, "\r\n", 3);
	s = read_ok(text);
	assert_int_equal(strlen(s), 4096);
	assert_int_equal(strlen(s + 4097), 4096);
	assert_int_equal(s[4097], 'b');
	be_secret_free(s);
}

/* Not a regular file, or none: the errno text or what it is. */
static void test_not_a_file(void **state)
{
	const char *why = NULL;
	char *s = NULL, path[128];

	(void)state;
	assert_int_equal(be_secret_read(tmpdir, &s, &why), -1);
	assert_string_equal(why, "not a regular file");
	snprintf(path, sizeof(path), "%s/none", tmpdir);
	assert_int_equal(be_secret_read(path, &s, &why), -1);
	assert_string_equal(why, "No such file or directory");
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_token),
		cmocka_unit_test(test_two_tokens_while_rotating),
		cmocka_unit_test(test_refusals_say_why),
		cmocka_unit_test(test_longest_pair),
		cmocka_unit_test(test_not_a_file),
	};

	return cmocka_run_group_tests(tests, tmp_setup, tmp_teardown);
}
