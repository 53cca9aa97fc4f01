package lxd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Config says where LXD is.
type Config struct {
	// Socket is LXD's unix socket; default /var/lib/lxd/unix.socket.
	Socket string
	// Pool is the storage pool of the root disk; default "default".
	Pool string
}

// Driver is a vmm.Driver for LXD containers.
type Driver struct {
	cfg Config
	c   *client
}

var (
	_ vmm.Driver        = (*Driver)(nil)
	_ vmm.Snapshotter   = (*Driver)(nil)
	_ vmm.Resizer       = (*Driver)(nil)
	_ vmm.Limiter       = (*Driver)(nil)
	_ vmm.GuestAgent    = (*Driver)(nil)
	_ vmm.UsageReporter = (*Driver)(nil)
	_ vmm.ImageRooted   = (*Driver)(nil)
)

// New returns a driver; nothing is dialled until the first call.
func New(cfg Config) (*Driver, error) {
	if cfg.Socket == "" {
		cfg.Socket = "/var/lib/lxd/unix.socket"
	}
	if cfg.Pool == "" {
		cfg.Pool = "default"
	}
	if err := vmm.CheckPath("socket", cfg.Socket); err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, c: newClient(cfg.Socket)}, nil
}

// Config keys the driver owns. Weights are kept verbatim in user keys,
// because LXD's priorities (0-10) are coarser than cgroup weights.
const (
	keyCPUWeight = "user.virtplane.cpu_weight"
	keyIOWeight  = "user.virtplane.io_weight"
)

type instance struct {
	Name            string                       `json:"name"`
	Status          string                       `json:"status"`
	Type            string                       `json:"type"`
	Config          map[string]string            `json:"config"`
	Devices         map[string]map[string]string `json:"devices"`
	ExpandedDevices map[string]map[string]string `json:"expanded_devices"`
	Profiles        []string                     `json:"profiles"`
	Ephemeral       bool                         `json:"ephemeral"`
	Description     string                       `json:"description"`
	Stateful        bool                         `json:"stateful"`
	Architecture    string                       `json:"architecture"`
	CreatedAt       time.Time                    `json:"created_at"`
}

// containerName is stricter than vmm names: LXD names are host names.
var containerName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,62}$`)

func stateOf(status string) vmm.State {
	switch status {
	case "Running":
		return vmm.StateRunning
	case "Frozen":
		return vmm.StatePaused
	case "Stopped":
		return vmm.StateStopped
	case "Error":
		return vmm.StateCrashed
	}
	return vmm.StateUnknown
}

// bits per second in one KiB/s.
const kibsBits = 8192

func bitRate(kibs uint64) string { return strconv.FormatUint(kibs*kibsBits, 10) + "bit" }

// parseBitRate reads LXD rates ("8192000bit", "10Mbit", "1kbit") in KiB/s.
func parseBitRate(s string) uint64 {
	s = strings.TrimSpace(s)
	mult := map[string]uint64{"bit": 1, "kbit": 1000, "Mbit": 1000 * 1000, "Gbit": 1000 * 1000 * 1000}
	for _, suf := range []string{"kbit", "Mbit", "Gbit", "bit"} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n > (1<<64-1)/mult[suf] {
				return 0
			}
			return n * mult[suf] / kibsBits
		}
	}
	return 0
}

// nicDevice renders one NIC as an LXD device.
func nicDevice(n vmm.NIC, lim vmm.NICLimits) map[string]string {
	dev := map[string]string{"type": "nic", "name": ""}
	if n.Bridge != "" {
		dev["nictype"] = "bridged"
		dev["parent"] = n.Bridge
	} else {
		dev["nictype"] = "p2p"
	}
	if n.Tap != "" {
		dev["host_name"] = n.Tap
	}
	if n.MAC != "" {
		dev["hwaddr"] = n.MAC
	}
	if lim.InboundKiBs > 0 {
		dev["limits.ingress"] = bitRate(lim.InboundKiBs)
	}
	if lim.OutboundKiBs > 0 {
		dev["limits.egress"] = bitRate(lim.OutboundKiBs)
	}
	return dev
}

func priority(weight uint64) string {
	// cgroup weights run 1-10000, LXD priorities 0-10.
	return strconv.FormatUint(min((weight+999)/1000, 10), 10)
}

// RootFromImage marks that a container's root file system comes from its
// image (vmm.ImageRooted): callers hand over no root disk.
func (d *Driver) RootFromImage() {}

// Create creates (but does not start) a container from spec.Image.
func (d *Driver) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	if err := spec.Validate(); err != nil {
		return vmm.VM{}, err
	}
	if !containerName.MatchString(spec.Name) {
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "name %q: LXD wants a letter first, then letters, digits and '-'", spec.Name)
	}
	switch {
	case spec.Image == "":
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "image: empty; an LXD container is created from an image alias")
	case len(spec.Disks) > 0:
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "disks: an LXD container's root file system comes from its image; extra disks are not supported")
	case spec.Boot.Kernel != "":
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "boot.kernel: containers share the host kernel")
	case spec.Console.Type != "":
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "console.type %q: containers have no graphical console", spec.Console.Type)
	case spec.Template != nil && *spec.Template != (vmm.Template{}):
		return vmm.VM{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "template: containers have no virtual hardware to template")
	}
	spec = spec.Normalize()
	config := map[string]string{
		"limits.cpu":    strconv.Itoa(spec.VCPUs),
		"limits.memory": strconv.FormatInt(spec.MemoryMiB, 10) + "MiB",
	}
	if w := spec.Limits.CPUWeight; w > 0 {
		config["limits.cpu.priority"] = priority(w)
		config[keyCPUWeight] = strconv.FormatUint(w, 10)
	}
	if w := spec.Limits.IOWeight; w > 0 {
		config["limits.disk.priority"] = priority(w)
		config[keyIOWeight] = strconv.FormatUint(w, 10)
	}
	if c := spec.Limits.CPUCapPercent; c > 0 && c != vmm.NoCap {
		config["limits.cpu.allowance"] = allowance(c)
	}
	if ci := spec.CloudInit; ci != nil {
		config["user.user-data"] = ci.UserData
		config["user.meta-data"] = ci.MetaData
		if ci.NetworkConfig != "" {
			config["user.network-config"] = ci.NetworkConfig
		}
	}
	devices := map[string]map[string]string{
		"root": {"type": "disk", "path": "/", "pool": d.cfg.Pool},
	}
	for i, n := range spec.NICs {
		devices[fmt.Sprintf("eth%d", i)] = nicDevice(n, spec.Limits.NICs[n.MAC])
		devices[fmt.Sprintf("eth%d", i)]["name"] = fmt.Sprintf("eth%d", i)
	}
	body := map[string]any{
		"name":     spec.Name,
		"type":     "container",
		"source":   map[string]string{"type": "image", "alias": spec.Image},
		"config":   config,
		"devices":  devices,
		"profiles": []string{},
	}
	if err := d.c.call(ctx, http.MethodPost, "/1.0/instances", body, nil); err != nil {
		return vmm.VM{}, err
	}
	return d.Get(ctx, spec.Name)
}

func (d *Driver) instance(ctx context.Context, name string) (instance, error) {
	var in instance
	if !containerName.MatchString(name) {
		return in, virtplane.Errorf(virtplane.ErrNotFound, "vm %q", name)
	}
	err := d.c.call(ctx, http.MethodGet, "/1.0/instances/"+esc(name), nil, &in)
	return in, err
}

func view(in instance) vmm.VM {
	s := vmm.Spec{Name: in.Name, Image: in.Config["image.description"]}
	s.VCPUs, _ = strconv.Atoi(in.Config["limits.cpu"])
	if m, ok := strings.CutSuffix(in.Config["limits.memory"], "MiB"); ok {
		s.MemoryMiB, _ = strconv.ParseInt(m, 10, 64)
	}
	s.Limits.CPUWeight, _ = strconv.ParseUint(in.Config[keyCPUWeight], 10, 64)
	s.Limits.IOWeight, _ = strconv.ParseUint(in.Config[keyIOWeight], 10, 64)
	s.Limits.CPUCapPercent = capOf(in.Config["limits.cpu.allowance"])
	names := make([]string, 0, len(in.Devices))
	for n, dev := range in.Devices {
		if dev["type"] == "nic" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		dev := in.Devices[n]
		nic := vmm.NIC{Bridge: dev["parent"], Tap: dev["host_name"], MAC: strings.ToLower(dev["hwaddr"]), Model: "virtio"}
		nic.Limits = vmm.NICLimits{InboundKiBs: parseBitRate(dev["limits.ingress"]), OutboundKiBs: parseBitRate(dev["limits.egress"])}
		if nic.Limits != (vmm.NICLimits{}) && nic.MAC != "" {
			if s.Limits.NICs == nil {
				s.Limits.NICs = map[string]vmm.NICLimits{}
			}
			s.Limits.NICs[nic.MAC] = nic.Limits
		}
		s.NICs = append(s.NICs, nic)
	}
	if ud, ok := in.Config["user.user-data"]; ok {
		s.CloudInit = &vmm.CloudInit{UserData: ud, MetaData: in.Config["user.meta-data"], NetworkConfig: in.Config["user.network-config"]}
	}
	return vmm.VM{Name: in.Name, State: stateOf(in.Status), Spec: s}
}

// Get returns one container.
func (d *Driver) Get(ctx context.Context, name string) (vmm.VM, error) {
	in, err := d.instance(ctx, name)
	if err != nil {
		return vmm.VM{}, err
	}
	return view(in), nil
}

// List returns every container, sorted by name.
func (d *Driver) List(ctx context.Context) ([]vmm.VM, error) {
	var ins []instance
	if err := d.c.call(ctx, http.MethodGet, "/1.0/instances?recursion=1", nil, &ins); err != nil {
		return nil, err
	}
	out := make([]vmm.VM, 0, len(ins))
	for _, in := range ins {
		if in.Type != "" && in.Type != "container" {
			continue
		}
		out = append(out, view(in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// changeState checks the current state against from and sends action.
func (d *Driver) changeState(ctx context.Context, name, action string, from []vmm.State, extra map[string]any) error {
	in, err := d.instance(ctx, name)
	if err != nil {
		return err
	}
	st := stateOf(in.Status)
	ok := false
	for _, f := range from {
		ok = ok || f == st
	}
	if !ok {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot %s", name, st, action)
	}
	body := map[string]any{"action": action, "timeout": -1}
	for k, v := range extra {
		body[k] = v
	}
	return d.c.call(ctx, http.MethodPut, "/1.0/instances/"+esc(name)+"/state", body, nil)
}

// Start starts a stopped container.
func (d *Driver) Start(ctx context.Context, name string) error {
	return d.changeState(ctx, name, "start", []vmm.State{vmm.StateStopped, vmm.StateCrashed}, nil)
}

// Shutdown asks init to power off (LXD sends SIGPWR) and waits up to timeout.
func (d *Driver) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	secs := max(1, int(timeout.Round(time.Second)/time.Second))
	err := d.changeState(ctx, name, "stop", []vmm.State{vmm.StateRunning}, map[string]any{"timeout": secs, "force": false})
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "timed out") || err != nil && strings.Contains(err.Error(), "Failed shutting down") {
		return virtplane.Errorf(virtplane.ErrTimeout, "vm %q did not shut down within %s: %v", name, timeout, err)
	}
	return err
}

// Stop kills the container.
func (d *Driver) Stop(ctx context.Context, name string) error {
	err := d.changeState(ctx, name, "stop", []vmm.State{vmm.StateRunning, vmm.StatePaused}, map[string]any{"force": true})
	if errors.Is(err, virtplane.ErrConflict) && strings.Contains(err.Error(), "already stopped") {
		// Its init exited between our look and LXD's: stopped, as asked.
		// (A machine seen stopped is still refused with ErrConflict above.)
		return nil
	}
	return err
}

// Reboot restarts the container forcibly.
func (d *Driver) Reboot(ctx context.Context, name string) error {
	return d.changeState(ctx, name, "restart", []vmm.State{vmm.StateRunning}, map[string]any{"force": true})
}

// Suspend freezes the container's processes.
func (d *Driver) Suspend(ctx context.Context, name string) error {
	return d.changeState(ctx, name, "freeze", []vmm.State{vmm.StateRunning}, nil)
}

// Resume thaws a frozen container.
func (d *Driver) Resume(ctx context.Context, name string) error {
	return d.changeState(ctx, name, "unfreeze", []vmm.State{vmm.StatePaused}, nil)
}

// Delete removes a stopped container with its snapshots.
func (d *Driver) Delete(ctx context.Context, name string) error {
	in, err := d.instance(ctx, name)
	if err != nil {
		return err
	}
	if st := stateOf(in.Status); st != vmm.StateStopped && st != vmm.StateCrashed {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot delete", name, st)
	}
	return whileBusy(ctx, func() error { return d.c.call(ctx, http.MethodDelete, "/1.0/instances/"+esc(name), nil, nil) })
}

// busyWait bounds how long a call waits out LXD's lock of an instance: the
// lock of an operation that already answered (a stop) is released a moment
// after its answer, and a call in that moment is refused as busy.
const busyWait = 10 * time.Second

// whileBusy runs call again while LXD says the instance is busy with
// another operation, for at most busyWait.
func whileBusy(ctx context.Context, call func() error) error {
	end := time.Now().Add(busyWait)
	for {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "is busy running") || time.Now().After(end) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// patch applies a partial update of config and devices (sync in LXD).
func (d *Driver) patch(ctx context.Context, name string, body map[string]any) error {
	return d.c.call(ctx, http.MethodPatch, "/1.0/instances/"+esc(name), body, nil)
}
