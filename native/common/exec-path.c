/* Finding a process's executable (exec-path.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "exec-path.h"

const char *env_lookup(char *const *env, int n, const char *name) {
  size_t len = strlen(name);
  for (int i = n - 1; i >= 0; i--)
    if (!strncmp(env[i], name, len) && env[i][len] == '=') return env[i] + len + 1;
  return NULL;
}

int look_path(const char *file, const char *path, char *out, size_t n, char *why, size_t wn) {
  struct stat st;
  if (strchr(file, '/')) {
    if (stat(file, &st) != 0) { snprintf(why, wn, "exec: \"%s\": stat %s: %s", file, file, strerror(errno)); return -1; }
    if (S_ISDIR(st.st_mode)) { snprintf(why, wn, "exec: \"%s\": is a directory", file); return -1; }
    if (!(st.st_mode & 0111)) { snprintf(why, wn, "exec: \"%s\": permission denied", file); return -1; }
    snprintf(out, n, "%s", file);
    return 0;
  }
  for (const char *p = path ? path : ""; path;) {
    const char *colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    snprintf(out, n, "%.*s/%s", (int)len, len ? p : ".", file);
    if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)) return 0;
    if (!colon) break;
    p = colon + 1;
  }
  snprintf(why, wn, "exec: \"%s\": executable file not found in $PATH", file);
  return -1;
}
