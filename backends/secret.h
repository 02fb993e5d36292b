/*
 * secret.h - bearer tokens read from files an operator provides (a
 * Kubernetes Secret's mount): the admin API's (admin.token_file) and the
 * one a gateway shows its remote agents (backends[].token_file, the
 * agent's --token-file).  A token is one line of BE_SECRET_MIN ..
 * BE_SECRET_MAX visible ASCII characters (what "Authorization: Bearer"
 * and a msgpack str carry alike); `openssl rand -hex 32` makes one.
 *
 * A file holds one token, or two on two lines while a token rotates: the
 * first is the one shown (the gateway's hello), either is accepted (the
 * agent's hello check, the admin API's bearer check).  Read, the tokens
 * are one string in memory: the first, a NUL, the second (if any), a
 * NUL, and a final NUL; the first alone reads as a C string.
 */
#ifndef INFERGW_SECRET_H
#define INFERGW_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define BE_SECRET_MIN 16
#define BE_SECRET_MAX 4096

/* Tokens one file may hold: the current one and, while it rotates, the next. */
#define BE_SECRET_TOKENS 2

/*
 * be_secret_read - the token(s) in the file at path into *out (malloc'd,
 * as above; free with be_secret_free): 0, or -1 with *why (a constant
 * string saying what is wrong: the file's errno text, "not a regular
 * file", more than two lines, a token too long or too short, a byte that
 * is not visible ASCII).  Only a regular file is read (a FIFO would
 * block, /dev/zero never end), at most two tokens and their line ends
 * (LF or CRLF); whitespace after the last token is dropped.
 */
int be_secret_read(const char *path, char **out, const char **why);

/* be_secret_accepts - whether given[0..glen) is one of secret's tokens,
 * in time that depends on glen and how many tokens secret holds only. */
bool be_secret_accepts(const char *secret, const char *given, size_t glen);

/* be_secret_dup - a copy of secret, every token (NULL: NULL; or out of
 * memory). */
char *be_secret_dup(const char *secret);

/* be_secret_free - wipe s's bytes (every token), then free it (NULL:
 * nothing). */
void be_secret_free(char *s);

#endif
