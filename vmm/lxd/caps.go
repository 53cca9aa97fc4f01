package lxd

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

type snapshotInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Stateful  bool      `json:"stateful"`
}

// CreateSnapshot takes a stateless snapshot. Stateful snapshots (memory)
// need CRIU on the host; where LXD refuses them the error wraps
// ErrNotImplemented.
func (d *Driver) CreateSnapshot(ctx context.Context, name string, spec vmm.SnapshotSpec) error {
	if err := vmm.CheckName("snapshot name", spec.Name); err != nil {
		return err
	}
	if !containerName.MatchString(spec.Name) {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "snapshot name %q: LXD wants a letter first, then letters, digits and '-'", spec.Name)
	}
	in, err := d.instance(ctx, name)
	if err != nil {
		return err
	}
	if spec.Memory && stateOf(in.Status) != vmm.StateRunning {
		return virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: a memory snapshot needs a running container", name, stateOf(in.Status))
	}
	snaps, err := d.ListSnapshots(ctx, name)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.Name == spec.Name {
			return virtplane.Errorf(virtplane.ErrAlreadyExists, "snapshot %q of vm %q", spec.Name, name)
		}
	}
	err = d.c.call(ctx, http.MethodPost, "/1.0/instances/"+esc(name)+"/snapshots", map[string]any{"name": spec.Name, "stateful": spec.Memory}, nil)
	if err != nil && spec.Memory {
		// Make sure a failed stateful attempt left no snapshot behind.
		_ = d.c.call(context.WithoutCancel(ctx), http.MethodDelete, "/1.0/instances/"+esc(name)+"/snapshots/"+esc(spec.Name), nil, nil)
		return virtplane.Errorf(virtplane.ErrNotImplemented, "stateful snapshot of %q: LXD cannot checkpoint this container (needs CRIU): %v", name, err)
	}
	return err
}

// ListSnapshots returns the snapshots oldest first.
func (d *Driver) ListSnapshots(ctx context.Context, name string) ([]vmm.Snapshot, error) {
	if _, err := d.instance(ctx, name); err != nil {
		return nil, err
	}
	var snaps []snapshotInfo
	if err := d.c.call(ctx, http.MethodGet, "/1.0/instances/"+esc(name)+"/snapshots?recursion=1", nil, &snaps); err != nil {
		return nil, err
	}
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].CreatedAt.Before(snaps[j].CreatedAt) })
	out := make([]vmm.Snapshot, 0, len(snaps))
	for _, s := range snaps {
		n := s.Name
		if i := strings.LastIndex(n, "/"); i >= 0 {
			n = n[i+1:]
		}
		st := vmm.StateStopped
		if s.Stateful {
			st = vmm.StateRunning
		}
		out = append(out, vmm.Snapshot{Name: n, Memory: s.Stateful, State: st, Created: s.CreatedAt})
	}
	return out, nil
}

func (d *Driver) hasSnapshot(ctx context.Context, name, snap string) error {
	snaps, err := d.ListSnapshots(ctx, name)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.Name == snap {
			return nil
		}
	}
	return virtplane.Errorf(virtplane.ErrNotFound, "snapshot %q of vm %q", snap, name)
}

// RevertSnapshot restores the container's file system and configuration.
// A stateless snapshot leaves the container stopped.
func (d *Driver) RevertSnapshot(ctx context.Context, name, snap string) error {
	if err := d.hasSnapshot(ctx, name, snap); err != nil {
		return err
	}
	in, err := d.instance(ctx, name)
	if err != nil {
		return err
	}
	if stateOf(in.Status) != vmm.StateStopped {
		if err := d.Stop(ctx, name); err != nil {
			return err
		}
	}
	return d.c.call(ctx, http.MethodPut, "/1.0/instances/"+esc(name), map[string]any{"restore": snap}, nil)
}

// DeleteSnapshot removes a snapshot.
func (d *Driver) DeleteSnapshot(ctx context.Context, name, snap string) error {
	if err := d.hasSnapshot(ctx, name, snap); err != nil {
		return err
	}
	return d.c.call(ctx, http.MethodDelete, "/1.0/instances/"+esc(name)+"/snapshots/"+esc(snap), nil, nil)
}

// Resize sets limits.cpu and limits.memory; LXD applies them live.
func (d *Driver) Resize(ctx context.Context, name string, r vmm.Resources) error {
	probe := vmm.Spec{Name: name, VCPUs: r.VCPUs, MemoryMiB: r.MemoryMiB}
	if err := probe.Validate(); err != nil {
		return err
	}
	if _, err := d.instance(ctx, name); err != nil {
		return err
	}
	return d.patch(ctx, name, map[string]any{"config": map[string]string{
		"limits.cpu":    strconv.Itoa(r.VCPUs),
		"limits.memory": strconv.FormatInt(r.MemoryMiB, 10) + "MiB",
	}})
}

// allowance is a CPU cap as LXD's hard quota: the CPU time per 100 ms
// (150% is 150ms/100ms, one and a half CPUs).
func allowance(percent uint64) string { return strconv.FormatUint(percent, 10) + "ms/100ms" }

// capOf reads back an allowance that allowance wrote; others (LXD's soft
// percentages) are no cap of ours.
func capOf(a string) uint64 {
	ms, ok := strings.CutSuffix(a, "ms/100ms")
	if !ok {
		return 0
	}
	v, _ := strconv.ParseUint(ms, 10, 64)
	return v
}

// SetLimits sets CPU and IO priorities and NIC limits in one update, which
// LXD applies live or not at all.
func (d *Driver) SetLimits(ctx context.Context, name string, l vmm.Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	in, err := d.instance(ctx, name)
	if err != nil {
		return err
	}
	for t := range l.Disks {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.disks[%q]: containers have no disks to throttle", t)
	}
	config := map[string]string{}
	if l.CPUWeight > 0 {
		config["limits.cpu.priority"] = priority(l.CPUWeight)
		config[keyCPUWeight] = strconv.FormatUint(l.CPUWeight, 10)
	}
	if l.IOWeight > 0 {
		config["limits.disk.priority"] = priority(l.IOWeight)
		config[keyIOWeight] = strconv.FormatUint(l.IOWeight, 10)
	}
	switch l.CPUCapPercent {
	case 0:
	case vmm.NoCap:
		config["limits.cpu.allowance"] = "" // an empty value unsets the key
	default:
		config["limits.cpu.allowance"] = allowance(l.CPUCapPercent)
	}
	devices := map[string]map[string]string{}
	for mac, nl := range l.NICs {
		mac = strings.ToLower(mac)
		found := ""
		for n, dev := range in.Devices {
			if dev["type"] == "nic" && strings.ToLower(dev["hwaddr"]) == mac {
				found = n
			}
		}
		if found == "" {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "limits.nics[%q]: vm %q has no NIC with that MAC", mac, name)
		}
		dev := map[string]string{}
		for k, v := range in.Devices[found] {
			dev[k] = v
		}
		delete(dev, "limits.ingress")
		delete(dev, "limits.egress")
		if nl.InboundKiBs > 0 {
			dev["limits.ingress"] = bitRate(nl.InboundKiBs)
		}
		if nl.OutboundKiBs > 0 {
			dev["limits.egress"] = bitRate(nl.OutboundKiBs)
		}
		devices[found] = dev
	}
	body := map[string]any{"config": config}
	if len(devices) > 0 {
		// PATCH replaces devices by name; the others stay.
		body["devices"] = devices
	}
	err = d.patch(ctx, name, body)
	if err != nil && strings.Contains(err.Error(), "cgroup controller is missing") {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "limits of %q: the host lacks a cgroup controller LXD needs: %v", name, err)
	}
	if err != nil && len(devices) > 0 && (strings.Contains(err.Error(), "qdisc") || strings.Contains(err.Error(), "tc ") || strings.Contains(err.Error(), "police")) {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "NIC limits of %q: the host kernel lacks the tc features LXD shapes with: %v", name, err)
	}
	return err
}

// GuestExec runs argv in the container and collects its output.
func (d *Driver) GuestExec(ctx context.Context, name string, argv []string) (vmm.ExecResult, error) {
	return d.exec(ctx, name, argv, nil)
}

func (d *Driver) exec(ctx context.Context, name string, argv []string, env map[string]string) (vmm.ExecResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "argv: empty")
	}
	in, err := d.instance(ctx, name)
	if err != nil {
		return vmm.ExecResult{}, err
	}
	if st := stateOf(in.Status); st != vmm.StateRunning {
		return vmm.ExecResult{}, virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s: cannot exec", name, st)
	}
	full := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
	for k, v := range env {
		full[k] = v
	}
	var meta struct {
		Return int               `json:"return"`
		Output map[string]string `json:"output"`
	}
	body := map[string]any{"command": argv, "wait-for-websocket": false, "interactive": false, "record-output": true, "environment": full}
	if err := d.c.call(ctx, http.MethodPost, "/1.0/instances/"+esc(name)+"/exec", body, &meta); err != nil {
		return vmm.ExecResult{}, err
	}
	res := vmm.ExecResult{ExitCode: meta.Return}
	for fd, dst := range map[string]*[]byte{"1": &res.Stdout, "2": &res.Stderr} {
		p := meta.Output[fd]
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/1.0/") {
			return res, fmt.Errorf("lxd: exec output at unexpected path %q", p)
		}
		b, err := d.c.get(ctx, p)
		if err != nil {
			return res, err
		}
		*dst = b
		_, _ = d.c.raw(ctx, http.MethodDelete, p, nil)
	}
	return res, nil
}

type instanceState struct {
	Status string `json:"status"`
	CPU    struct {
		Usage int64 `json:"usage"`
	} `json:"cpu"`
	Memory struct {
		Usage int64 `json:"usage"`
	} `json:"memory"`
	Network map[string]struct {
		Addresses []struct {
			Family  string `json:"family"`
			Address string `json:"address"`
			Netmask string `json:"netmask"`
		} `json:"addresses"`
		Counters struct {
			BytesReceived   int64 `json:"bytes_received"`
			BytesSent       int64 `json:"bytes_sent"`
			PacketsReceived int64 `json:"packets_received"`
			PacketsSent     int64 `json:"packets_sent"`
		} `json:"counters"`
		Hwaddr string `json:"hwaddr"`
	} `json:"network"`
}

func (d *Driver) state(ctx context.Context, name string) (instanceState, error) {
	var st instanceState
	if !containerName.MatchString(name) {
		return st, virtplane.Errorf(virtplane.ErrNotFound, "vm %q", name)
	}
	err := d.c.call(ctx, http.MethodGet, "/1.0/instances/"+esc(name)+"/state", nil, &st)
	return st, err
}

// GuestAddresses lists the container's interfaces as LXD sees them.
func (d *Driver) GuestAddresses(ctx context.Context, name string) ([]vmm.GuestInterface, error) {
	st, err := d.state(ctx, name)
	if err != nil {
		return nil, err
	}
	if stateOf(st.Status) != vmm.StateRunning {
		return nil, virtplane.Errorf(virtplane.ErrConflict, "vm %q is %s", name, stateOf(st.Status))
	}
	names := make([]string, 0, len(st.Network))
	for n := range st.Network {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]vmm.GuestInterface, 0, len(names))
	for _, n := range names {
		nw := st.Network[n]
		gi := vmm.GuestInterface{Name: n, MAC: strings.ToLower(nw.Hwaddr)}
		for _, a := range nw.Addresses {
			gi.Addresses = append(gi.Addresses, a.Address+"/"+a.Netmask)
		}
		out = append(out, gi)
	}
	return out, nil
}

// setPasswordScript uses chpasswd where the image has it, else hashes with
// mkpasswd and rewrites the user's entry (minimal images such as busybox).
const setPasswordScript = `set -e
if command -v chpasswd >/dev/null 2>&1; then
  printf '%s:%s\n' "$VPT_USER" "$VPT_PASS" | chpasswd; exit 0
fi
h=$(printf '%s' "$VPT_PASS" | mkpasswd -m sha512 -P 0)
f=/etc/shadow; [ -f $f ] || f=/etc/passwd
awk -F: -v OFS=: -v u="$VPT_USER" -v h="$h" '$1==u{$2=h; found=1} {print} END{exit !found}' $f >$f.vpt || { rm -f $f.vpt; echo "no user $VPT_USER" >&2; exit 1; }
cat $f.vpt >$f; rm -f $f.vpt
`

// SetGuestPassword sets a user's password in the container. The credentials travel
// in an environment variable, never through a shell command line.
func (d *Driver) SetGuestPassword(ctx context.Context, name, user, password string) error {
	if err := vmm.CheckName("user", user); err != nil {
		return err
	}
	if err := vmm.CheckPassword("password", password); err != nil {
		return err
	}
	if strings.Contains(password, ":") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "password: ':' cannot pass through chpasswd")
	}
	res, err := d.exec(ctx, name, []string{"/bin/sh", "-c", setPasswordScript}, map[string]string{"VPT_USER": user, "VPT_PASS": password})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("lxd: chpasswd in %q exited %d: %s", name, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// Usage reports CPU time, memory and NIC counters.
func (d *Driver) Usage(ctx context.Context, name string) (vmm.Usage, error) {
	st, err := d.state(ctx, name)
	if err != nil {
		return vmm.Usage{}, err
	}
	u := vmm.Usage{CPUTime: time.Duration(st.CPU.Usage), MemoryBytes: uint64(max(st.Memory.Usage, 0))}
	names := make([]string, 0, len(st.Network))
	for n := range st.Network {
		if n != "lo" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		c := st.Network[n].Counters
		u.NICs = append(u.NICs, vmm.NICUsage{MAC: strings.ToLower(st.Network[n].Hwaddr), RxBytes: uint64(c.BytesReceived), TxBytes: uint64(c.BytesSent), RxPackets: uint64(c.PacketsReceived), TxPackets: uint64(c.PacketsSent)})
	}
	return u, nil
}
