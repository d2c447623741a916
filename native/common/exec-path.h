/*
 * Finding a process's executable, shared by the shim's direct exec (native/shim/) and the
 * serial relay's machine execs (native/serial/): one lookup, one wording of its errors.
 */
#ifndef ARCBOX_EXEC_PATH_H
#define ARCBOX_EXEC_PATH_H
#include <stddef.h>

/* The value of `name` in an environment of n "KEY=value" strings (the last wins), or NULL. */
const char *env_lookup(char *const *env, int n, const char *name);

/* Go's exec.LookPath over `path` (PATH's value, may be NULL), with runc's wording of its
 * errors, so vmm, apid and the CLI report a missing command the same way. Returns 0 with
 * the executable in `out`, or -1 with the reason in `why`. */
int look_path(const char *file, const char *path, char *out, size_t n, char *why, size_t wn);

#endif
