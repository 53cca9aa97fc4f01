package hostnet

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
)

// Op is the kind of one change to the host.
type Op string

// The operations a plan is made of, in the order Plan emits them.
const (
	OpDelete    Op = "delete"     // remove an owned link
	OpCreate    Op = "create"     // create an owned link
	OpSetMTU    Op = "set-mtu"    // change a link's MTU
	OpSetMaster Op = "set-master" // enslave a link to a bridge or bond
	OpRelease   Op = "release"    // take a link off an owned master
	OpAddAddr   Op = "add-addr"   // add an address
	OpDelAddr   Op = "del-addr"   // remove an address from an owned link
	OpSetUp     Op = "set-up"     // bring a link up
)

// Change is one step of a plan.
type Change struct {
	Op     Op
	Link   string
	Spec   Link         // OpCreate: the link to create; OpDelete: the link removed (for undo)
	MTU    int          // OpSetMTU: new value
	Master string       // OpSetMaster: new master; OpRelease: the old one
	Prev   string       // OpSetMaster: the previous master, empty for none (for undo)
	PrevMT int          // OpSetMTU: the previous value (for undo)
	Addr   netip.Prefix // OpAddAddr, OpDelAddr
}

func (c Change) String() string {
	switch c.Op {
	case OpCreate, OpDelete:
		return fmt.Sprintf("%s %s %s", c.Op, c.Spec.Kind, c.Link)
	case OpSetMTU:
		return fmt.Sprintf("%s %s %d", c.Op, c.Link, c.MTU)
	case OpSetMaster, OpRelease:
		return fmt.Sprintf("%s %s %s", c.Op, c.Link, c.Master)
	case OpAddAddr, OpDelAddr:
		return fmt.Sprintf("%s %s %s", c.Op, c.Link, c.Addr)
	default:
		return fmt.Sprintf("%s %s", c.Op, c.Link)
	}
}

// Plan computes the changes that turn the current links into the desired
// configuration. It is pure: the same inputs always give the same plan, and a
// plan applied to current gives a state for which Plan returns no changes.
func Plan(current []Link, d Desired) ([]Change, error) {
	want, err := d.links()
	if err != nil {
		return nil, err
	}
	cur := map[string]Link{}
	for _, l := range current {
		cur[l.Name] = l
	}
	wanted := map[string]Link{}
	for _, l := range want {
		wanted[l.Name] = l
	}

	var deletes, creates, mtus, masters, releases, addrs, ups []Change
	deleted := map[string]bool{}
	// Owned links that are no longer wanted, or whose immutable attributes
	// changed, go first: that frees their names and their ports.
	for _, l := range current {
		if !l.Owned {
			continue
		}
		w, ok := wanted[l.Name]
		if !ok || !w.Owned || w.identity() != l.identity() {
			deletes = append(deletes, Change{Op: OpDelete, Link: l.Name, Spec: l})
			deleted[l.Name] = true
		}
	}
	// The kernel deletes a VLAN or VxLAN device with the link under it:
	// plan that explicitly, so the dependent is recreated.
	for changed := true; changed; {
		changed = false
		for _, l := range current {
			if deleted[l.Name] || !l.Owned {
				continue
			}
			if (l.Kind == KindVLAN && deleted[l.VLANParent]) || (l.Kind == KindVXLAN && deleted[l.VXLANDevice]) {
				deletes = append(deletes, Change{Op: OpDelete, Link: l.Name, Spec: l})
				deleted[l.Name], changed = true, true
			}
		}
	}
	// Dependents before what they hang on: a VLAN goes with its parent and
	// deleting the parent first would make the VLAN's delete fail.
	deleteRank := map[string]int{KindVLAN: 0, KindVXLAN: 1, KindBridge: 2, KindBond: 3, KindOther: 4}
	slices.SortStableFunc(deletes, func(a, b Change) int { return deleteRank[a.Spec.Kind] - deleteRank[b.Spec.Kind] })
	for _, w := range want {
		c, exists := cur[w.Name]
		if exists && deleted[w.Name] {
			exists = false
		}
		if w.Owned {
			if exists && !c.Owned {
				return nil, virtplane.Errorf(virtplane.ErrConflict, "%s %q: a link of that name exists and is not owned by this host configuration", w.Kind, w.Name)
			}
			if !exists {
				creates = append(creates, Change{Op: OpCreate, Link: w.Name, Spec: w})
				c = Link{Name: w.Name, Kind: w.Kind, Owned: true, MTU: w.MTU}
			}
		} else if !exists {
			return nil, virtplane.Errorf(virtplane.ErrNotFound, "port %q: no such link", w.Name)
		}
		if w.MTU != 0 && w.MTU != c.MTU {
			mtus = append(mtus, Change{Op: OpSetMTU, Link: w.Name, MTU: w.MTU, PrevMT: c.MTU})
		}
		prevMaster := c.Master
		if deleted[prevMaster] {
			prevMaster = ""
		}
		switch {
		case w.Master != "" && w.Master != prevMaster:
			masters = append(masters, Change{Op: OpSetMaster, Link: w.Name, Master: w.Master, Prev: prevMaster})
			if wanted[w.Master].Kind == KindBond {
				c.Up = false // enslaving to a bond takes the link down first
			}
		case w.Master == "" && prevMaster != "" && ownedMaster(cur, prevMaster):
			releases = append(releases, Change{Op: OpRelease, Link: w.Name, Master: prevMaster})
		}
		if w.Owned {
			for _, a := range w.Addresses {
				if !slices.Contains(c.Addresses, a) {
					addrs = append(addrs, Change{Op: OpAddAddr, Link: w.Name, Addr: a})
				}
			}
			for _, a := range c.Addresses {
				if !slices.Contains(w.Addresses, a) && !a.Addr().IsLinkLocalUnicast() {
					addrs = append(addrs, Change{Op: OpDelAddr, Link: w.Name, Addr: a})
				}
			}
		}
		if !c.Up {
			ups = append(ups, Change{Op: OpSetUp, Link: w.Name})
		}
	}
	// Links that are not desired but hang on an owned master that stays:
	// release them, so that a removed VM port no longer bridges traffic.
	for _, l := range current {
		if _, ok := wanted[l.Name]; ok || l.Owned || l.Master == "" || slices.Contains(d.Leave, l.Name) {
			continue
		}
		if ownedMaster(cur, l.Master) && !deleted[l.Master] {
			releases = append(releases, Change{Op: OpRelease, Link: l.Name, Master: l.Master})
		}
	}
	return slices.Concat(deletes, creates, mtus, masters, releases, addrs, ups), nil
}

func ownedMaster(cur map[string]Link, name string) bool {
	m, ok := cur[name]
	return ok && m.Owned
}

// FormatChanges renders a plan one change a line, for logs and golden files.
func FormatChanges(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}
