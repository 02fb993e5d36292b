/*
 * version.h - what this binary is.  Defined in build/gen/version.c, which
 * the Makefile rewrites only when `git describe` or the feature list
 * changes, so every object agrees on one version.
 */
#ifndef INFERGW_VERSION_H
#define INFERGW_VERSION_H

extern const char infergw_version[];
extern const char infergw_features[];

#endif
