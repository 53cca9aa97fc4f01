package libvirt

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Values fill the built-in domain template. The zero value renders a domain
// of type kvm with libvirt's default machine type and emulator.
type Values struct {
	// DomainType is "kvm" (hardware acceleration) or "qemu" (software
	// emulation). Empty lets the driver detect it on first use: kvm when
	// libvirt's domain capabilities offer it and a kvm guest boots (see
	// BootProbe), qemu otherwise. A set value always wins.
	DomainType string
	// Machine is the machine type ("pc", "q35", ...); empty = libvirt default.
	Machine string
	// Emulator is the QEMU binary; empty = libvirt default.
	Emulator string
	// CPUMode is "host-passthrough", "host-model" or empty: the hypervisor
	// default, or, for a detected kvm, the mode detection chose.
	CPUMode string
	// ConsoleListen is the address VNC/SPICE listen on; default 127.0.0.1.
	ConsoleListen string
	// NoGuestAgent leaves out the qemu-guest-agent channel.
	NoGuestAgent bool
}

// DomainEditor changes a rendered domain before it is defined: the second
// way, beside Values, to adapt the XML (add a TPM, pin CPUs, set a SMBIOS
// serial). It gets the validated spec. Strings it sets are escaped by the
// XML encoder like every other value.
type DomainEditor func(spec vmm.Spec, dom *libvirtxml.Domain) error

// metadataNS is the namespace of the driver's own element in <metadata>.
const metadataNS = "https://virtplane.dev/xmlns/vmm/1"

// meta is what the driver keeps in the domain's <metadata>: what it needs to
// get back to normal after rescue mode, and what it created on disk.
type meta struct {
	XMLName xml.Name `xml:"https://virtplane.dev/xmlns/vmm/1 vm"`
	Seed    string   `xml:"seed,omitempty"`
	Console string   `xml:"console-log,omitempty"`
	Rescue  *rescue  `xml:"rescue"`
}

type rescue struct {
	Kernel  string `xml:"kernel,omitempty"`
	Initrd  string `xml:"initrd,omitempty"`
	Cmdline string `xml:"cmdline,omitempty"`
	// Boot devices before rescue (hd, cdrom, ...).
	Boot []string `xml:"boot"`
	// CDROM is the target of the rescue ISO drive the driver added.
	CDROM string `xml:"cdrom,omitempty"`
}

func encodeMeta(m meta) (*libvirtxml.DomainMetadata, error) {
	b, err := xml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &libvirtxml.DomainMetadata{XML: string(b)}, nil
}

// decodeMeta finds the driver's element among whatever else <metadata> holds.
func decodeMeta(md *libvirtxml.DomainMetadata) meta {
	var m meta
	if md == nil {
		return m
	}
	dec := xml.NewDecoder(strings.NewReader(md.XML))
	for {
		tok, err := dec.Token()
		if err != nil {
			return m
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == metadataNS && se.Name.Local == "vm" {
			_ = dec.DecodeElement(&m, &se)
			return m
		}
	}
}

func busFor(target string) string {
	switch target[:2] {
	case "vd":
		return "virtio"
	case "sd":
		return "sata"
	default:
		return "ide"
	}
}

// seedTarget is the CD-ROM drive the cloud-init seed goes into: the first
// IDE slot from hdc on that the spec does not use.
func seedTarget(spec vmm.Spec) string {
	used := map[string]bool{}
	for _, d := range spec.Disks {
		used[d.Target] = true
	}
	for _, t := range []string{"hdc", "hdd", "hdb", "hda"} {
		if !used[t] {
			return t
		}
	}
	return ""
}

func renderDisk(d vmm.Disk, lim vmm.DiskLimits) (libvirtxml.DomainDisk, error) {
	src := d.Source
	dd := libvirtxml.DomainDisk{
		Device: "disk",
		Target: &libvirtxml.DomainDiskTarget{Dev: d.Target, Bus: busFor(d.Target)},
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: src.Format},
	}
	if src.Format == "" {
		dd.Driver.Type = "raw"
	}
	if d.CDROM {
		dd.Device = "cdrom"
		if dd.Target.Bus == "virtio" {
			return dd, virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %s: a cdrom cannot sit on the virtio bus", d.Target)
		}
	}
	if d.ReadOnly || d.CDROM {
		dd.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		// Internal snapshots need every snapshotted disk to be qcow2;
		// read-only media have nothing to snapshot.
		dd.Snapshot = "no"
	}
	switch src.Kind {
	case "file":
		dd.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: src.Path}}
	case "block":
		dd.Source = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: src.Path}}
	case "rbd":
		nw := &libvirtxml.DomainDiskSourceNetwork{Protocol: "rbd", Name: src.Pool + "/" + src.Image}
		for _, m := range src.Monitors {
			host, port, _ := net.SplitHostPort(m) // validated as host:port
			nw.Hosts = append(nw.Hosts, libvirtxml.DomainDiskSourceHost{Name: host, Port: port})
		}
		// libvirt's <auth> needs the secret holding the user's key; a
		// user without one (a cluster without cephx) authenticates as
		// nobody, which is what librbd does with no <auth>.
		if src.User != "" && src.Secret != "" {
			nw.Auth = &libvirtxml.DomainDiskAuth{Username: src.User, Secret: &libvirtxml.DomainDiskSecret{Type: "ceph", UUID: src.Secret}}
		}
		dd.Source = &libvirtxml.DomainDiskSource{Network: nw}
	case "iscsi":
		host, port, iqn, lun, err := vmm.ParseISCSIURL(src.URL)
		if err != nil {
			return dd, virtplane.Errorf(virtplane.ErrInvalidArgument, "disk %s: %v", d.Target, err)
		}
		dd.Source = &libvirtxml.DomainDiskSource{Network: &libvirtxml.DomainDiskSourceNetwork{
			Protocol: "iscsi", Name: fmt.Sprintf("%s/%d", iqn, lun),
			Hosts: []libvirtxml.DomainDiskSourceHost{{Name: host, Port: fmt.Sprint(port)}},
		}}
	}
	if lim != (vmm.DiskLimits{}) {
		dd.IOTune = &libvirtxml.DomainDiskIOTune{ReadIopsSec: lim.ReadIOPS, WriteIopsSec: lim.WriteIOPS, ReadBytesSec: lim.ReadBytesSec, WriteBytesSec: lim.WriteBytesSec}
	}
	return dd, nil
}

func intp(v uint64) *int {
	if v == 0 {
		return nil
	}
	i := int(v)
	return &i
}

func renderNIC(n vmm.NIC, lim vmm.NICLimits) libvirtxml.DomainInterface {
	iface := libvirtxml.DomainInterface{Model: &libvirtxml.DomainInterfaceModel{Type: n.Model}}
	if n.Bridge != "" {
		iface.Source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Bridge}}
	} else {
		iface.Source = &libvirtxml.DomainInterfaceSource{Ethernet: &libvirtxml.DomainInterfaceSourceEthernet{}}
	}
	if n.Tap != "" {
		iface.Target = &libvirtxml.DomainInterfaceTarget{Dev: n.Tap}
	}
	if n.MAC != "" {
		iface.MAC = &libvirtxml.DomainInterfaceMAC{Address: n.MAC}
	}
	if lim != (vmm.NICLimits{}) {
		iface.Bandwidth = &libvirtxml.DomainInterfaceBandwidth{}
		if lim.InboundKiBs > 0 {
			iface.Bandwidth.Inbound = &libvirtxml.DomainInterfaceBandwidthParams{Average: intp(lim.InboundKiBs)}
		}
		if lim.OutboundKiBs > 0 {
			iface.Bandwidth.Outbound = &libvirtxml.DomainInterfaceBandwidthParams{Average: intp(lim.OutboundKiBs)}
		}
	}
	return iface
}

// render builds the domain of a validated, normalised spec. seed and
// consoleLog are the paths of the seed image (empty: none) and of the
// serial console log.
func render(spec vmm.Spec, v Values, seed, consoleLog string) (*libvirtxml.Domain, error) {
	dom := &libvirtxml.Domain{
		Type:   v.DomainType,
		Name:   spec.Name,
		Memory: &libvirtxml.DomainMemory{Value: uint(spec.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(spec.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm", Machine: v.Machine},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{Emulator: v.Emulator},
	}
	if v.CPUMode != "" {
		dom.CPU = &libvirtxml.DomainCPU{Mode: v.CPUMode}
	}
	if spec.Boot.Kernel != "" {
		dom.OS.Kernel, dom.OS.Initrd, dom.OS.Cmdline = spec.Boot.Kernel, spec.Boot.Initrd, spec.Boot.Cmdline
	} else {
		dom.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	if spec.Limits.CPUWeight > 0 {
		dom.CPUTune = &libvirtxml.DomainCPUTune{Shares: &libvirtxml.DomainCPUTuneShares{Value: uint(spec.Limits.CPUWeight)}}
	}
	if c := spec.Limits.CPUCapPercent; c > 0 && c != vmm.NoCap {
		if dom.CPUTune == nil {
			dom.CPUTune = &libvirtxml.DomainCPUTune{}
		}
		dom.CPUTune.GlobalPeriod = &libvirtxml.DomainCPUTunePeriod{Value: cpuCapPeriod}
		dom.CPUTune.GlobalQuota = &libvirtxml.DomainCPUTuneQuota{Value: cpuCapQuota(c)}
	}
	if spec.Limits.IOWeight > 0 {
		dom.BlockIOTune = &libvirtxml.DomainBlockIOTune{Weight: uint(spec.Limits.IOWeight)}
	}
	for _, d := range spec.Disks {
		dd, err := renderDisk(d, spec.Limits.Disks[d.Target])
		if err != nil {
			return nil, err
		}
		dom.Devices.Disks = append(dom.Devices.Disks, dd)
	}
	if seed != "" {
		t := seedTarget(spec)
		if t == "" {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "cloud_init: no free IDE slot for the seed drive")
		}
		dd, _ := renderDisk(vmm.Disk{Target: t, CDROM: true, Source: vmm.DiskSource{Kind: "file", Path: seed, Format: "raw"}}, vmm.DiskLimits{})
		dom.Devices.Disks = append(dom.Devices.Disks, dd)
	}
	for _, n := range spec.NICs {
		dom.Devices.Interfaces = append(dom.Devices.Interfaces, renderNIC(n, spec.Limits.NICs[n.MAC]))
	}
	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	if consoleLog != "" {
		serial.Log = &libvirtxml.DomainChardevLog{File: consoleLog, Append: "on"}
	}
	dom.Devices.Serials = []libvirtxml.DomainSerial{serial}
	dom.Devices.Consoles = []libvirtxml.DomainConsole{{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
	}}
	if !v.NoGuestAgent {
		dom.Devices.Channels = []libvirtxml.DomainChannel{{
			Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
			Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
		}}
	}
	listen := v.ConsoleListen
	if listen == "" {
		listen = "127.0.0.1"
	}
	switch spec.Console.Type {
	case "vnc":
		dom.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{
			AutoPort: "yes", Listen: listen, Passwd: spec.Console.Password,
			Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: listen}}},
		}}}
	case "spice":
		dom.Devices.Graphics = []libvirtxml.DomainGraphic{{Spice: &libvirtxml.DomainGraphicSpice{
			AutoPort: "yes", Listen: listen, Passwd: spec.Console.Password,
			Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: listen}}},
		}}}
	}
	dom.Devices.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "virtio"}
	md, err := encodeMeta(meta{Seed: seed, Console: consoleLog})
	if err != nil {
		return nil, err
	}
	dom.Metadata = md
	return dom, nil
}

// RenderXML renders the domain XML of spec the way the driver would define
// it, without talking to libvirt: for inspection, golden tests and tools.
func RenderXML(spec vmm.Spec, v Values, stateDir string, editor DomainEditor) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	spec = spec.Normalize()
	if v.DomainType == "" {
		v.DomainType = "kvm"
	}
	seed := ""
	if spec.CloudInit != nil {
		seed = filepath.Join(stateDir, spec.Name, "seed.iso")
	}
	dom, err := render(spec, v, seed, filepath.Join(stateDir, spec.Name, "console.log"))
	if err != nil {
		return "", err
	}
	if err := applyTemplate(spec.Template, dom, diskRootsOf(spec)); err != nil {
		return "", err
	}
	if editor != nil {
		if err := editor(spec, dom); err != nil {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "domain editor: %v", err)
		}
	}
	return dom.Marshal()
}

// parse reads a domain back into a VM (state is filled in by the caller).
func parse(x string) (vmm.VM, *libvirtxml.Domain, meta, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return vmm.VM{}, nil, meta{}, fmt.Errorf("libvirt: parse domain xml: %w", err)
	}
	m := decodeMeta(dom.Metadata)
	s := vmm.Spec{Name: dom.Name}
	if dom.VCPU != nil {
		s.VCPUs = int(dom.VCPU.Value)
	}
	if dom.Memory != nil {
		s.MemoryMiB = int64(toKiB(dom.Memory.Value, dom.Memory.Unit) / 1024)
	}
	if dom.OS != nil && m.Rescue == nil {
		s.Boot = vmm.Boot{Kernel: dom.OS.Kernel, Initrd: dom.OS.Initrd, Cmdline: dom.OS.Cmdline}
	}
	if dom.CPUTune != nil && dom.CPUTune.Shares != nil {
		s.Limits.CPUWeight = uint64(dom.CPUTune.Shares.Value)
	}
	if t := dom.CPUTune; t != nil && t.GlobalQuota != nil && t.GlobalQuota.Value > 0 {
		period := uint64(cpuCapPeriod)
		if t.GlobalPeriod != nil && t.GlobalPeriod.Value > 0 {
			period = t.GlobalPeriod.Value
		}
		s.Limits.CPUCapPercent = (uint64(t.GlobalQuota.Value)*100 + period/2) / period
	}
	if dom.BlockIOTune != nil {
		s.Limits.IOWeight = uint64(dom.BlockIOTune.Weight)
	}
	if dom.Devices != nil {
		for _, dd := range dom.Devices.Disks {
			if dd.Target == nil || dd.Source == nil {
				continue
			}
			if dd.Source.File != nil && dd.Source.File.File == m.Seed && m.Seed != "" {
				continue
			}
			if m.Rescue != nil && dd.Target.Dev == m.Rescue.CDROM {
				continue
			}
			d := vmm.Disk{Target: dd.Target.Dev, ReadOnly: dd.ReadOnly != nil, CDROM: dd.Device == "cdrom"}
			if dd.Driver != nil {
				d.Source.Format = dd.Driver.Type
			}
			switch {
			case dd.Source.File != nil:
				d.Source.Kind, d.Source.Path = "file", dd.Source.File.File
			case dd.Source.Block != nil:
				d.Source.Kind, d.Source.Path = "block", dd.Source.Block.Dev
			case dd.Source.Network != nil && dd.Source.Network.Protocol == "rbd":
				nw := dd.Source.Network
				d.Source.Kind = "rbd"
				d.Source.Pool, d.Source.Image, _ = strings.Cut(nw.Name, "/")
				for _, h := range nw.Hosts {
					d.Source.Monitors = append(d.Source.Monitors, net.JoinHostPort(h.Name, h.Port))
				}
				if nw.Auth != nil {
					d.Source.User = nw.Auth.Username
					if nw.Auth.Secret != nil {
						d.Source.Secret = nw.Auth.Secret.UUID
					}
				}
			case dd.Source.Network != nil && dd.Source.Network.Protocol == "iscsi" && len(dd.Source.Network.Hosts) > 0:
				h := dd.Source.Network.Hosts[0]
				d.Source.Kind = "iscsi"
				d.Source.URL = fmt.Sprintf("iscsi://%s:%s/%s", h.Name, h.Port, dd.Source.Network.Name)
			}
			if t := dd.IOTune; t != nil {
				l := vmm.DiskLimits{ReadIOPS: t.ReadIopsSec, WriteIOPS: t.WriteIopsSec, ReadBytesSec: t.ReadBytesSec, WriteBytesSec: t.WriteBytesSec}
				if l != (vmm.DiskLimits{}) {
					if s.Limits.Disks == nil {
						s.Limits.Disks = map[string]vmm.DiskLimits{}
					}
					s.Limits.Disks[d.Target] = l
				}
			}
			s.Disks = append(s.Disks, d)
		}
		for _, iface := range dom.Devices.Interfaces {
			n := vmm.NIC{}
			if iface.Source != nil && iface.Source.Bridge != nil {
				n.Bridge = iface.Source.Bridge.Bridge
			}
			if iface.Target != nil && (n.Bridge == "" || !strings.HasPrefix(iface.Target.Dev, "vnet")) {
				n.Tap = iface.Target.Dev
			}
			if iface.MAC != nil {
				n.MAC = strings.ToLower(iface.MAC.Address)
			}
			if iface.Model != nil {
				n.Model = iface.Model.Type
			}
			if b := iface.Bandwidth; b != nil {
				if b.Inbound != nil && b.Inbound.Average != nil {
					n.Limits.InboundKiBs = uint64(*b.Inbound.Average)
				}
				if b.Outbound != nil && b.Outbound.Average != nil {
					n.Limits.OutboundKiBs = uint64(*b.Outbound.Average)
				}
				if n.Limits != (vmm.NICLimits{}) && n.MAC != "" {
					if s.Limits.NICs == nil {
						s.Limits.NICs = map[string]vmm.NICLimits{}
					}
					s.Limits.NICs[n.MAC] = n.Limits
				}
			}
			s.NICs = append(s.NICs, n)
		}
		for _, g := range dom.Devices.Graphics {
			switch {
			case g.VNC != nil:
				s.Console = vmm.ConsoleSpec{Type: "vnc", Password: g.VNC.Passwd}
			case g.Spice != nil:
				s.Console = vmm.ConsoleSpec{Type: "spice", Password: g.Spice.Passwd}
			}
		}
	}
	return vmm.VM{Name: dom.Name, Rescue: m.Rescue != nil, Spec: s}, &dom, m, nil
}

func toKiB(v uint, unit string) uint64 {
	switch strings.ToLower(unit) {
	case "b", "bytes":
		return uint64(v) / 1024
	case "m", "mib":
		return uint64(v) * 1024
	case "g", "gib":
		return uint64(v) << 20
	case "mb":
		return uint64(v) * 1000 * 1000 / 1024
	default: // KiB is libvirt's default
		return uint64(v)
	}
}

// countElements counts start elements by local name: the fuzz test uses it
// to prove that no value turned into markup.
func countElements(x string) (map[string]int, error) {
	out := map[string]int{}
	dec := xml.NewDecoder(bytes.NewReader([]byte(x)))
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			out[se.Name.Local]++
		}
	}
}
