package simnode

import (
	"context"
	"encoding/json"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/store"
	netport "github.com/virtplane/virtplane/network/port"
)

// Ports is a simulated node's network ports: netport.Fake (with its fault
// injection and call recording) with every port recorded in the store
// after each change, like Node does for machines.
type Ports struct {
	*netport.Fake
	st     store.Store
	parent string
}

var _ netport.Ports = (*Ports)(nil)

// PortsParent is the parent of the port records of a simulated node in
// the store (kind store.KindSimState, named after the port).
func PortsParent(nodeID string) string { return "ports/" + nodeID }

type portRecord struct {
	Spec netport.Spec `json:"spec"`
}

// OpenPorts returns the ports of simulated node nodeID as recorded in st
// (nil: ports in memory only).
func OpenPorts(ctx context.Context, st store.Store, nodeID string) (*Ports, error) {
	p := &Ports{Fake: netport.NewFake(), st: st, parent: PortsParent(nodeID)}
	if st == nil {
		return p, nil
	}
	after := ""
	for {
		objs, err := st.ListObjects(ctx, store.KindSimState, store.ListOptions{Parent: p.parent, After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			var r portRecord
			if err := json.Unmarshal(o.Data, &r); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "simulated port %s: %v", o.Name, err)
			}
			if err := p.Fake.Setup(ctx, r.Spec); err != nil {
				return nil, err
			}
		}
		if len(objs) < 1000 {
			return p, nil
		}
		after = objs[len(objs)-1].ID
	}
}

func (p *Ports) key(name string) string { return p.parent + "/" + name }

// save records a port's spec, or its absence.
func (p *Ports) save(ctx context.Context, name string) error {
	ctx = context.WithoutCancel(ctx)
	s, exists := p.Fake.Port(name)
	return update(ctx, p.st, func(tx store.Tx) error {
		o, gerr := tx.GetObject(ctx, store.KindSimState, p.key(name))
		if !exists {
			if gerr != nil {
				return nil
			}
			return tx.DeleteObject(ctx, store.KindSimState, o.ID, 0)
		}
		data, err := json.Marshal(portRecord{Spec: s})
		if err != nil {
			return err
		}
		if gerr != nil {
			return tx.CreateObject(ctx, &store.Object{Kind: store.KindSimState, ID: p.key(name), Name: name, Parent: p.parent, Data: data})
		}
		o.Data = data
		return tx.UpdateObject(ctx, &o)
	})
}

// Setup sets a port up and records it; setting up a port as it is writes
// nothing (the create flow sets a port up again once the VM runs).
func (p *Ports) Setup(ctx context.Context, s netport.Spec) error {
	prev, existed := p.Fake.Port(s.Name)
	if err := p.Fake.Setup(ctx, s); err != nil {
		return err
	}
	if existed && prev.Equal(s) {
		return nil
	}
	return p.save(ctx, s.Name)
}

// Teardown removes a port and its record.
func (p *Ports) Teardown(ctx context.Context, name string) error {
	_, existed := p.Fake.Port(name)
	if err := p.Fake.Teardown(ctx, name); err != nil || !existed {
		return err
	}
	return p.save(ctx, name)
}
