/*
 * raw-probe IFACE DSTMAC DSTIP PORT tcp|udp
 *
 * What an attacker in a container with default capabilities (NET_RAW, no NET_ADMIN)
 * can do: hand-craft one IPv4 packet (a TCP SYN, or a UDP datagram "probe") for
 * DSTIP:PORT and put it on IFACE addressed to DSTMAC (the gateway's MAC), bypassing the
 * container's own routing, which would keep 127.0.0.0/8 on its loopback. Then wait up
 * to 2 s for the host's answer from DSTIP:PORT (or an ICMP error about it).
 * Prints "reply tcp flags=0xNN", "reply udp LEN", "reply icmp type=N code=N" or "none".
 * Built static at test time (tests/e2e/net-exposure.test.ts).
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint16_t csum(const void *data, size_t len, uint32_t sum) {
  const uint8_t *p = data;
  for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (len) sum += (uint32_t)(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

/* Sum of the TCP/UDP pseudo header, to seed the transport checksum. */
static uint32_t pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len) {
  uint8_t ph[12];
  memcpy(ph, &src, 4);
  memcpy(ph + 4, &dst, 4);
  ph[8] = 0;
  ph[9] = proto;
  ph[10] = len >> 8;
  ph[11] = len & 0xff;
  uint32_t sum = 0;
  for (int i = 0; i < 12; i += 2) sum += (uint32_t)(ph[i] << 8 | ph[i + 1]);
  return sum;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: raw-probe IFACE DSTMAC DSTIP PORT tcp|udp\n");
    return 2;
  }
  const char *ifname = argv[1];
  unsigned mac[6];
  if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) return 2;
  struct in_addr dst;
  if (inet_pton(AF_INET, argv[3], &dst) != 1) return 2;
  uint16_t port = (uint16_t)atoi(argv[4]);
  int tcp = strcmp(argv[5], "tcp") == 0;

  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
  if (fd < 0) {
    perror("socket(AF_PACKET)");
    return 1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    perror("SIOCGIFINDEX");
    return 1;
  }
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFADDR, &ifr) < 0) {
    perror("SIOCGIFADDR");
    return 1;
  }
  struct in_addr src = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;

  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_IP);
  sll.sll_ifindex = ifindex;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    perror("bind");
    return 1;
  }

  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  uint16_t sport = (uint16_t)(40000 + rand() % 20000);
  uint8_t pkt[64];
  memset(pkt, 0, sizeof pkt);
  struct iphdr *ip = (struct iphdr *)pkt;
  size_t l4len;
  if (tcp) {
    struct tcphdr *t = (struct tcphdr *)(pkt + sizeof *ip);
    l4len = sizeof *t;
    t->source = htons(sport);
    t->dest = htons(port);
    t->seq = htonl((uint32_t)rand());
    t->doff = 5;
    t->syn = 1;
    t->window = htons(64240);
    t->check = csum(t, l4len, pseudo(src.s_addr, dst.s_addr, IPPROTO_TCP, (uint16_t)l4len));
  } else {
    struct udphdr *u = (struct udphdr *)(pkt + sizeof *ip);
    memcpy(pkt + sizeof *ip + sizeof *u, "probe", 5);
    l4len = sizeof *u + 5;
    u->source = htons(sport);
    u->dest = htons(port);
    u->len = htons((uint16_t)l4len);
    u->check = csum(u, l4len, pseudo(src.s_addr, dst.s_addr, IPPROTO_UDP, (uint16_t)l4len));
  }
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons((uint16_t)(sizeof *ip + l4len));
  ip->id = htons((uint16_t)rand());
  ip->ttl = 64;
  ip->protocol = tcp ? IPPROTO_TCP : IPPROTO_UDP;
  ip->saddr = src.s_addr;
  ip->daddr = dst.s_addr;
  ip->check = csum(ip, sizeof *ip, 0);

  struct sockaddr_ll to = sll;
  to.sll_halen = 6;
  for (int i = 0; i < 6; i++) to.sll_addr[i] = (unsigned char)mac[i];
  if (sendto(fd, pkt, sizeof *ip + l4len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
    perror("sendto");
    return 1;
  }

  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = 2000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left <= 0) break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)left) <= 0) continue;
    uint8_t buf[2048];
    struct sockaddr_ll from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n < (ssize_t)sizeof(struct iphdr) || from.sll_pkttype == PACKET_OUTGOING) continue;
    struct iphdr *r = (struct iphdr *)buf;
    size_t hl = (size_t)r->ihl * 4;
    if (r->daddr != src.s_addr || (size_t)n < hl + 8) continue;
    if (r->protocol == IPPROTO_ICMP) {
      /* An ICMP error quoting our packet: the host processed it. */
      struct iphdr *q = (struct iphdr *)(buf + hl + 8);
      if ((size_t)n >= hl + 8 + sizeof *q && q->daddr == dst.s_addr && q->saddr == src.s_addr) {
        printf("reply icmp type=%d code=%d\n", buf[hl], buf[hl + 1]);
        return 0;
      }
      continue;
    }
    if (r->saddr != dst.s_addr || r->protocol != ip->protocol) continue;
    uint16_t rs, rd;
    memcpy(&rs, buf + hl, 2);
    memcpy(&rd, buf + hl + 2, 2);
    if (ntohs(rs) != port || ntohs(rd) != sport) continue;
    if (tcp) printf("reply tcp flags=0x%02x\n", buf[hl + 13]);
    else printf("reply udp %zd\n", n - (ssize_t)hl - 8);
    return 0;
  }
  printf("none\n");
  return 0;
}
