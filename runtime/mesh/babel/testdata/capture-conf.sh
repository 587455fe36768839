# $1 node $2 index $3.. ifaces
n=$1; i=$2; shift 2
cat <<EOC
router-id 6a:00:00:0$i:de:ad:be:e$i
local-path /tmp/bx/$n.sock
state-file /tmp/bx/$n.state
skip-kernel-setup true
import-table 200
key id byz type hmac-sha256 value 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
EOC
for f in "$@"; do echo "interface $f type wired hello-interval 2 key byz"; done
cat <<EOC
in ip 10.0.0.0/8 ge 24 le 32 allow
in ip fd19:f45:f324::/48 ge 64 allow
in ip 0.0.0.0/0 eq 0 allow
in ip ::/0 eq 0 allow
in deny
redistribute local ip 10.9.$i.1/32 eq 32 allow
redistribute local ip fd19:f45:f324:90$i::1/128 eq 128 allow
redistribute local deny
redistribute proto 201 allow
redistribute deny
EOC
