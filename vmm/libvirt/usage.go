package libvirt

import (
	"context"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane/vmm"
)

// Usage reads CPU time, memory and per-device counters of a running domain.
func (d *Driver) Usage(ctx context.Context, name string) (vmm.Usage, error) {
	dom, err := d.lookup(ctx, name)
	if err != nil {
		return vmm.Usage{}, err
	}
	type info struct {
		cpu, mem uint64
		rss      uint64
	}
	in, err := call(ctx, d, "usage of "+name, true, func(lv *golibvirt.Libvirt) (info, error) {
		_, _, mem, _, cpu, err := lv.DomainGetInfo(dom)
		if err != nil {
			return info{}, err
		}
		out := info{cpu: cpu, mem: mem}
		if stats, err := lv.DomainMemoryStats(dom, 13, 0); err == nil {
			for _, s := range stats {
				if s.Tag == int32(golibvirt.DomainMemoryStatRss) {
					out.rss = s.Val
				}
			}
		}
		return out, nil
	})
	if err != nil {
		return vmm.Usage{}, err
	}
	u := vmm.Usage{CPUTime: time.Duration(in.cpu), MemoryBytes: in.mem << 10}
	if in.rss > 0 {
		u.MemoryBytes = in.rss << 10
	}
	x, err := d.domainXML(ctx, dom, false)
	if err != nil {
		return vmm.Usage{}, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(x); err != nil {
		return vmm.Usage{}, err
	}
	if def.ID == nil || def.Devices == nil {
		return u, nil
	}
	for _, dd := range def.Devices.Disks {
		if dd.Target == nil || dd.Device == "cdrom" {
			continue
		}
		t := dd.Target.Dev
		du, err := call(ctx, d, "block stats", true, func(lv *golibvirt.Libvirt) (vmm.DiskUsage, error) {
			rr, rb, wr, wb, _, err := lv.DomainBlockStats(dom, t)
			return vmm.DiskUsage{Target: t, ReadRequests: uint64(rr), ReadBytes: uint64(rb), WriteRequests: uint64(wr), WriteBytes: uint64(wb)}, err
		})
		if err != nil {
			return vmm.Usage{}, err
		}
		u.Disks = append(u.Disks, du)
	}
	for _, iface := range def.Devices.Interfaces {
		if iface.Target == nil || iface.MAC == nil {
			continue
		}
		dev, mac := iface.Target.Dev, strings.ToLower(iface.MAC.Address)
		nu, err := call(ctx, d, "interface stats", true, func(lv *golibvirt.Libvirt) (vmm.NICUsage, error) {
			rb, rp, _, _, tb, tp, _, _, err := lv.DomainInterfaceStats(dom, dev)
			return vmm.NICUsage{MAC: mac, RxBytes: uint64(rb), RxPackets: uint64(rp), TxBytes: uint64(tb), TxPackets: uint64(tp)}, err
		})
		if err != nil {
			return vmm.Usage{}, err
		}
		u.NICs = append(u.NICs, nu)
	}
	return u, nil
}
