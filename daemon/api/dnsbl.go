package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/network/ipam"
	"github.com/virtplane/virtplane/network/ipam/dnsbl"
)

const (
	// maxDNSBLAddresses bounds one check: each address costs a query per
	// zone (and a TXT query per listing) of someone else's DNS servers.
	maxDNSBLAddresses = 256
	// dnsblParallel is how many addresses are checked at once (each asks
	// all zones at once), so that a check of a full pool does not flood
	// the resolver.
	dnsblParallel = 8
)

// DNSBLCheckBody asks for a DNSBL check of a pool's addresses.
type DNSBLCheckBody struct {
	Addresses []string `json:"addresses,omitempty" maxItems:"256" doc:"addresses of the pool's blocks to check besides those VMs hold (at most 256 in all)"`
	// ExcludeListed is on the check rather than an operation of its own,
	// so that what is excluded is what this check found.
	ExcludeListed bool `json:"exclude_listed,omitempty" doc:"add the listed addresses no VM holds to their blocks' excluded addresses, so that they are never handed out"`
}

// DNSBLReport is the outcome of a DNSBL check of a pool.
type DNSBLReport struct {
	Pool      string         `json:"pool"`
	Zones     []string       `json:"zones" doc:"the zones asked, as the daemon is configured"`
	Addresses []DNSBLAddress `json:"addresses" doc:"in address order"`
	Excluded  []string       `json:"excluded" doc:"the listed addresses this check added to their blocks' exclusions"`
}

// DNSBLAddress is the outcome for one address.
type DNSBLAddress struct {
	Address  string           `json:"address"`
	Block    string           `json:"block" doc:"ID of the pool's block the address is in"`
	VM       string           `json:"vm,omitempty" doc:"the VM holding the address; a held address is reported, never excluded"`
	Listed   bool             `json:"listed" doc:"a zone lists it"`
	Listings []DNSBLListing   `json:"listings"`
	Errors   []DNSBLZoneError `json:"errors" doc:"zones that gave no answer (refused the query, failed): neither listed nor clean"`
	Excluded bool             `json:"excluded" doc:"this check excluded it"`
}

// DNSBLListing is a zone listing an address.
type DNSBLListing struct {
	Zone   string   `json:"zone"`
	Codes  []string `json:"codes" doc:"the 127.0.0.x answers (the zone's listing categories)"`
	Reason string   `json:"reason,omitempty" doc:"the zone's TXT record"`
}

// DNSBLZoneError is a zone that did not answer for an address.
type DNSBLZoneError struct {
	Zone  string `json:"zone"`
	Error string `json:"error"`
}

// dnsblTarget is an address to check: its block and the VM holding it.
type dnsblTarget struct {
	addr  netip.Addr
	block string
	vm    string
}

// dnsblOutcome is a checked target.
type dnsblOutcome struct {
	dnsblTarget
	res dnsbl.Result
	err error
}

// blockOf returns the ID of the pool's block holding a, or "".
func blockOf(pool model.IPPool, a netip.Addr) string {
	if i := pool.BlockOf(a); i >= 0 {
		return pool.Blocks[i].ID
	}
	return ""
}

// dnsblTargets returns the addresses to check: those held (VM by address)
// and those asked, each once, in address order. Asked ones must be
// addresses the pool can hand out; errors name body.addresses[i].
func dnsblTargets(pool model.IPPool, held map[netip.Addr]string, asked []string) ([]dnsblTarget, error) {
	seen := map[netip.Addr]bool{}
	var out []dnsblTarget
	add := func(a netip.Addr) {
		if !seen[a] {
			seen[a] = true
			out = append(out, dnsblTarget{addr: a, block: blockOf(pool, a), vm: held[a]})
		}
	}
	for a := range held {
		add(a)
	}
	for i, s := range asked {
		if err := addressOfPool(pool, s); err != nil {
			return nil, field("body.addresses["+itoa(i)+"]", err)
		}
		add(netip.MustParseAddr(s).Unmap())
	}
	if len(out) > maxDNSBLAddresses {
		loc := "body.addresses"
		if len(asked) == 0 {
			loc = "path.id"
		}
		return nil, field(loc, virtplane.Errorf(virtplane.ErrInvalidArgument,
			"%d addresses to check (%d held by VMs), more than %d in one check", len(out), len(held), maxDNSBLAddresses))
	}
	slices.SortFunc(out, func(x, y dnsblTarget) int { return x.addr.Compare(y.addr) })
	return out, nil
}

// checkDNSBL checks the targets, dnsblParallel at a time, until ctx ends.
func checkDNSBL(ctx context.Context, c *dnsbl.Checker, targets []dnsblTarget) []dnsblOutcome {
	out := make([]dnsblOutcome, len(targets))
	sem := make(chan struct{}, dnsblParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := c.Check(ctx, t.addr)
			out[i] = dnsblOutcome{dnsblTarget: t, res: res, err: err}
		})
	}
	wg.Wait()
	return out
}

// dnsblReport turns the outcomes into the report and says which addresses
// to exclude: listed, held by no VM, and only when asked. The rules of the
// check live here, apart from the I/O.
func dnsblReport(poolID string, zones []string, outcomes []dnsblOutcome, excludeListed bool) (DNSBLReport, []netip.Addr) {
	rep := DNSBLReport{Pool: poolID, Zones: zones, Addresses: []DNSBLAddress{}, Excluded: []string{}}
	var exclude []netip.Addr
	for _, o := range outcomes {
		a := DNSBLAddress{Address: o.addr.String(), Block: o.block, VM: o.vm, Listed: o.res.Listed(),
			Listings: []DNSBLListing{}, Errors: []DNSBLZoneError{}}
		for _, l := range o.res.Listings {
			dl := DNSBLListing{Zone: l.Zone, Codes: []string{}, Reason: l.Reason}
			for _, c := range l.Codes {
				dl.Codes = append(dl.Codes, c.String())
			}
			a.Listings = append(a.Listings, dl)
		}
		for _, ze := range dnsbl.ZoneErrors(o.err) {
			a.Errors = append(a.Errors, DNSBLZoneError{Zone: ze.Zone, Error: ze.Error()})
		}
		if o.err != nil && len(a.Errors) == 0 {
			a.Errors = append(a.Errors, DNSBLZoneError{Error: o.err.Error()})
		}
		if excludeListed && a.Listed && a.VM == "" {
			a.Excluded = true
			exclude = append(exclude, o.addr)
			rep.Excluded = append(rep.Excluded, a.Address)
		}
		rep.Addresses = append(rep.Addresses, a)
	}
	return rep, exclude
}

// heldAddresses returns the pool's allocated addresses and their VMs.
func heldAddresses(ctx context.Context, m *ipam.Manager, poolID string) (map[netip.Addr]string, error) {
	held := map[netip.Addr]string{}
	if m == nil {
		return held, nil
	}
	var after netip.Prefix
	for {
		page, next, err := m.List(ctx, poolID, after, maxDNSBLAddresses+1)
		if errors.Is(err, virtplane.ErrNotFound) {
			return held, nil // a pool IPAM does not have holds nothing
		}
		if err != nil {
			return nil, err
		}
		for _, al := range page {
			held[al.Addr()] = al.Owner.VM
		}
		if !next.IsValid() || len(held) > maxDNSBLAddresses {
			return held, nil
		}
		after = next
	}
}

// excludeAddresses adds addrs to their blocks' exclusions, in IPAM and
// in the pool record together: IPAM first (it refuses an address a VM took
// meanwhile), undone when the record cannot change.
func (s *Server) excludeAddresses(ctx context.Context, pool model.IPPool, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	if s.cfg.IPAM != nil {
		if err := s.cfg.IPAM.Exclude(ctx, pool.ID, addrs...); err != nil {
			return err
		}
	}
	_, err := s.changePool(ctx, pool.ID, func(p *model.IPPool) error {
		for _, a := range addrs {
			if !p.ExcludeAddress(a) {
				return virtplane.Errorf(virtplane.ErrConflict, "address %s: its block left pool %s during the check", a, p.ID)
			}
		}
		return nil
	})
	if err != nil && s.cfg.IPAM != nil {
		_ = s.cfg.IPAM.Unexclude(context.WithoutCancel(ctx), pool.ID, addrs...)
	}
	return err
}

func (s *Server) registerDNSBL() {
	huma.Register(s.api, huma.Operation{
		OperationID: "checkPoolDNSBL", Method: http.MethodPost, Path: "/v1/ippools/{id}/dnsbl-check", Tags: []string{"ip pools"},
		Summary:     "Check a pool's addresses against DNS blocklists (admin)",
		Description: "Checks the addresses VMs hold in the pool and those asked (at most 256 in all) against the configured DNSBL zones (RFC 5782); with exclude_listed, listed addresses no VM holds are excluded from their blocks.",
	}, func(ctx context.Context, in *struct {
		IDInput
		Body DNSBLCheckBody
	}) (*struct{ Body DNSBLReport }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if s.cfg.DNSBL == nil {
			return nil, problem(virtplane.Errorf(virtplane.ErrNotImplemented, "DNSBL check: no DNSBL zones configured (daemon configuration dnsbl.zones)"))
		}
		rep, err := s.checkPoolDNSBL(ctx, in.ID, in.Body)
		return &struct{ Body DNSBLReport }{rep}, problem(err)
	})
}

// checkPoolDNSBL is the check: targets, queries, report, exclusions.
func (s *Server) checkPoolDNSBL(ctx context.Context, id string, body DNSBLCheckBody) (DNSBLReport, error) {
	pool, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, id, "path.id")
	if err != nil {
		return DNSBLReport{}, err
	}
	held, err := heldAddresses(ctx, s.cfg.IPAM, pool.ID)
	if err != nil {
		return DNSBLReport{}, err
	}
	targets, err := dnsblTargets(pool, held, body.Addresses)
	if err != nil {
		return DNSBLReport{}, err
	}
	outcomes := checkDNSBL(ctx, s.cfg.DNSBL, targets)
	if err := ctx.Err(); err != nil {
		return DNSBLReport{}, virtplane.Errorf(virtplane.ErrCanceled, "DNSBL check: %v", err)
	}
	rep, exclude := dnsblReport(pool.ID, s.cfg.DNSBL.Zones(), outcomes, body.ExcludeListed)
	if err := s.excludeAddresses(ctx, pool, exclude); err != nil {
		return DNSBLReport{}, field("body.exclude_listed", err)
	}
	return rep, nil
}
