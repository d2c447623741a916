/*
 * A stand-in libsystemd.so.0 for the engine machine's crun (scripts/build-guest.sh).
 * Debian's crun links libsystemd for systemd cgroups (--systemd-cgroup: sd_bus_*),
 * sd_notify (NOTIFY_SOCKET) and the journald log driver, none of which the machine uses:
 * it has no systemd. Loading the real one also loads libgcrypt, liblzma, libzstd, liblz4
 * and libgpg-error, and under TCG every library's mapping, page faults and relocations
 * (crun is BIND_NOW) add up on each crun process. Each function here only fails
 * (-ENOSYS / NULL), so crun reports any path that would need systemd as an error.
 * Symbol versions: sd-stub.map (crun binds to LIBSYSTEMD_209/221/237/246).
 */
#include <errno.h>
#include <stddef.h>

#define FAIL(name) int name(void) { return -ENOSYS; }
FAIL(sd_bus_call)
FAIL(sd_bus_default_system)
FAIL(sd_bus_default_user)
FAIL(sd_bus_error_get_errno)
FAIL(sd_bus_match_signal_async)
FAIL(sd_bus_message_append)
FAIL(sd_bus_message_append_strv)
FAIL(sd_bus_message_close_container)
FAIL(sd_bus_message_new_method_call)
FAIL(sd_bus_message_open_container)
FAIL(sd_bus_message_read)
FAIL(sd_bus_process)
FAIL(sd_bus_wait)
FAIL(sd_journal_send_with_location)
FAIL(sd_notify)
FAIL(sd_notify_barrier)
void sd_bus_error_free(void *e) { (void)e; }
void *sd_bus_message_unref(void *m) { (void)m; return NULL; }
void *sd_bus_unref(void *b) { (void)b; return NULL; }
