/*
 * Whole writes to a file descriptor, shared by the shim (native/shim/) and the serial
 * relay's network-command workers (native/serial/netcmd.c).
 */
#ifndef ARCBOX_FD_IO_H
#define ARCBOX_FD_IO_H
#include <stddef.h>

/* Writes all n bytes (retrying short writes and EINTR): 0, or -1 with errno. */
int write_all(int fd, const void *p, size_t n);

#endif
