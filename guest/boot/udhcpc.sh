# busybox udhcpc event script: applies netd's lease to eth0 (address, default route, DNS).
bb=/opt/arcbox/bin/busybox
case "$1" in
  deconfig)
    $bb ip -4 addr flush dev "$interface"
    $bb ip link set "$interface" up
    ;;
  bound | renew)
    # DNS first: whoever sees the address can resolve names already.
    if [ -n "$dns" ]; then
      { [ -n "$domain" ] && echo "search $domain"; for d in $dns; do echo "nameserver $d"; done; } > /etc/resolv.conf.arcbox
      $bb mv -f /etc/resolv.conf.arcbox /etc/resolv.conf
    fi
    $bb ip -4 addr flush dev "$interface"
    $bb ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for r in $router; do $bb ip route replace default via "$r" dev "$interface"; break; done
    # Boot trace: when the first lease was applied (guest/README.md).
    if [ "$1" = bound ] && [ -n "$ARCBOX_BOOT_TRACE_FILE" ]; then
      read -r up _ < /proc/uptime
      echo "$up network" >> "$ARCBOX_BOOT_TRACE_FILE"
    fi
    ;;
esac
exit 0
