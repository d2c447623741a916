/* The part of a machine's stage 2 done by PID 1 (machine-setup.c). */
#ifndef ARCBOX_MACHINE_SETUP_H
#define ARCBOX_MACHINE_SETUP_H
#include <sys/types.h>

#define AGENT_PORT "/dev/virtio-ports/org.arcbox.agent.0"
#define AGENT_RUN_DIR "/var/lib/arcbox/run"
#define AGENT_FIFO_IN AGENT_RUN_DIR "/guest-agent.in.fifo"
#define AGENT_FIFO_OUT AGENT_RUN_DIR "/guest-agent.out.fifo"

/* Mounts, links, boot trace, sysctls, hostname, lo, shares, the agent's FIFOs. */
void machine_setup(void);
/* Calls fn for each share of arcbox.mounts= in (a writable copy of) a kernel command line. */
void for_each_share(char *cmdline, void (*fn)(const char *tag, const char *dir, int ro));
/* Starts the serial relay (PID 1 restarts it if it exits); its pid, or -1. */
pid_t start_relay(void);
#endif
