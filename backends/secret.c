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

/* The file's bytes into buf (BE_SECRET_MAX + 3), at most that many: how
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
	while (n < BE_SECRET_MAX + 3 && (r = read(fd, buf + n, BE_SECRET_MAX + 3 - n)) > 0)
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

int be_secret_read(const char *path, char **out, const char **why)
{
	char buf[BE_SECRET_MAX + 3];
	ssize_t n = be_secret_load(path, buf, why);

	*out = NULL;
	/* n = BE_SECRET_MAX + 3: more than a token and its line end (CRLF) */
	while (n > 0 && n <= BE_SECRET_MAX + 2 && be_secret_space(buf[n - 1]))
		n--;
	if (n < 0)
		;	/* *why says why */
	else if (n > BE_SECRET_MAX)
		*why = "longer than 4096 bytes: not a token";
	else if (!be_secret_visible(buf, (size_t)n))
		*why = "holds a byte that is not visible ASCII (one line of 16..4096 characters, "
		       "no spaces)";
	else if (n < BE_SECRET_MIN)
		*why = "holds fewer than 16 characters: too easy to guess (make one with "
		       "`openssl rand -hex 32`)";
	else if (!(*out = strndup(buf, (size_t)n)))
		*why = "out of memory";
	explicit_bzero(buf, sizeof(buf));
	return *out ? 0 : -1;
}

bool be_secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char d = alen != blen;

	for (size_t i = 0; i < blen; i++)
		d |= (unsigned char)(b[i] ^ (i < alen ? a[i] : 0));
	return !d;
}

void be_secret_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}
