package model

import (
	"maps"
	"slices"
	"strconv"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/firewall"
)

// Limits caps what a VM may use beyond its size.
type Limits struct {
	// CPUPercent is a cap: the share of the VM's vCPUs it may use at most
	// (50 on a 2-vCPU VM: one host CPU's worth of time).
	CPUPercent int `json:"cpu_percent,omitempty" minimum:"0" maximum:"100" doc:"CPU cap: percent of the VM's vCPUs it may keep busy (50 on 2 vCPUs: one host CPU); 0 for no cap"`
	// CPUWeight and IOWeight are relative shares against the node's other
	// VMs (cgroup weights); 0 is the default weight.
	CPUWeight int `json:"cpu_weight,omitempty" minimum:"0" maximum:"10000" doc:"relative CPU share against the node's other VMs (cgroup weight 1-10000); 0 for the default"`
	IOWeight  int `json:"io_weight,omitempty" minimum:"0" maximum:"10000" doc:"relative disk IO share (cgroup weight 1-10000); 0 for the default"`
	// NetMbit limits the network port in both directions; NetInMbit (what
	// the VM receives) and NetOutMbit (what it sends) one direction each.
	NetMbit    int `json:"net_mbit,omitempty" minimum:"0" maximum:"1000000" doc:"network limit in both directions, Mbit/s (or give net_in_mbit and net_out_mbit)"`
	NetInMbit  int `json:"net_in_mbit,omitempty" minimum:"0" maximum:"1000000" doc:"limit of what the VM receives, Mbit/s"`
	NetOutMbit int `json:"net_out_mbit,omitempty" minimum:"0" maximum:"1000000" doc:"limit of what the VM sends, Mbit/s"`
	// DiskIOPS throttles reads and writes of every disk not named in Disks.
	DiskIOPS int `json:"disk_iops,omitempty" minimum:"0" doc:"read and write IOPS limit of each disk not named in disks"`
	// Disks throttles named disks (by device: vda).
	Disks map[string]DiskLimits `json:"disks,omitempty" doc:"per-disk throttles by device name (vda)"`
	// BlockInPorts and BlockOutPorts are the port policy of the VM's
	// network port (firewall.PortRange as text): TCP/UDP destination ports
	// dropped towards the VM and from it (outbound SMTP, say).
	BlockInPorts  []string `json:"block_in_ports,omitempty" maxItems:"64" doc:"TCP/UDP ports dropped towards the VM: 25/tcp, 6000-6010/udp"`
	BlockOutPorts []string `json:"block_out_ports,omitempty" maxItems:"64" doc:"TCP/UDP destination ports dropped from the VM: 25/tcp, 6000-6010/udp"`
	// MaxConnections caps the VM's concurrent connections (conntrack) on
	// the node's forwarding path, which only routed traffic takes.
	MaxConnections int `json:"max_connections,omitempty" minimum:"0" maximum:"1000000" doc:"cap of the VM's concurrent connections, 0 for none; routed clusters only (bridged traffic does not pass the node's forwarding path)"`
}

// DiskLimits throttles one disk; 0 is unlimited.
type DiskLimits struct {
	ReadIOPS      int64 `json:"read_iops,omitempty" minimum:"0"`
	WriteIOPS     int64 `json:"write_iops,omitempty" minimum:"0"`
	ReadBytesSec  int64 `json:"read_bytes_sec,omitempty" minimum:"0"`
	WriteBytesSec int64 `json:"write_bytes_sec,omitempty" minimum:"0"`
}

// NetIn and NetOut are the limits of each direction in Mbit/s (0: none).
func (l Limits) NetIn() int  { return cmpOr(l.NetInMbit, l.NetMbit) }
func (l Limits) NetOut() int { return cmpOr(l.NetOutMbit, l.NetMbit) }

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// Validate checks the limits of a VM whose disks are targets; errors are
// *FieldError naming the field (net_mbit, disks.vdb, ...).
func (l Limits) Validate(targets []string) error {
	if l.NetMbit != 0 && (l.NetInMbit != 0 || l.NetOutMbit != 0) {
		return invalidField("net_mbit", "%d: give net_mbit (both directions) or net_in_mbit and net_out_mbit, not both", l.NetMbit)
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"cpu_percent", l.CPUPercent}, {"cpu_weight", l.CPUWeight}, {"io_weight", l.IOWeight}, {"net_mbit", l.NetMbit},
		{"net_in_mbit", l.NetInMbit}, {"net_out_mbit", l.NetOutMbit}, {"disk_iops", l.DiskIOPS}, {"max_connections", l.MaxConnections}} {
		if v.v < 0 {
			return invalidField(v.name, "%d: want ≥ 0", v.v)
		}
	}
	if l.CPUPercent > 100 {
		return invalidField("cpu_percent", "%d: want 0-100", l.CPUPercent)
	}
	for _, list := range []struct {
		name   string
		ranges []string
	}{{"block_in_ports", l.BlockInPorts}, {"block_out_ports", l.BlockOutPorts}} {
		for i, r := range list.ranges {
			if _, err := firewall.ParsePortRange(r); err != nil {
				return &FieldError{Field: list.name + "[" + strconv.Itoa(i) + "]", Err: err}
			}
		}
	}
	for t, d := range l.Disks {
		known := false
		for _, k := range targets {
			known = known || k == t
		}
		if !known {
			return &FieldError{Field: "disks." + t, Err: virtplane.Errorf(virtplane.ErrInvalidArgument, "disks.%s: the VM has no disk %q (it has %v)", t, t, targets)}
		}
		if d.ReadIOPS < 0 || d.WriteIOPS < 0 || d.ReadBytesSec < 0 || d.WriteBytesSec < 0 {
			return &FieldError{Field: "disks." + t, Err: virtplane.Errorf(virtplane.ErrInvalidArgument, "disks.%s: a negative limit", t)}
		}
	}
	return nil
}

// Equal reports whether l and o set the same limits.
func (l Limits) Equal(o Limits) bool {
	type scalars struct{ cpuPercent, cpuWeight, ioWeight, net, netIn, netOut, diskIOPS int }
	of := func(x Limits) scalars {
		return scalars{x.CPUPercent, x.CPUWeight, x.IOWeight, x.NetMbit, x.NetInMbit, x.NetOutMbit, x.DiskIOPS}
	}
	return of(l) == of(o) && len(l.Disks) == len(o.Disks) && maps.Equal(l.Disks, o.Disks) &&
		slices.Equal(l.BlockInPorts, o.BlockInPorts) && slices.Equal(l.BlockOutPorts, o.BlockOutPorts) && l.MaxConnections == o.MaxConnections
}

// ValidateForNetwork checks the port policy against the cluster's network
// mode: a connection cap is enforced on the node's forwarding path, which
// bridged and VxLAN traffic does not take; accepting it there would be a
// limit that does nothing.
func (l Limits) ValidateForNetwork(mode string) error {
	if mode == "" {
		mode = NetworkBridge
	}
	if l.MaxConnections > 0 && mode != NetworkRouted {
		return &FieldError{Field: "max_connections", Err: virtplane.Errorf(virtplane.ErrNotImplemented,
			"max_connections %d: enforced in routed clusters only; in a %q cluster the VM's traffic is bridged past the node's forwarding path", l.MaxConnections, mode)}
	}
	return nil
}

// PortRanges parses ranges validated by Validate.
func PortRanges(ranges []string) []firewall.PortRange {
	var out []firewall.PortRange
	for _, r := range ranges {
		if pr, err := firewall.ParsePortRange(r); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// IsZero reports whether l sets no limit.
func (l Limits) IsZero() bool { return l.Equal(Limits{}) }
