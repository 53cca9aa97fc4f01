package ipam_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/ipam"
)

// modelBlock is a block as the model sees it: the addresses it can hand out,
// computed independently of the allocator.
type modelBlock struct {
	spec     ipam.BlockSpec
	id       string
	all      []netip.Addr // every address in the range
	excluded map[netip.Addr]bool
	reserved []netip.Addr // as defined
}

func newModelBlock(t *rapid.T, spec ipam.BlockSpec) modelBlock {
	b, err := ipam.ParseBlock(spec)
	if err != nil {
		t.Fatalf("block %q: %v", spec.Range, err)
	}
	m := modelBlock{spec: spec, id: spec.Range, excluded: map[netip.Addr]bool{}}
	for a := b.Range.From(); b.Range.Contains(a); a = a.Next() {
		m.all = append(m.all, a)
	}
	if b.CIDR.IsValid() && b.CIDR.Addr().Is4() && b.CIDR.Bits() <= 30 {
		m.excluded[b.Range.From()] = true
		m.excluded[b.Range.To()] = true
	}
	if b.CIDR.IsValid() && b.CIDR.Addr().Is6() && b.CIDR.Bits() <= 126 {
		m.excluded[b.Range.From()] = true // Subnet-Router anycast
	}
	if b.Gateway.IsValid() {
		m.excluded[b.Gateway] = true
	}
	for _, e := range spec.Excluded {
		r, _, _ := ipam.ParseRange(e)
		for a := r.From(); r.Contains(a); a = a.Next() {
			m.excluded[a] = true
		}
	}
	m.reserved = b.Reserved
	return m
}

var modelSpecs = []ipam.BlockSpec{
	{Range: "10.0.0.0/28", Gateway: "10.0.0.1", Excluded: []string{"10.0.0.5-10.0.0.6"}, Reserved: []string{"10.0.0.9"}},
	{Range: "10.0.1.10-10.0.1.17"},
	{Range: "2001:db8::/124", Gateway: "2001:db8::1", Excluded: []string{"2001:db8::8"}},
	{Range: "192.168.0.0/30", Reserved: []string{"192.168.0.2"}},
}

type unitModel struct {
	owner    string // "" when not allocated
	coolTill time.Time
	reserved bool
	used     bool
}

// ipamMachine drives a Manager and a plain model side by side.
type ipamMachine struct {
	store    *ipam.MemoryStore
	m        *ipam.Manager
	other    *ipam.Manager // a second manager over the same store, as a second daemon
	now      time.Time
	cooldown time.Duration
	blocks   []modelBlock
	inPool   map[int]bool
	units    map[netip.Addr]*unitModel
	seq      int
	probe    []netip.Addr // addresses the actions draw from, inside and outside blocks
}

func (s *ipamMachine) clock() time.Time { return s.now }

func (s *ipamMachine) newManager(t *rapid.T) {
	m, err := ipam.New(ipam.Config{Store: s.store}, ipam.WithCooldown(s.cooldown), ipam.WithClock(s.clock))
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
}

func (s *ipamMachine) init(t *rapid.T) {
	s.store = ipam.NewMemoryStore()
	s.now = time.Unix(1_800_000_000, 0)
	s.cooldown = rapid.SampledFrom([]time.Duration{0, 10 * time.Second}).Draw(t, "cooldown")
	s.newManager(t)
	s.other = s.m
	s.newManager(t)
	s.inPool = map[int]bool{}
	s.units = map[netip.Addr]*unitModel{}
	for _, spec := range modelSpecs {
		s.blocks = append(s.blocks, newModelBlock(t, spec))
	}
	for _, b := range s.blocks {
		s.probe = append(s.probe, b.all...)
	}
	s.probe = append(s.probe, netip.MustParseAddr("10.0.2.1"), netip.MustParseAddr("2001:db8:1::1"))
	if _, err := s.m.CreatePool(t.Context(), ipam.Pool{ID: "p"}); err != nil {
		t.Fatal(err)
	}
}

func (s *ipamMachine) blockOf(a netip.Addr) (int, bool) {
	for i, b := range s.blocks {
		if s.inPool[i] && slices.Contains(b.all, a) {
			return i, true
		}
	}
	return 0, false
}

func (s *ipamMachine) unit(a netip.Addr) *unitModel {
	u, ok := s.units[a]
	if !ok {
		u = &unitModel{}
		s.units[a] = u
	}
	return u
}

func (s *ipamMachine) cooling(u *unitModel) bool { return u.owner == "" && s.now.Before(u.coolTill) }

func wantErr(t *rapid.T, err, class error, what string) {
	if !errors.Is(err, class) {
		t.Fatalf("%s: got error %v, want %v", what, err, class)
	}
}

func (s *ipamMachine) AddBlock(t *rapid.T) {
	i := rapid.IntRange(0, len(s.blocks)-1).Draw(t, "block")
	b, err := ipam.ParseBlock(s.blocks[i].spec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.m.AddBlock(t.Context(), "p", b)
	if s.inPool[i] {
		wantErr(t, err, virtplane.ErrAlreadyExists, "add block twice")
		return
	}
	if err != nil {
		t.Fatalf("add block %s: %v", s.blocks[i].id, err)
	}
	s.inPool[i] = true
	for _, a := range s.blocks[i].all {
		s.units[a] = &unitModel{reserved: slices.Contains(s.blocks[i].reserved, a)}
	}
}

func (s *ipamMachine) RemoveBlock(t *rapid.T) {
	i := rapid.IntRange(0, len(s.blocks)-1).Draw(t, "block")
	err := s.m.RemoveBlock(t.Context(), "p", s.blocks[i].id)
	if !s.inPool[i] {
		wantErr(t, err, virtplane.ErrNotFound, "remove missing block")
		return
	}
	inUse := slices.ContainsFunc(s.blocks[i].all, func(a netip.Addr) bool { return s.unit(a).owner != "" })
	if inUse {
		wantErr(t, err, virtplane.ErrConflict, "remove block in use")
		return
	}
	if err != nil {
		t.Fatalf("remove block: %v", err)
	}
	s.inPool[i] = false
	for _, a := range s.blocks[i].all {
		delete(s.units, a)
	}
}

func (s *ipamMachine) AllocateNext(t *rapid.T) {
	fam := rapid.SampledFrom([]ipam.Family{ipam.AnyFamily, ipam.IPv4, ipam.IPv6}).Draw(t, "family")
	var eligible, never []netip.Addr
	for i, b := range s.blocks {
		if !s.inPool[i] || (fam == ipam.IPv4 && !b.all[0].Is4()) || (fam == ipam.IPv6 && b.all[0].Is4()) {
			continue
		}
		for _, a := range b.all {
			u := s.unit(a)
			if b.excluded[a] || u.owner != "" || u.reserved || s.cooling(u) {
				continue
			}
			eligible = append(eligible, a)
			if !u.used {
				never = append(never, a)
			}
		}
	}
	s.seq++
	owner := fmt.Sprintf("vm%d", s.seq)
	got, err := s.m.Allocate(t.Context(), "p", ipam.Request{Owner: ipam.Owner{VM: owner}, Family: fam})
	if len(eligible) == 0 {
		wantErr(t, err, virtplane.ErrResourceExhausted, "allocate from a full pool")
		return
	}
	if err != nil {
		t.Fatalf("allocate (%d eligible): %v", len(eligible), err)
	}
	a := got.Addr()
	if !slices.Contains(eligible, a) {
		t.Fatalf("allocated %s, which is not eligible (excluded, outside, taken, reserved or cooling); eligible %v", a, eligible)
	}
	if len(never) > 0 && !slices.Contains(never, a) {
		t.Fatalf("allocated used address %s while never-used %v were free", a, never)
	}
	u := s.unit(a)
	u.owner, u.used = owner, true
}

func (s *ipamMachine) AllocateSpecific(t *rapid.T) {
	a := rapid.SampledFrom(s.probe).Draw(t, "addr")
	s.seq++
	owner := fmt.Sprintf("vm%d", s.seq)
	_, err := s.m.Allocate(t.Context(), "p", ipam.Request{Owner: ipam.Owner{VM: owner}, Addr: a})
	i, ok := s.blockOf(a)
	switch {
	case !ok:
		wantErr(t, err, virtplane.ErrInvalidArgument, "allocate outside blocks")
	case s.blocks[i].excluded[a]:
		wantErr(t, err, virtplane.ErrInvalidArgument, "allocate excluded "+a.String())
	case s.unit(a).owner != "":
		wantErr(t, err, virtplane.ErrConflict, "allocate taken "+a.String())
	case s.cooling(s.unit(a)):
		wantErr(t, err, virtplane.ErrConflict, "allocate cooling "+a.String())
	default:
		if err != nil {
			t.Fatalf("allocate %s: %v", a, err)
		}
		u := s.unit(a)
		u.owner, u.used = owner, true
	}
}

func (s *ipamMachine) Release(t *rapid.T) {
	var held []netip.Addr
	for a, u := range s.units {
		if u.owner != "" {
			held = append(held, a)
		}
	}
	slices.SortFunc(held, netip.Addr.Compare)
	a := rapid.SampledFrom(s.probe).Draw(t, "addr")
	if len(held) > 0 && rapid.Bool().Draw(t, "held") {
		a = rapid.SampledFrom(held).Draw(t, "held addr")
	}
	err := s.m.ReleaseAddr(t.Context(), "p", a)
	if _, ok := s.blockOf(a); !ok || s.unit(a).owner == "" {
		wantErr(t, err, virtplane.ErrNotFound, "release unallocated "+a.String())
		return
	}
	if err != nil {
		t.Fatalf("release %s: %v", a, err)
	}
	u := s.unit(a)
	u.owner, u.coolTill = "", s.now.Add(s.cooldown)
}

func (s *ipamMachine) Reserve(t *rapid.T) {
	a := rapid.SampledFrom(s.probe).Draw(t, "addr")
	on := rapid.Bool().Draw(t, "on")
	var err error
	if on {
		err = s.m.Reserve(t.Context(), "p", a)
	} else {
		err = s.m.Unreserve(t.Context(), "p", a)
	}
	i, ok := s.blockOf(a)
	switch {
	case !ok:
		wantErr(t, err, virtplane.ErrNotFound, "reserve outside blocks")
	case on && s.blocks[i].excluded[a]:
		wantErr(t, err, virtplane.ErrInvalidArgument, "reserve excluded")
	default:
		if err != nil {
			t.Fatalf("reserve(%v) %s: %v", on, a, err)
		}
		if !s.blocks[i].excluded[a] {
			s.unit(a).reserved = on
		}
	}
}

func (s *ipamMachine) AdvanceClock(t *rapid.T) {
	s.now = s.now.Add(rapid.SampledFrom([]time.Duration{time.Second, 5 * time.Second, 10 * time.Second}).Draw(t, "dt"))
}

// Restart replaces the manager by a new one over the same store: the
// allocator state must come back whole from the records.
func (s *ipamMachine) Restart(t *rapid.T) { s.newManager(t) }

// SwitchManager continues with the other manager, whose cache is stale by
// every write the current one made.
func (s *ipamMachine) SwitchManager(t *rapid.T) { s.m, s.other = s.other, s.m }

func (s *ipamMachine) Check(t *rapid.T) {
	recs, _, err := s.store.List(t.Context(), "p", ipam.ListOptions{Limit: 10000, State: ipam.StateAllocated})
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]string{}
	for _, r := range recs {
		a := r.Prefix.Addr()
		if _, dup := got[a]; dup {
			t.Fatalf("%s allocated twice", a)
		}
		got[a] = r.Owner.VM
		i, ok := s.blockOf(a)
		if !ok || s.blocks[i].excluded[a] {
			t.Fatalf("allocation %s is outside the blocks or excluded", a)
		}
	}
	want := map[netip.Addr]string{}
	for a, u := range s.units {
		if u.owner != "" {
			want[a] = u.owner
		}
	}
	if len(got) != len(want) {
		t.Fatalf("store has %d allocations, model %d", len(got), len(want))
	}
	for a, o := range want {
		if got[a] != o {
			t.Fatalf("%s: store owner %q, model %q", a, got[a], o)
		}
	}
}

// TestManagerStateMachine runs random sequences of allocations, releases,
// reservations, block changes, clock steps, restarts and manager switches
// against a plain model. Deeper runs: -rapid.checks=2000 -rapid.steps=300.
func TestManagerStateMachine(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &ipamMachine{}
		s.init(t)
		t.Repeat(rapid.StateMachineActions(s))
	})
}
