#!/bin/bash
# Kernel networking tools for the namespace tests: iproute2 (netns, veth,
# bridge, vxlan, tc), nftables, and the kernel modules they load on demand.
. "$(dirname "$0")/lib.sh"
ensure_pkgs iproute2 nftables iputils-ping kmod procps util-linux
for m in vxlan ifb sch_htb sch_tbf sch_ingress cls_u32 act_mirred nf_tables; do modprobe -q "$m" 2>/dev/null || true; done
ip netns add vpt-envcheck && ip netns del vpt-envcheck || die "cannot create network namespaces"
write_env net "IP=$(command -v ip)" "NFT=$(command -v nft)"
say "network namespaces work; iproute2 and nftables installed"
