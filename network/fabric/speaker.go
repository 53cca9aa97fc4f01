package fabric

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/vxlan"
)

// Config describes this host's BGP speaker.
type Config struct {
	ASN        uint32       // the fabric's AS (iBGP: the reflectors share it)
	RouterID   netip.Addr   // an IPv4 address identifying this host
	Reflectors []netip.Addr // iBGP route reflectors to peer with
	// ReflectorPort is the reflectors' TCP port; 0 means 179.
	ReflectorPort uint16
	NextHop       netip.Addr // this host's IPv4 address in the fabric
	NextHopV6     netip.Addr // this host's IPv6 address, needed to announce /128s
	// EVPN also negotiates the l2vpn-evpn family, for VxLAN route-reflector mode.
	EVPN bool
	// ListenPort is the TCP port to accept sessions on; 0 means none (the
	// speaker dials out), the usual choice for a host below reflectors.
	ListenPort int32
	Logger     *slog.Logger // nil for silence
}

func invalid(format string, args ...any) error {
	return virtplane.Errorf(virtplane.ErrInvalidArgument, format, args...)
}

func (c Config) validate() error {
	switch {
	case c.ASN == 0:
		return invalid("fabric config: asn is zero")
	case !c.RouterID.Is4():
		return invalid("fabric config: router id %v is not an IPv4 address", c.RouterID)
	case len(c.Reflectors) == 0:
		return invalid("fabric config: no route reflectors")
	case !c.NextHop.Is4():
		return invalid("fabric config: next hop %v is not an IPv4 address", c.NextHop)
	case c.NextHopV6.IsValid() && !c.NextHopV6.Is6():
		return invalid("fabric config: next hop v6 %v is not an IPv6 address", c.NextHopV6)
	case c.ListenPort < 0 || c.ListenPort > 65535:
		return invalid("fabric config: listen port %d out of range", c.ListenPort)
	}
	for _, r := range c.Reflectors {
		if !r.IsValid() {
			return invalid("fabric config: invalid reflector address")
		}
	}
	return nil
}

// Announcer announces and withdraws VM addresses. Speaker is the BGP
// implementation; Fake records calls for the daemon's tests.
type Announcer interface {
	Announce(ctx context.Context, p netip.Prefix) error
	Withdraw(ctx context.Context, p netip.Prefix) error
	Announced(ctx context.Context) ([]netip.Prefix, error)
}

// Speaker is an embedded GoBGP speaker that announces this host's VM
// addresses (/32 and /128) to the route reflectors. It runs in the network
// namespace of the process (of the thread that dials: run the daemon in the
// host namespace).
type Speaker struct {
	cfg Config
	bgp *server.BgpServer

	mu        sync.Mutex
	announced map[netip.Prefix]bool
	evpn      map[string]*apiutil.Path
}

var _ Announcer = (*Speaker)(nil)

// Start starts a speaker and configures its sessions; they come up in the
// background (see Established).
func Start(ctx context.Context, cfg Config) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := server.NewBgpServer(server.LoggerOption(logger, nil))
	go s.Serve()
	listen := cfg.ListenPort
	if listen == 0 {
		listen = -1
	}
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: listen,
	}}); err != nil {
		s.Stop()
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "start bgp: %v", err)
	}
	families := []*api.Family{{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}
	if cfg.NextHopV6.IsValid() {
		families = append(families, &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST})
	}
	if cfg.EVPN {
		families = append(families, &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN})
	}
	for _, rr := range cfg.Reflectors {
		p := &api.Peer{
			Conf:   &api.PeerConf{NeighborAddress: rr.String(), PeerAsn: cfg.ASN},
			Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		}
		if cfg.ReflectorPort != 0 {
			p.Transport = &api.Transport{RemotePort: uint32(cfg.ReflectorPort)}
		}
		for _, f := range families {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
		}
		if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			s.Stop()
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "add reflector %s: %v", rr, err)
		}
	}
	return &Speaker{cfg: cfg, bgp: s, announced: map[netip.Prefix]bool{}, evpn: map[string]*apiutil.Path{}}, nil
}

// Stop withdraws everything (by closing the sessions) and stops the speaker.
func (s *Speaker) Stop(ctx context.Context) error {
	err := s.bgp.StopBgp(ctx, &api.StopBgpRequest{})
	s.bgp.Stop()
	return err
}

// Established returns how many reflector sessions are up.
func (s *Speaker) Established(ctx context.Context) (int, error) {
	n := 0
	err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
			n++
		}
	})
	return n, err
}

func (s *Speaker) unicastPath(p netip.Prefix) (*apiutil.Path, error) {
	if p.Addr().Zone() != "" || p.Bits() != p.Addr().BitLen() {
		return nil, invalid("announce %v: want a host prefix (/32 or /128)", p)
	}
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, invalid("announce %v: %v", p, err)
	}
	origin := bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(s.cfg.NextHop)
		if err != nil {
			return nil, err
		}
		return &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{origin, nh}}, nil
	}
	if !s.cfg.NextHopV6.IsValid() {
		return nil, invalid("announce %v: the speaker has no IPv6 next hop", p)
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, s.cfg.NextHopV6)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{Family: bgp.RF_IPv6_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{origin, mp}}, nil
}

// Announce announces a VM's address with this host as next hop. Announcing
// an announced prefix again does nothing.
func (s *Speaker) Announce(ctx context.Context, p netip.Prefix) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.unicastPath(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.announced[p] {
		return nil
	}
	if _, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "announce %v: %v", p, err)
	}
	s.announced[p] = true
	return nil
}

// Withdraw withdraws a VM's address (the VM stopped or migrated away).
// Withdrawing a prefix that is not announced does nothing.
func (s *Speaker) Withdraw(ctx context.Context, p netip.Prefix) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.unicastPath(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.announced[p] {
		return nil
	}
	if err := s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "withdraw %v: %v", p, err)
	}
	delete(s.announced, p)
	return nil
}

// Announced returns the prefixes this speaker announces, sorted.
func (s *Speaker) Announced(ctx context.Context) ([]netip.Prefix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.announced))
	for p := range s.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, ctx.Err()
}

// Route is a best path the speaker learned from a reflector.
type Route struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
}

// Learned returns the best unicast routes learned from peers (not the
// speaker's own), IPv4 and IPv6.
func (s *Speaker) Learned(ctx context.Context) ([]Route, error) {
	var out []Route
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if !p.Best || !p.PeerAddress.IsValid() {
					continue
				}
				pfx, ok := p.Nlri.(*bgp.IPAddrPrefix)
				if !ok {
					continue
				}
				out = append(out, Route{Prefix: pfx.Prefix, NextHop: nextHop(p)})
			}
		})
		if err != nil {
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "list routes: %v", err)
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, ctx.Err()
}

func nextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch v := a.(type) {
		case *bgp.PathAttributeNextHop:
			return v.Value
		case *bgp.PathAttributeMpReachNLRI:
			return v.Nexthop
		}
	}
	return netip.Addr{}
}

// EVPN routes, for VxLAN route-reflector mode.

// EVPNRoute is a type-2 (MAC/IP) or type-3 (inclusive multicast, the flood
// list of a VNI) route.
type EVPNRoute struct {
	Type    int // 2 or 3
	VNI     int
	MAC     net.HardwareAddr // type 2
	IP      netip.Addr       // type 2, optional
	NextHop netip.Addr       // the VTEP
}

func (r EVPNRoute) key() string { return fmt.Sprintf("%d/%d/%s/%s", r.Type, r.VNI, r.MAC, r.IP) }

func (s *Speaker) evpnPath(r EVPNRoute) (*apiutil.Path, error) {
	if !s.cfg.EVPN {
		return nil, virtplane.Errorf(virtplane.ErrConflict, "evpn route: the speaker was started without EVPN")
	}
	if r.VNI < 1 || r.VNI > 1<<24-1 {
		return nil, invalid("evpn route: vni %d out of range", r.VNI)
	}
	// The route distinguisher is router-id:VNI (low 16 bits): unique per
	// host and network as long as VNIs differ in their low 16 bits.
	rd, err := bgp.NewRouteDistinguisherIPAddressAS(s.cfg.RouterID, uint16(r.VNI))
	if err != nil {
		return nil, err
	}
	var nlri *bgp.EVPNNLRI
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	switch r.Type {
	case 2:
		if len(r.MAC) != 6 {
			return nil, invalid("evpn type-2 route: mac %q is not 6 bytes", r.MAC)
		}
		nlri, err = bgp.NewEVPNMacIPAdvertisementRoute(rd, bgp.EthernetSegmentIdentifier{}, 0, r.MAC.String(), r.IP, []uint32{uint32(r.VNI)})
	case 3:
		nlri, err = bgp.NewEVPNMulticastEthernetTagRoute(rd, 0, s.cfg.NextHop)
		if err == nil {
			id, ierr := bgp.NewIngressReplTunnelID(s.cfg.NextHop)
			if ierr != nil {
				return nil, ierr
			}
			attrs = append(attrs, bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, uint32(r.VNI), id))
		}
	default:
		return nil, invalid("evpn route: type %d, want 2 or 3", r.Type)
	}
	if err != nil {
		return nil, invalid("evpn route: %v", err)
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: nlri}}, s.cfg.NextHop)
	if err != nil {
		return nil, err
	}
	rt := bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, uint16(s.cfg.ASN), uint32(r.VNI), true)
	attrs = append(attrs, mp, bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{rt, bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN)}))
	return &apiutil.Path{Family: bgp.RF_EVPN, Nlri: nlri, Attrs: attrs}, nil
}

// AnnounceEVPN announces a type-2 or type-3 route with this host as VTEP.
func (s *Speaker) AnnounceEVPN(ctx context.Context, r EVPNRoute) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.evpnPath(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.evpn[r.key()]; ok {
		return nil
	}
	if _, err := s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "announce evpn %s: %v", r.key(), err)
	}
	s.evpn[r.key()] = path
	return nil
}

// WithdrawEVPN withdraws a route announced with AnnounceEVPN.
func (s *Speaker) WithdrawEVPN(ctx context.Context, r EVPNRoute) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path, ok := s.evpn[r.key()]
	if !ok {
		return nil
	}
	if err := s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "withdraw evpn %s: %v", r.key(), err)
	}
	delete(s.evpn, r.key())
	return nil
}

// LearnedEVPN returns the EVPN routes learned from peers.
func (s *Speaker) LearnedEVPN(ctx context.Context) ([]EVPNRoute, error) {
	var out []EVPNRoute
	var perr error
	err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_EVPN}, func(_ bgp.NLRI, paths []*apiutil.Path) {
		for _, p := range paths {
			if !p.Best || !p.PeerAddress.IsValid() {
				continue
			}
			r, err := evpnRouteOf(p)
			if err != nil {
				perr = err
				continue
			}
			out = append(out, r)
		}
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "list evpn routes: %v", err)
	}
	slices.SortFunc(out, func(a, b EVPNRoute) int {
		if a.key() < b.key() {
			return -1
		}
		if a.key() > b.key() {
			return 1
		}
		return 0
	})
	return out, ctx.Err()
}

func evpnRouteOf(p *apiutil.Path) (EVPNRoute, error) {
	n, ok := p.Nlri.(*bgp.EVPNNLRI)
	if !ok {
		return EVPNRoute{}, errors.New("not an evpn nlri")
	}
	r := EVPNRoute{NextHop: nextHop(p)}
	switch d := n.RouteTypeData.(type) {
	case *bgp.EVPNMacIPAdvertisementRoute:
		r.Type, r.MAC, r.IP = 2, d.MacAddress, d.IPAddress
		if len(d.Labels) > 0 {
			r.VNI = int(d.Labels[0])
		}
	case *bgp.EVPNMulticastEthernetTagRoute:
		r.Type = 3
		for _, a := range p.Attrs {
			if t, ok := a.(*bgp.PathAttributePmsiTunnel); ok {
				r.VNI = int(t.Label)
			}
		}
	default:
		return EVPNRoute{}, fmt.Errorf("evpn route type %d not handled", n.RouteType)
	}
	return r, nil
}

// FDBEntries turns the EVPN routes of one VNI learned from other VTEPs into
// the forwarding entries of its VxLAN device: type-3 routes make the flood
// list (head-end replication), type-2 routes pin each remote MAC to its VTEP.
func FDBEntries(routes []EVPNRoute, vni int, local netip.Addr) []vxlan.Entry {
	var out []vxlan.Entry
	for _, r := range routes {
		if r.VNI != vni || r.NextHop == local || !r.NextHop.IsValid() {
			continue
		}
		switch r.Type {
		case 3:
			out = append(out, vxlan.Entry{MAC: vxlan.FloodMAC(), Dst: r.NextHop})
		case 2:
			out = append(out, vxlan.Entry{MAC: r.MAC, Dst: r.NextHop})
		}
	}
	return out
}
