/* secret.c - see secret.h. */
#define _GNU_SOURCE
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool be_secret_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Room for the file's bytes: two tokens, each with a CRLF, and one byte
 * more to tell a longer file. */
#define BE_SECRET_FILE (BE_SECRET_TOKENS * (BE_SECRET_MAX + 2) + 1)

/* The file's bytes into buf (BE_SECRET_FILE), at most that many: how
 * many, or -1 with *why. */
static ssize_t be_secret_load(const char *path, char *buf, const char **why)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	ssize_t n = 0, r = 1;

	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return -1;
	}
	while (n < BE_SECRET_FILE && (r = read(fd, buf + n, BE_SECRET_FILE - n)) > 0)
		n += r;
	close(fd);
	if (r < 0) {
		*why = strerror(errno);
		return -1;
	}
	return n;
}

/* Every byte of p[0..n) visible ASCII (no space, no control byte). */
static bool be_secret_visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return true;
}

/* What is wrong with p[0..n) as one token, or NULL: it is one. */
static const char *be_secret_check(const char *p, size_t n)
{
	if (n > BE_SECRET_MAX)
		return "longer than 4096 bytes: not a token";
	if (!be_secret_visible(p, n))
		return "holds a byte that is not visible ASCII (a token a line, 16..4096 "
		       "characters, no spaces; a second line only while a token rotates)";
	if (n < BE_SECRET_MIN)
		return "holds fewer than 16 characters: too easy to guess (make one with "
		       "`openssl rand -hex 32`)";
	return NULL;
}

/*
 * Split buf[0..n) (trailing whitespace dropped) into its lines, at most
 * BE_SECRET_TOKENS, each without its line end (LF, or CRLF): their starts
 * and lengths, how many, or -1 with *why.
 */
static int be_secret_lines(const char *buf, size_t n, const char **tok, size_t *len,
			   const char **why)
{
	int k = 0;

	for (const char *p = buf, *end = buf + n; p <= end; k++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;

		if (k == BE_SECRET_TOKENS) {
			*why = "holds more than two lines (one token; two while a token rotates: "
			       "the one to show first, the other accepted too)";
			return -1;
		}
		tok[k] = p;
		len[k] = (size_t)(e - p) - (e > p && e[-1] == '\r');
		if ((*why = be_secret_check(tok[k], len[k])))
			return -1;
		p = e + 1;
	}
	return k;
}

int be_secret_read(const char *path, char **out, const char **why)
{
	char buf[BE_SECRET_FILE];
	ssize_t n = be_secret_load(path, buf, why);
	const char *tok[BE_SECRET_TOKENS];
	size_t len[BE_SECRET_TOKENS], at = 0;
	int k = -1;

	*out = NULL;
	while (n > 0 && n < BE_SECRET_FILE && be_secret_space(buf[n - 1]))
		n--;
	if (n == BE_SECRET_FILE)
		*why = "longer than two tokens of 4096 bytes: not a token file";
	else if (n >= 0)
		k = be_secret_lines(buf, (size_t)n, tok, len, why);
	if (k > 0 && !(*out = malloc((size_t)n + 2)))	/* the lines, their NULs, a NUL */
		*why = "out of memory";
	for (int i = 0; *out && i < k; i++) {
		memcpy(*out + at, tok[i], len[i]);
		at += len[i];
		(*out)[at++] = 0;
	}
	if (*out)
		(*out)[at] = 0;
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -1;
}

/* a[0..alen) and b[0..blen) equal, in time that depends on blen only, not
 * on where they differ (a guesser learns nothing). */
static bool be_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char d = alen != blen;

	for (size_t i = 0; i < blen; i++)
		d |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
	return !d;
}

/* The bytes secret takes, its final NUL included. */
static size_t be_secret_size(const char *secret)
{
	const char *p = secret;

	while (*p)
		p += strlen(p) + 1;
	return (size_t)(p - secret) + 1;
}

bool be_secret_accepts(const char *secret, const char *given, size_t glen)
{
	bool ok = false;

	for (size_t n; (n = strlen(secret)); secret += n + 1)
		ok |= be_secret_equal(given, glen, secret, n);	/* no early exit */
	return ok;
}

char *be_secret_dup(const char *secret)
{
	size_t n;
	char *s;

	if (!secret)
		return NULL;
	n = be_secret_size(secret);
	s = malloc(n);
	if (s)
		memcpy(s, secret, n);
	return s;
}

void be_secret_free(char *s)
{
	if (s)
		explicit_bzero(s, be_secret_size(s));
	free(s);
}
