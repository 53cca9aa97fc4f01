package port

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/network/firewall"
	"github.com/virtplane/virtplane/network/hostnet"
	"github.com/virtplane/virtplane/network/routing"
	"github.com/virtplane/virtplane/network/shaping"
	"github.com/virtplane/virtplane/network/vxlan"
)

// OwnerTagPrefix starts the alias of the bridges a Host creates.
const OwnerTagPrefix = "virtplane-ports:"

// OwnerTag is the alias of the bridges made by the Host that keeps its
// state in stateDir. hostnet's declarative Apply deletes the owned links it
// is not told to keep, so each Host owns its own: it never touches the
// links of other hostnet users, nor the bridges of another Host on the same
// machine (a second daemon, a test beside a running daemon), which could
// be empty for a moment between a port's setup and its VM's start.
func OwnerTag(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return OwnerTagPrefix + hex.EncodeToString(sum[:6])
}

// DeviceRemover deletes a link by name; a *netlink.Handle is one.
type DeviceRemover interface {
	LinkByName(name string) (netlink.Link, error)
	LinkDel(link netlink.Link) error
}

// HostConfig holds what a Host composes.
type HostConfig struct {
	// StateDir keeps one file per port with its Spec: what tells, after a
	// restart, which bridges ports still use. Created when missing.
	StateDir string
	// Links manages the bridges; give it OwnerTag(StateDir) as its owner
	// tag.
	Links hostnet.Configurator
	// Firewall installs the ports' anti-spoofing policies.
	Firewall firewall.Enforcer
	// Shaper installs the ports' bandwidth limits.
	Shaper shaping.Limiter
	// Devices removes the IFB device shaping keeps for a port's inbound
	// traffic when the port itself is already gone (the Shaper can only
	// clean up through a live port); nil leaves such devices alone.
	Devices DeviceRemover
	// Routes returns the router of routed mode for the ports' gateways
	// (routing.New over the node's netlink); nil: the node cannot do
	// routed mode, and such ports are ErrNotImplemented.
	Routes func(routing.Config) (routing.Applier, error)
	// FDB programs the flood entries of the VxLAN devices; nil: the node
	// cannot do VXLAN mode, and such ports are ErrNotImplemented.
	FDB vxlan.FDB
}

// Host is the Ports of this machine's kernel (or of a network namespace).
type Host struct {
	cfg HostConfig
	// mu serialises changes: bridge use is decided from every port's spec,
	// and two concurrent decisions could delete a bridge a new port needs.
	mu sync.Mutex
}

var _ Ports = (*Host)(nil)

// NewHost returns a Host over cfg.
func NewHost(cfg HostConfig) (*Host, error) {
	switch {
	case cfg.StateDir == "":
		return nil, invalid("netport: StateDir is required")
	case cfg.Links == nil:
		return nil, invalid("netport: Links is required")
	case cfg.Firewall == nil:
		return nil, invalid("netport: Firewall is required")
	case cfg.Shaper == nil:
		return nil, invalid("netport: Shaper is required")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "netport: state directory %s: %v", cfg.StateDir, err)
	}
	return &Host{cfg: cfg}, nil
}

// NewKernelHost returns a Host over the network namespace nl and nft talk
// to (netlink.NewHandle() and nftables.New() for the current one).
func NewKernelHost(stateDir string, nl *netlink.Handle, nft *nftables.Conn) (*Host, error) {
	links, err := hostnet.New(hostnet.Config{Netlink: nl, OwnerTag: OwnerTag(stateDir)})
	if err != nil {
		return nil, err
	}
	fw, err := firewall.New(nft)
	if err != nil {
		return nil, err
	}
	sh, err := shaping.New(nl)
	if err != nil {
		return nil, err
	}
	routes := func(cfg routing.Config) (routing.Applier, error) { return routing.New(nl, cfg) }
	return NewHost(HostConfig{StateDir: stateDir, Links: links, Firewall: fw, Shaper: sh, Devices: nl, Routes: routes, FDB: nl})
}

// supports reports, as an ErrNotImplemented, a mode the Host is not
// configured for.
func (h *Host) supports(s Spec) error {
	switch {
	case s.Mode == ModeRouted && h.cfg.Routes == nil:
		return virtplane.Errorf(virtplane.ErrNotImplemented, "port %s: this node cannot do routed mode (no router configured)", s.Name)
	case s.Mode == ModeVXLAN && h.cfg.FDB == nil:
		return virtplane.Errorf(virtplane.ErrNotImplemented, "port %s: this node cannot do vxlan mode (no fdb configured)", s.Name)
	}
	return nil
}

func (h *Host) path(name string) string { return filepath.Join(h.cfg.StateDir, name+".json") }

// read returns a port's recorded spec, or ErrNotFound.
func (h *Host) read(name string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(h.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return s, virtplane.Errorf(virtplane.ErrNotFound, "port %s: no such port", name)
	}
	if err != nil {
		return s, virtplane.Errorf(virtplane.ErrUnavailable, "port %s: read state: %v", name, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, virtplane.Errorf(virtplane.ErrUnavailable, "port %s: state file %s: %v", name, h.path(name), err)
	}
	return s, nil
}

// write records a spec durably: a crash leaves the old file or the new one.
func (h *Host) write(s Spec) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(h.cfg.StateDir, ".tmp-"+s.Name+"-")
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "port %s: write state: %v", s.Name, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), h.path(s.Name))
	}
	if err == nil {
		err = h.syncDir()
	}
	if err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "port %s: write state: %v", s.Name, err)
	}
	return nil
}

func (h *Host) remove(name string) error {
	if err := os.Remove(h.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return virtplane.Errorf(virtplane.ErrUnavailable, "port %s: remove state: %v", name, err)
	}
	return h.syncDir()
}

func (h *Host) syncDir() error {
	d, err := os.Open(h.cfg.StateDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// records returns every recorded spec, by name.
func (h *Host) records() (map[string]Spec, error) {
	ents, err := os.ReadDir(h.cfg.StateDir)
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "netport: list state: %v", err)
	}
	out := map[string]Spec{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		s, err := h.read(name)
		if errors.Is(err, virtplane.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

// List returns the recorded ports.
func (h *Host) List(ctx context.Context) ([]Spec, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := h.records()
	if err != nil {
		return nil, err
	}
	out := make([]Spec, 0, len(recs))
	for _, s := range recs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Setup records the spec first (so that a crash leaves something Teardown
// knows to remove), then converges the node to it.
func (h *Host) Setup(ctx context.Context, s Spec) error {
	s = s.Normalize()
	if err := s.Validate(); err != nil {
		return err
	}
	if err := h.supports(s); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	recs, err := h.records()
	if err != nil {
		return err
	}
	prev, existed := recs[s.Name]
	if existed && prev.VMID != s.VMID {
		return conflict(s.Name, prev.VMID, s.VMID)
	}
	for _, other := range recs {
		if err := agree(s, other.Normalize()); err != nil {
			return err
		}
	}
	links, err := h.cfg.Links.Links(ctx)
	if err != nil {
		return err
	}
	if l, ok := find(links, s.Bridge); s.Bridge != "" && ok && l.Kind != hostnet.KindBridge {
		return virtplane.Errorf(virtplane.ErrConflict, "port %s: bridge %q exists and is not a bridge (%s)", s.Name, s.Bridge, l.Kind)
	}

	r := revert.New()
	defer r.Fail()
	if !existed || !prev.Equal(s) {
		if err := h.write(s); err != nil {
			return err
		}
		// Back to what was: the old spec, or nothing at all.
		ctx := context.WithoutCancel(ctx)
		if existed {
			r.Add(func() {
				if h.write(prev) == nil {
					_ = h.converge(ctx, prev)
				}
			})
		} else {
			r.Add(func() { _ = h.teardown(ctx, s.Name) })
		}
	}
	if err := h.converge(ctx, s); err != nil {
		return err
	}
	r.Success()
	return nil
}

// converge brings the node to the recorded specs, s among them.
func (h *Host) converge(ctx context.Context, s Spec) error {
	links, err := h.bridges(ctx, s.Name, "")
	if err != nil {
		return err
	}
	if err := h.routes(ctx, links, Spec{}); err != nil {
		return err
	}
	if err := h.cfg.Firewall.Apply(ctx, s.Policy()); err != nil {
		return err
	}
	if _, ok := find(links, s.Name); !ok {
		// The hypervisor makes the device when the VM starts; a later
		// Setup shapes it. A device left from an earlier life of the port
		// would make the Shaper believe the limit is still in place.
		return h.dropIFB(s.Name)
	}
	_, err = h.cfg.Shaper.Apply(ctx, s.Limit())
	return err
}

// Teardown removes the port's firewall and limits, takes it off its bridge,
// deletes bridges no port uses any more, and forgets the port last (so a
// crash half-way leaves a record for the retry).
func (h *Host) Teardown(ctx context.Context, name string) error {
	if err := validName("name", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.teardown(ctx, name)
}

func (h *Host) teardown(ctx context.Context, name string) error {
	links, err := h.cfg.Links.Links(ctx)
	if err != nil {
		return err
	}
	if err := h.cfg.Firewall.Remove(ctx, name); err != nil {
		return err
	}
	if _, ok := find(links, name); ok {
		// Gone meanwhile (the hypervisor deleted its tap): the IFB below.
		if err := h.cfg.Shaper.Remove(ctx, name); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
			return err
		}
	}
	if err := h.dropIFB(name); err != nil {
		return err
	}
	gone, err := h.read(name)
	if err != nil && !errors.Is(err, virtplane.ErrNotFound) {
		return err
	}
	if err := h.routes(ctx, links, gone); err != nil {
		return err
	}
	if _, err := h.bridges(ctx, "", name); err != nil {
		return err
	}
	return h.remove(name)
}

// routes converges the node's routed ports to the recorded ones whose
// device exists, leaving out the port being torn down (removing, or the
// zero Spec): a route per VM address, the gateways on each port. Without
// routed ports left, what the last one had goes (with its gateways).
func (h *Host) routes(ctx context.Context, links []hostnet.Link, removing Spec) error {
	recs, err := h.records()
	if err != nil {
		return err
	}
	delete(recs, removing.Name)
	var gw routing.Config
	if removing.Mode == ModeRouted {
		gw = routing.Config{GatewayV4: removing.GatewayV4, GatewayV6: removing.GatewayV6}
	}
	var vms []routing.VM
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		s := recs[name]
		if s.Mode != ModeRouted {
			continue
		}
		gw = routing.Config{GatewayV4: s.GatewayV4, GatewayV6: s.GatewayV6}
		if _, exists := find(links, s.Name); !exists {
			continue // its routes went with the device; they come with the next Setup
		}
		vm := routing.VM{Port: s.Name}
		for _, a := range s.Addresses {
			if a.Is4() {
				vm.IPv4 = append(vm.IPv4, a)
			} else {
				vm.IPv6 = append(vm.IPv6, a)
			}
		}
		vms = append(vms, vm)
	}
	if !gw.GatewayV4.IsValid() {
		return nil // no routed port, now or before
	}
	if h.cfg.Routes == nil {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "netport: routed ports recorded, but this node cannot do routed mode")
	}
	r, err := h.cfg.Routes(gw)
	if err != nil {
		return err
	}
	_, err = r.Apply(ctx, vms)
	return err
}

// dropIFB deletes the IFB device of a port, if any.
func (h *Host) dropIFB(port string) error {
	if h.cfg.Devices == nil {
		return nil
	}
	name := shaping.IFBName(port)
	l, err := h.cfg.Devices.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return virtplane.Errorf(virtplane.ErrUnavailable, "port %s: find %s: %v", port, name, err)
	}
	if l.Type() != "ifb" {
		return nil // not shaping's: leave it
	}
	if err := h.cfg.Devices.LinkDel(l); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "port %s: delete %s: %v", port, name, err)
	}
	return nil
}

// bridges converges the node's bridges to the recorded ports, leaving out
// the port being torn down (removing, or ""): a bridge is kept (or
// created) while a recorded bridge-mode port names it or any link hangs on
// it, and the Host's own bridges that are left empty are deleted. Bridges
// the Host did not create are never touched; their ports are the
// hypervisor's business. The VxLAN networks of the recorded VXLAN ports
// (bridge and tunnel device each) are part of the same configuration, and
// their flood lists are synced after it. It returns the links as they
// were before.
func (h *Host) bridges(ctx context.Context, current, removing string) ([]hostnet.Link, error) {
	recs, err := h.records()
	if err != nil {
		return nil, err
	}
	delete(recs, removing)
	links, err := h.cfg.Links.Links(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, s := range recs {
		if s.Mode != "" && s.Mode != ModeBridge {
			continue
		}
		if l, ok := find(links, s.Bridge); !ok || (l.Owned && l.Kind == hostnet.KindBridge) {
			keep[s.Bridge] = true
		}
	}
	nets, underlay, peers := vxlanNetworks(recs, links)
	netBridges := map[string]bool{}
	for _, n := range nets {
		netBridges[n.Bridge()] = true
	}
	owned := map[string]bool{}
	for _, l := range links {
		if l.Owned && l.Kind == hostnet.KindBridge && !netBridges[l.Name] {
			owned[l.Name] = true
		}
	}
	// Other links on the Host's bridges keep them (but not the Host's own
	// tunnel devices); a recorded port's bridge is the one its spec names
	// (it may be moving).
	for _, l := range links {
		if _, recorded := recs[l.Name]; owned[l.Master] && l.Name != removing && !recorded && !l.Owned {
			keep[l.Master] = true
		}
	}
	var d hostnet.Desired
	for _, b := range slices.Sorted(maps.Keys(keep)) {
		d.Bridges = append(d.Bridges, hostnet.Bridge{Common: hostnet.Common{Name: b}})
	}
	ports := map[string]string{}
	for _, l := range links {
		if _, recorded := recs[l.Name]; keep[l.Master] && l.Name != removing && !recorded && !l.Owned {
			ports[l.Name] = l.Master
		}
	}
	for _, s := range recs {
		l, exists := find(links, s.Name)
		if !exists || !keep[s.Bridge] || (s.Mode != "" && s.Mode != ModeBridge) {
			continue
		}
		// Another port's tap not on its bridge yet is one its hypervisor
		// may be making and enslaving right now: left to it (enslaving it
		// here made the hypervisor's own enslave fail, busy); that port's
		// own Setup, after the start, completes it.
		if s.Name != current && l.Master != s.Bridge {
			d.Leave = append(d.Leave, s.Name)
			continue
		}
		ports[s.Name] = s.Bridge
	}
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		d.Ports = append(d.Ports, hostnet.Port{Name: p, Master: ports[p]})
	}
	if len(nets) > 0 {
		if h.cfg.FDB == nil {
			return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "netport: vxlan ports recorded, but this node cannot do vxlan mode")
		}
		// Full mesh: the devices learn remote MACs from what arrives.
		vd, err := vxlan.Desired(underlay, nets, true)
		if err != nil {
			return nil, err
		}
		d.Bridges = append(d.Bridges, vd.Bridges...)
		d.VXLANs = append(d.VXLANs, vd.VXLANs...)
		d.Ports = append(d.Ports, vd.Ports...)
	}
	if _, err := h.cfg.Links.Apply(ctx, d); err != nil {
		return nil, err
	}
	for _, n := range nets {
		if _, _, err := vxlan.SyncFDB(ctx, h.cfg.FDB, n.Device(), vxlan.FullMesh(underlay.Local, peers[n.VNI])); err != nil {
			return nil, err
		}
	}
	return links, nil
}

// vxlanNetworks returns the VxLAN networks of the recorded VXLAN ports,
// by VNI, with the ports whose device exists; the node's underlay; and
// each network's peers: the union of its ports' (a peer left over from a
// port set up before a node left costs flooded copies only, until the
// ports are set up again with the new peers, as the daemon's flood sync
// does for each of them).
func vxlanNetworks(recs map[string]Spec, links []hostnet.Link) ([]vxlan.Network, vxlan.Underlay, map[int][]netip.Addr) {
	byVNI := map[int]*vxlan.Network{}
	peers := map[int][]netip.Addr{}
	var u vxlan.Underlay
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		s := recs[name].Normalize()
		if s.Mode != ModeVXLAN || s.VXLAN == nil {
			continue
		}
		v := s.VXLAN
		u.Local = v.Local
		n, ok := byVNI[v.VNI]
		if !ok {
			n = &vxlan.Network{Name: fmt.Sprintf("vni-%d", v.VNI), VNI: v.VNI}
			byVNI[v.VNI] = n
		}
		if _, exists := find(links, s.Name); exists {
			n.Ports = append(n.Ports, s.Name)
		}
		peers[v.VNI] = append(peers[v.VNI], v.Peers...)
	}
	var out []vxlan.Network
	for _, vni := range slices.Sorted(maps.Keys(byVNI)) {
		out = append(out, *byVNI[vni])
		p := peers[vni]
		slices.SortFunc(p, netip.Addr.Compare)
		peers[vni] = slices.Compact(p)
	}
	return out, u, peers
}

func find(links []hostnet.Link, name string) (hostnet.Link, bool) {
	for _, l := range links {
		if l.Name == name {
			return l, true
		}
	}
	return hostnet.Link{}, false
}
