package vmm

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/virtplane/virtplane"
)

// Spec describes a machine to create.
type Spec struct {
	// Name identifies the machine on its node: 1–63 characters of letters,
	// digits, '.', '_' and '-', starting with a letter or digit.
	Name      string
	VCPUs     int
	MemoryMiB int64
	// Image is the image a container driver creates the root filesystem
	// from (an LXD image alias). VM drivers boot from Disks or Boot and
	// reject an Image.
	Image string
	Disks []Disk
	NICs  []NIC
	// Boot, when Kernel is set, boots the kernel directly instead of
	// from the first disk.
	Boot Boot
	// CloudInit, when not nil, is handed to the guest as a NoCloud seed.
	CloudInit *CloudInit
	// Console selects the graphical console; the zero value has none.
	Console ConsoleSpec
	Limits  Limits
	// Template, when set, adapts the virtual hardware (see Template).
	Template *Template
}

// Template is a named set of virtual hardware choices (VMmanager's
// "configurations"): each field left empty keeps the driver's default. A
// driver that cannot apply a field it is given refuses the spec with
// ErrInvalidArgument naming the field; it never ignores one.
type Template struct {
	// Machine is the machine type ("pc", "q35", "pc-i440fx-7.2").
	Machine string
	// CPUMode is "host-passthrough", "host-model" or "custom" (with CPUModel).
	CPUMode  string
	CPUModel string
	// DiskBus puts the disks on "virtio", "sata", "scsi" or "ide".
	DiskBus string
	// NICModel is the model of every NIC ("virtio", "e1000", "rtl8139").
	NICModel string
	// Video is the video device model ("vga", "cirrus", "virtio", "qxl", "bochs", "none").
	Video string
	// Override is hypervisor-specific configuration applied on top of what
	// the driver renders (libvirt: a partial <domain> document); drivers
	// without such a configuration refuse a non-empty one.
	Override string
}

// DiskSource is where a disk's data lives, as storage hands it over
// (storage.Attachment has the same fields).
type DiskSource struct {
	Kind     string   // "file", "block", "rbd" or "iscsi"
	Path     string   // file or block device path (file, block)
	Format   string   // "qcow2" or "raw"
	Pool     string   // RBD pool (rbd)
	Image    string   // RBD image name (rbd)
	Monitors []string // "host:port" monitor addresses (rbd)
	User     string   // cephx user without "client." (rbd); empty = no auth
	Secret   string   // libvirt secret UUID for cephx (rbd), optional
	URL      string   // iscsi://host:port/iqn/lun (iscsi)
}

// Disk is a disk attached to a machine.
type Disk struct {
	// Target is the device name in the guest: vda…vdz, sda…sdz, hda…hdd.
	Target   string
	Source   DiskSource
	ReadOnly bool
	// CDROM attaches the source as a CD-ROM drive instead of a disk.
	CDROM bool
}

// NIC is a network interface of a machine.
type NIC struct {
	// Bridge attaches the NIC to a Linux bridge; Tap names the host-side
	// tap device (optional with Bridge, alone: an unmanaged tap).
	Bridge string
	Tap    string
	MAC    string // unicast, colon-separated; empty lets the driver choose
	Model  string // "virtio" (default), "e1000", "rtl8139"
	Limits NICLimits
}

// NICLimits limits a NIC's bandwidth in KiB/s; 0 means unlimited.
type NICLimits struct {
	InboundKiBs  uint64
	OutboundKiBs uint64
}

// DiskLimits throttles one disk; 0 means unlimited.
type DiskLimits struct {
	ReadIOPS, WriteIOPS         uint64
	ReadBytesSec, WriteBytesSec uint64
}

// Limits are the resource limits of a machine.
type Limits struct {
	// CPUWeight and IOWeight are relative shares (cgroup weights, 1–10000;
	// 0 leaves the default).
	CPUWeight uint64
	IOWeight  uint64
	// CPUCapPercent caps the CPU time of the whole machine, in percent of
	// one host CPU (150: one and a half CPUs, whatever the vCPU count).
	// 0 leaves the cap as it is (no cap on a new machine); NoCap removes it.
	CPUCapPercent uint64
	// Disks maps a disk target to its limits.
	Disks map[string]DiskLimits
	// NICs maps a NIC MAC (lower case) to its limits. Limits given in
	// Spec.NICs[i].Limits are merged in by Normalize.
	NICs map[string]NICLimits
}

// NoCap in Limits.CPUCapPercent removes a machine's CPU cap.
const NoCap = ^uint64(0)

// MaxCPUCapPercent is the largest CPU cap: 256 host CPUs.
const MaxCPUCapPercent = 25600

// Boot selects a direct kernel boot.
type Boot struct {
	Kernel, Initrd, Cmdline string
}

// CloudInit is NoCloud data for the guest.
type CloudInit struct {
	UserData      string
	MetaData      string
	NetworkConfig string
}

// ConsoleSpec selects the graphical console.
type ConsoleSpec struct {
	Type     string // "", "vnc" or "spice"
	Password string
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	targetRE  = regexp.MustCompile(`^(vd[a-z]|sd[a-z]|hd[a-d])$`)
	macRE     = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	cephRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	imageRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$`)
	iqnRE     = regexp.MustCompile(`^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(:[A-Za-z0-9._:-]+)?$`)
	hostRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$`)
	nicModels = map[string]bool{"": true, "virtio": true, "e1000": true, "rtl8139": true}
)

var (
	templateRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	cpuModes   = map[string]bool{"": true, "host-passthrough": true, "host-model": true, "custom": true}
	diskBuses  = map[string]bool{"": true, "virtio": true, "sata": true, "scsi": true, "ide": true}
	videos     = map[string]bool{"": true, "vga": true, "cirrus": true, "virtio": true, "qxl": true, "bochs": true, "none": true}
)

// MaxOverride is the largest template override, in bytes.
const MaxOverride = 64 << 10

// Validate checks a template's fields and names the first at fault.
func (t Template) Validate() error {
	for _, f := range []struct{ name, v string }{{"machine", t.Machine}, {"cpu_model", t.CPUModel}} {
		if f.v != "" && !templateRE.MatchString(f.v) {
			return invalid("template.%s %q: want letters, digits, '.', '_' or '-'", f.name, f.v)
		}
	}
	if !cpuModes[t.CPUMode] {
		return invalid("template.cpu_mode %q: want host-passthrough, host-model or custom", t.CPUMode)
	}
	if (t.CPUMode == "custom") != (t.CPUModel != "") {
		return invalid("template.cpu_model %q: a custom cpu_mode needs a cpu_model, and only it takes one", t.CPUModel)
	}
	if !diskBuses[t.DiskBus] {
		return invalid("template.disk_bus %q: want virtio, sata, scsi or ide", t.DiskBus)
	}
	if !nicModels[t.NICModel] {
		return invalid("template.nic_model %q: want virtio, e1000 or rtl8139", t.NICModel)
	}
	if !videos[t.Video] {
		return invalid("template.video %q: want vga, cirrus, virtio, qxl, bochs or none", t.Video)
	}
	if len(t.Override) > MaxOverride || !utf8.ValidString(t.Override) || strings.ContainsRune(t.Override, 0) {
		return invalid("template.override: want at most %d bytes of UTF-8 text", MaxOverride)
	}
	return nil
}

// ValidName reports whether s is a valid machine or snapshot name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

// CheckName returns ErrInvalidArgument naming field when s is not a valid name.
func CheckName(field, s string) error {
	if !ValidName(s) {
		return invalid("%s %q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", field, s)
	}
	return nil
}

// Validate checks every field of the spec and returns ErrInvalidArgument
// naming the first field at fault. Drivers call it before they render
// anything, so no field can smuggle markup or options into the hypervisor's
// configuration.
func (s Spec) Validate() error {
	if err := CheckName("name", s.Name); err != nil {
		return err
	}
	if s.VCPUs < 1 || s.VCPUs > 512 {
		return invalid("vcpus %d: want 1-512", s.VCPUs)
	}
	if s.MemoryMiB < 16 || s.MemoryMiB > 16<<20 {
		return invalid("memory_mib %d: want 16-16777216", s.MemoryMiB)
	}
	if s.Image != "" && !imageRE.MatchString(s.Image) {
		return invalid("image %q: want letters, digits and . _ / : -", s.Image)
	}
	targets := map[string]bool{}
	for i, d := range s.Disks {
		if err := d.Validate(fmt.Sprintf("disks[%d]", i)); err != nil {
			return err
		}
		if targets[d.Target] {
			return invalid("disks[%d].target %q: used twice", i, d.Target)
		}
		targets[d.Target] = true
	}
	macs := map[string]bool{}
	for i, n := range s.NICs {
		if err := n.validate(fmt.Sprintf("nics[%d]", i)); err != nil {
			return err
		}
		if n.MAC != "" {
			m := strings.ToLower(n.MAC)
			if macs[m] {
				return invalid("nics[%d].mac %q: used twice", i, n.MAC)
			}
			macs[m] = true
		}
	}
	if err := s.Boot.validate(); err != nil {
		return err
	}
	if s.CloudInit != nil {
		for field, v := range map[string]string{"user_data": s.CloudInit.UserData, "meta_data": s.CloudInit.MetaData, "network_config": s.CloudInit.NetworkConfig} {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return invalid("cloud_init.%s: must be UTF-8 text without NUL", field)
			}
			if len(v) > 1<<20 {
				return invalid("cloud_init.%s: %d bytes, want at most 1 MiB", field, len(v))
			}
		}
	}
	switch s.Console.Type {
	case "", "vnc", "spice":
	default:
		return invalid("console.type %q: want vnc or spice", s.Console.Type)
	}
	if err := CheckPassword("console.password", s.Console.Password); err != nil {
		return err
	}
	if s.Template != nil {
		if err := s.Template.Validate(); err != nil {
			return err
		}
	}
	return s.Limits.validate(targets, macs)
}

// CheckPassword rejects passwords that cannot be passed safely: control
// characters, non-UTF-8 bytes, or more than 64 bytes (VNC uses only 8).
func CheckPassword(field, p string) error {
	if len(p) > 64 || !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return invalid("%s: want at most 64 printable characters", field)
	}
	return nil
}

// Validate checks a disk (its target and source); field prefixes the
// error message.
func (d Disk) Validate(field string) error {
	if !targetRE.MatchString(d.Target) {
		return invalid("%s.target %q: want vdX, sdX or hdX", field, d.Target)
	}
	return d.Source.Validate(field + ".source")
}

// Validate checks a disk source; field prefixes the error message.
func (src DiskSource) Validate(field string) error {
	switch src.Format {
	case "qcow2", "raw":
	case "":
		if src.Kind != "rbd" && src.Kind != "iscsi" {
			return invalid("%s.format: empty, want qcow2 or raw", field)
		}
	default:
		return invalid("%s.format %q: want qcow2 or raw", field, src.Format)
	}
	switch src.Kind {
	case "file", "block":
		return CheckPath(field+".path", src.Path)
	case "rbd":
		if !cephRE.MatchString(src.Pool) {
			return invalid("%s.pool %q: want a ceph pool name", field, src.Pool)
		}
		if !cephRE.MatchString(src.Image) {
			return invalid("%s.image %q: want an rbd image name", field, src.Image)
		}
		if len(src.Monitors) == 0 {
			return invalid("%s.monitors: empty", field)
		}
		for j, m := range src.Monitors {
			if err := checkHostPort(fmt.Sprintf("%s.monitors[%d]", field, j), m); err != nil {
				return err
			}
		}
		if src.User != "" && !cephRE.MatchString(src.User) {
			return invalid("%s.user %q: want a cephx user name", field, src.User)
		}
		if src.Secret != "" && !uuidRE.MatchString(src.Secret) {
			return invalid("%s.secret %q: want a UUID", field, src.Secret)
		}
		return nil
	case "iscsi":
		_, _, _, _, err := ParseISCSIURL(src.URL)
		if err != nil {
			return invalid("%s.url %q: %v", field, src.URL, err)
		}
		return nil
	default:
		return invalid("%s.kind %q: want file, block, rbd or iscsi", field, src.Kind)
	}
}

// ParseISCSIURL splits iscsi://host:port/iqn/lun.
func ParseISCSIURL(s string) (host string, port int, iqn string, lun int, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", 0, "", 0, err
	}
	if u.Scheme != "iscsi" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", 0, "", 0, fmt.Errorf("want iscsi://host:port/iqn/lun")
	}
	if err := checkHostPort("host", u.Host); err != nil {
		return "", 0, "", 0, fmt.Errorf("bad host:port")
	}
	h, p, _ := net.SplitHostPort(u.Host)
	port, _ = strconv.Atoi(p)
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 2 || !iqnRE.MatchString(parts[0]) {
		return "", 0, "", 0, fmt.Errorf("want an IQN and a LUN in the path")
	}
	lun, err = strconv.Atoi(parts[1])
	if err != nil || lun < 0 || lun > 16383 {
		return "", 0, "", 0, fmt.Errorf("bad LUN %q", parts[1])
	}
	return h, port, parts[0], lun, nil
}

func checkHostPort(field, hp string) error {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return invalid("%s %q: want host:port", field, hp)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return invalid("%s %q: bad port", field, hp)
	}
	if net.ParseIP(h) == nil && !hostRE.MatchString(h) {
		return invalid("%s %q: bad host", field, hp)
	}
	return nil
}

// CheckPath accepts a clean absolute path of printable characters.
func CheckPath(field, p string) error {
	if p == "" || !strings.HasPrefix(p, "/") || path.Clean(p) != p || len(p) > 4096 ||
		!utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return unicode.IsControl(r) || r == '\uFFFD' }) >= 0 {
		return invalid("%s %q: want a clean absolute path of printable characters", field, p)
	}
	return nil
}

// ifnameRE follows the kernel's rules for interface names, minus the
// characters that are legal but invite trouble in configuration files.
var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

func (n NIC) validate(field string) error {
	if n.Bridge == "" && n.Tap == "" {
		return invalid("%s: want a bridge or a tap", field)
	}
	if n.Bridge != "" && !ifnameRE.MatchString(n.Bridge) {
		return invalid("%s.bridge %q: want an interface name", field, n.Bridge)
	}
	if n.Tap != "" && !ifnameRE.MatchString(n.Tap) {
		return invalid("%s.tap %q: want an interface name", field, n.Tap)
	}
	if n.MAC != "" {
		if !macRE.MatchString(n.MAC) {
			return invalid("%s.mac %q: want xx:xx:xx:xx:xx:xx", field, n.MAC)
		}
		if b, _ := strconv.ParseUint(n.MAC[:2], 16, 8); b&1 == 1 {
			return invalid("%s.mac %q: multicast", field, n.MAC)
		}
	}
	if !nicModels[n.Model] {
		return invalid("%s.model %q: want virtio, e1000 or rtl8139", field, n.Model)
	}
	return nil
}

func (b Boot) validate() error {
	if b.Kernel == "" {
		if b.Initrd != "" || b.Cmdline != "" {
			return invalid("boot.kernel: empty but initrd or cmdline set")
		}
		return nil
	}
	if err := CheckPath("boot.kernel", b.Kernel); err != nil {
		return err
	}
	if b.Initrd != "" {
		if err := CheckPath("boot.initrd", b.Initrd); err != nil {
			return err
		}
	}
	return CheckCmdline("boot.cmdline", b.Cmdline)
}

// CheckCmdline accepts a kernel command line of printable characters.
func CheckCmdline(field, c string) error {
	if len(c) > 2048 || !utf8.ValidString(c) || strings.IndexFunc(c, func(r rune) bool { return unicode.IsControl(r) || r == '\uFFFD' }) >= 0 {
		return invalid("%s: want at most 2048 printable characters", field)
	}
	return nil
}

func (l Limits) validate(targets, macs map[string]bool) error {
	if l.CPUWeight > 10000 {
		return invalid("limits.cpu_weight %d: want 0-10000", l.CPUWeight)
	}
	if l.IOWeight > 10000 {
		return invalid("limits.io_weight %d: want 0-10000", l.IOWeight)
	}
	if l.CPUCapPercent > MaxCPUCapPercent && l.CPUCapPercent != NoCap {
		return invalid("limits.cpu_cap_percent %d: want 1-%d, 0 (unchanged) or NoCap", l.CPUCapPercent, MaxCPUCapPercent)
	}
	for t := range l.Disks {
		if targets != nil && !targets[t] {
			return invalid("limits.disks[%q]: no such disk", t)
		}
	}
	for m := range l.NICs {
		if macs != nil && !macs[strings.ToLower(m)] {
			return invalid("limits.nics[%q]: no NIC with that MAC", m)
		}
	}
	return nil
}

// ValidateLimits checks limits on their own (for SetLimits, where the driver
// matches disks and NICs itself).
func (l Limits) Validate() error { return l.validate(nil, nil) }

// Normalize returns a copy with defaults filled in: NIC models default to
// virtio, MACs are lower-cased, and per-NIC limits are copied into
// Limits.NICs. Drivers normalise after Validate.
func (s Spec) Normalize() Spec {
	out := s
	out.NICs = append([]NIC(nil), s.NICs...)
	out.Disks = append([]Disk(nil), s.Disks...)
	nics := map[string]NICLimits{}
	for m, l := range s.Limits.NICs {
		nics[strings.ToLower(m)] = l
	}
	for i := range out.NICs {
		if out.NICs[i].Model == "" {
			out.NICs[i].Model = "virtio"
		}
		out.NICs[i].MAC = strings.ToLower(out.NICs[i].MAC)
		if l := out.NICs[i].Limits; l != (NICLimits{}) && out.NICs[i].MAC != "" {
			nics[out.NICs[i].MAC] = l
		}
	}
	if len(nics) > 0 {
		out.Limits.NICs = nics
	}
	if len(s.Limits.Disks) > 0 {
		d := make(map[string]DiskLimits, len(s.Limits.Disks))
		for k, v := range s.Limits.Disks {
			d[k] = v
		}
		out.Limits.Disks = d
	}
	return out
}

// CheckRescue validates a rescue image: a kernel (with optional initrd and
// command line) or an ISO, not both.
func CheckRescue(r RescueSpec) error {
	if (r.Kernel == "") == (r.ISO == "") {
		return invalid("rescue: want a kernel or an iso")
	}
	if r.ISO != "" {
		if r.Initrd != "" || r.Cmdline != "" {
			return invalid("rescue: initrd and cmdline need a kernel")
		}
		return CheckPath("rescue.iso", r.ISO)
	}
	return Boot{Kernel: r.Kernel, Initrd: r.Initrd, Cmdline: r.Cmdline}.validate()
}
