set -e
for n in a b c; do ip netns add bx$n; ip -n bx$n link set lo up; done
ip link add ab0 netns bxa type veth peer name ba0 netns bxb
ip link add bc0 netns bxb type veth peer name cb0 netns bxc
ip -n bxa link set ab0 up; ip -n bxb link set ba0 up; ip -n bxb link set bc0 up; ip -n bxc link set cb0 up
i=1
for n in a b c; do
  ip -n bx$n addr add 10.9.$i.1/32 dev lo
  ip -n bx$n addr add fd19:f45:f324:90$i::1/128 dev lo
  ip -n bx$n route add unreachable 10.9.$i.0/24 table 200 proto 201
  ip -n bx$n route add unreachable fd19:f45:f324:90$i::/64 table 200 proto 201
  for f in net.ipv4.conf.all.forwarding net.ipv6.conf.all.forwarding; do ip netns exec bx$n sysctl -qw $f=1; done
  ip netns exec bx$n sysctl -qw net.ipv4.conf.all.rp_filter=0
  i=$((i+1))
done
# a leaky route on c (uplink-like) that must not be announced
ip -n bxc addr add 192.168.77.5/24 dev cb0
ip -n bxc route add 172.16.0.0/16 dev cb0 proto static
ip -n bxc route add 172.17.0.0/16 dev cb0 table 200 proto static
