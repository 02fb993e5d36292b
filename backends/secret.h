/*
 * secret.h - bearer tokens read from files an operator provides (a
 * Kubernetes Secret's mount): the admin API's (admin.token_file) and the
 * one a gateway shows its remote agents (backends[].token_file, the
 * agent's --token-file).  A token is one line of BE_SECRET_MIN ..
 * BE_SECRET_MAX visible ASCII characters (what "Authorization: Bearer"
 * and a msgpack str carry alike); `openssl rand -hex 32` makes one.
 */
#ifndef INFERGW_SECRET_H
#define INFERGW_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define BE_SECRET_MIN 16
#define BE_SECRET_MAX 4096

/*
 * be_secret_read - the token in the file at path into *out (malloc'd; free
 * with be_secret_free): 0, or -1 with *why (a constant string saying what
 * is wrong: the file's errno text, "not a regular file", too long, too
 * short, a byte that is not visible ASCII).  Only a regular file is read
 * (a FIFO would block, /dev/zero never end), at most BE_SECRET_MAX bytes
 * and a line end; trailing whitespace is dropped.
 */
int be_secret_read(const char *path, char **out, const char **why);

/* be_secret_equal - a[0..alen) and b[0..blen) equal, in time that depends
 * on blen only, not on where they differ (a guesser learns nothing). */
bool be_secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* be_secret_free - wipe s's bytes, then free it (NULL: nothing). */
void be_secret_free(char *s);

#endif
