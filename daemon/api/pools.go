package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/network/ipam"
)

// PoolBody creates an IP pool.
type PoolBody struct {
	Name       string      `json:"name" minLength:"1" maxLength:"63"`
	ClusterIDs []string    `json:"cluster_ids" doc:"clusters whose VMs take addresses from the pool"`
	Blocks     []BlockBody `json:"blocks,omitempty"`
}

// BlockBody is a block of addresses.
type BlockBody struct {
	Range    string   `json:"range" doc:"CIDR (192.0.2.0/24; no host bits set) or first-last range, IPv4 or IPv6" minLength:"1"`
	Gateway  string   `json:"gateway,omitempty" doc:"the router address inside the range; never handed out"`
	Excluded []string `json:"excluded,omitempty" maxItems:"1024" doc:"addresses, CIDRs or first-last ranges inside the range that are never handed out (a router's second address, a host's own)"`
	Reserved []string `json:"reserved,omitempty" maxItems:"1024" doc:"addresses inside the range handed out only when a VM create asks for them by address"`
}

// parseBlock checks the block as IPAM will hold it (the library's own
// parser: one family, no host bits set, gateway, exclusions and
// reservations inside the range) and returns it as the pool records it,
// errors naming the field at loc. Done whether or not the daemon runs an
// IPAM, so that what the API accepts does not depend on it.
func (b BlockBody) parseBlock(loc, id string) (model.IPBlock, ipam.Block, error) {
	// Part by part, so that the error names the part at fault.
	type part struct {
		at   string
		spec ipam.BlockSpec
	}
	if _, _, err := ipam.ParseRange(b.Range); err != nil {
		return model.IPBlock{}, ipam.Block{}, field(loc+".range", err)
	}
	// Each part's check names the block by its range (its ID is new).
	parts := []part{{loc + ".gateway", ipam.BlockSpec{ID: b.Range, Range: b.Range, Gateway: b.Gateway}}}
	for i, e := range b.Excluded {
		parts = append(parts, part{loc + ".excluded[" + itoa(i) + "]", ipam.BlockSpec{ID: b.Range, Range: b.Range, Excluded: []string{e}}})
	}
	for i, r := range b.Reserved {
		parts = append(parts, part{loc + ".reserved[" + itoa(i) + "]", ipam.BlockSpec{ID: b.Range, Range: b.Range, Reserved: []string{r}}})
	}
	for _, p := range parts {
		if _, err := ipam.ParseBlock(p.spec); err != nil {
			return model.IPBlock{}, ipam.Block{}, field(p.at, err)
		}
	}
	blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: id, Range: b.Range, Gateway: b.Gateway, Excluded: b.Excluded, Reserved: b.Reserved})
	if err != nil {
		return model.IPBlock{}, ipam.Block{}, field(loc, err)
	}
	family := "ipv6"
	if blk.Range.From().Is4() {
		family = "ipv4"
	}
	return model.IPBlock{ID: id, Range: b.Range, Gateway: b.Gateway, Family: family, Excluded: b.Excluded, Reserved: b.Reserved}, blk, nil
}

// ipamBlock is the IPAM block of a block the pool records (validated when
// it was added).
func ipamBlock(b model.IPBlock) (ipam.Block, error) {
	return ipam.ParseBlock(ipam.BlockSpec{ID: b.ID, Range: b.Range, Gateway: b.Gateway, Excluded: b.Excluded, Reserved: b.Reserved})
}

// addressOfPool checks that a requested address can come from the pool:
// inside one of its blocks, not its gateway, not excluded. Whether another
// VM holds it is IPAM's answer when the create allocates it.
func addressOfPool(pool model.IPPool, s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "address %q is not an IP address", s)
	}
	a = a.Unmap()
	if i := pool.BlockOf(a); i >= 0 {
		blk, err := ipamBlock(pool.Blocks[i])
		if err != nil {
			return err
		}
		if why := blk.Refusal(a); why != "" {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is %s", a, why)
		}
		return nil
	}
	return virtplane.Errorf(virtplane.ErrInvalidArgument, "address %s is in no block of pool %s", a, pool.Name)
}

// dualStackPool checks that a dual-stack VM can have its two addresses:
// the pool has a block of each family, and the cluster's network mode
// carries IPv6.
func dualStackPool(pool model.IPPool, c model.Cluster) error {
	if c.NetworkMode == model.NetworkRouted {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "dual stack in routed cluster %s: routed IPv6 is not implemented (network/routing needs an IPv4 gateway)", c.Name)
	}
	has := map[bool]bool{}
	for _, b := range pool.Blocks {
		if blk, err := ipamBlock(b); err == nil {
			has[blk.Range.From().Is4()] = true
		}
	}
	for is4, fam := range map[bool]string{true: "IPv4", false: "IPv6"} {
		if !has[is4] {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "dual stack: pool %s has no %s block", pool.Name, fam)
		}
	}
	return nil
}

// overlapping says which of blocks (index) the block overlaps, or -1.
func overlapping(blk ipam.Block, blocks []ipam.Block) int {
	for i, o := range blocks {
		if blk.Range.Overlaps(o.Range) {
			return i
		}
	}
	return -1
}

func (s *Server) registerPools() {
	tags := []string{"ip pools"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listPools", Method: http.MethodGet, Path: "/v1/ippools", Tags: tags, Summary: "List IP pools (admin)",
	}, func(ctx context.Context, in *PageInput) (*struct{ Body Page[model.IPPool] }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, err := listObjects[model.IPPool](ctx, s.st, store.KindPool, store.ListOptions{After: in.After, Limit: in.Limit}, nil)
		return &struct{ Body Page[model.IPPool] }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getPool", Method: http.MethodGet, Path: "/v1/ippools/{id}", Tags: tags, Summary: "Get an IP pool (admin)",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		p, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id")
		return &struct{ Body model.IPPool }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createPool", Method: http.MethodPost, Path: "/v1/ippools", Tags: tags,
		Summary: "Create an IP pool (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body PoolBody }) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if err := model.ValidName("name", in.Body.Name); err != nil {
			return nil, problem(field("body.name", err))
		}
		p := model.IPPool{ID: store.NewID(), Name: in.Body.Name, ClusterIDs: in.Body.ClusterIDs, Blocks: []model.IPBlock{}, Created: time.Now().UTC()}
		if p.ClusterIDs == nil {
			p.ClusterIDs = []string{}
		}
		ip := ipam.Pool{ID: p.ID, Clusters: p.ClusterIDs}
		for i, b := range in.Body.Blocks {
			loc := "body.blocks[" + itoa(i) + "]"
			mb, blk, err := b.parseBlock(loc, store.NewID())
			if err != nil {
				return nil, problem(err)
			}
			if j := overlapping(blk, ip.Blocks); j >= 0 {
				return nil, problem(field(loc+".range", virtplane.Errorf(virtplane.ErrInvalidArgument, "block %s overlaps body.blocks[%d] (%s)", b.Range, j, p.Blocks[j].Range)))
			}
			p.Blocks = append(p.Blocks, mb)
			ip.Blocks = append(ip.Blocks, blk)
		}
		if s.cfg.IPAM != nil {
			if _, err := s.cfg.IPAM.CreatePool(ctx, ip); err != nil {
				return nil, problem(field("body.blocks", err))
			}
		}
		err := s.st.Update(ctx, func(tx store.Tx) error {
			for i, c := range p.ClusterIDs {
				if _, err := tx.GetObject(ctx, store.KindCluster, c); err != nil {
					return field("body.cluster_ids["+itoa(i)+"]", err)
				}
			}
			data, err := encode(p)
			if err != nil {
				return err
			}
			return field("body.name", tx.CreateObject(ctx, &store.Object{Kind: store.KindPool, ID: p.ID, Name: p.Name, Data: data}))
		})
		if err != nil {
			if s.cfg.IPAM != nil {
				_ = s.cfg.IPAM.DeletePool(context.WithoutCancel(ctx), p.ID)
			}
			return nil, problem(err)
		}
		s.publish("pool", "created", p.ID, "", "")
		return &struct{ Body model.IPPool }{p}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "addPoolBlock", Method: http.MethodPost, Path: "/v1/ippools/{id}/blocks", Tags: tags,
		Summary: "Add a block of addresses to a pool (admin)", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct {
		IDInput
		Body BlockBody
	}) (*struct{ Body model.IPPool }, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		b, blk, err := in.Body.parseBlock("body", store.NewID())
		if err != nil {
			return nil, problem(err)
		}
		// IPAM first, outside the store transaction: on SQLite both share
		// the one writer connection.
		pool, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		for _, o := range pool.Blocks {
			ob, err := ipamBlock(o)
			if err == nil && overlapping(blk, []ipam.Block{ob}) == 0 {
				return nil, problem(field("body.range", virtplane.Errorf(virtplane.ErrConflict, "block %s overlaps block %s (%s) of the pool", b.Range, o.ID, o.Range)))
			}
		}
		if s.cfg.IPAM != nil {
			if _, err := s.cfg.IPAM.AddBlock(ctx, in.ID, blk); err != nil {
				return nil, problem(field("body.range", err))
			}
		}
		p, err := s.changePool(ctx, in.ID, func(p *model.IPPool) error {
			p.Blocks = append(p.Blocks, b)
			return nil
		})
		return &struct{ Body model.IPPool }{p}, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "removePoolBlock", Method: http.MethodDelete, Path: "/v1/ippools/{id}/blocks/{block}", Tags: tags,
		Summary: "Remove a block from a pool (admin); refused while addresses of it are in use", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *struct {
		IDInput
		Block string `path:"block"`
	}) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		pool, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id")
		if err != nil {
			return nil, problem(err)
		}
		if s.cfg.IPAM != nil && slices.ContainsFunc(pool.Blocks, func(b model.IPBlock) bool { return b.ID == in.Block }) {
			if err := s.cfg.IPAM.RemoveBlock(ctx, in.ID, in.Block); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return nil, problem(field("path.block", err))
			}
		}
		_, err = s.changePool(ctx, in.ID, func(p *model.IPPool) error {
			for i, b := range p.Blocks {
				if b.ID == in.Block {
					p.Blocks = append(p.Blocks[:i], p.Blocks[i+1:]...)
					return nil
				}
			}
			return field("path.block", virtplane.Errorf(virtplane.ErrNotFound, "block %q of pool %s", in.Block, in.ID))
		})
		return nil, problem(err)
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "deletePool", Method: http.MethodDelete, Path: "/v1/ippools/{id}", Tags: tags,
		Summary: "Delete a pool no VM uses (admin)", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *IDInput) (*struct{}, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		if _, err := s.st.GetObject(ctx, store.KindPool, in.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		if n, err := countVMs(ctx, s.st, func(vm model.VM) bool { return vm.PoolID == in.ID }); err != nil || n > 0 {
			if err == nil {
				err = field("path.id", virtplane.Errorf(virtplane.ErrConflict, "pool %s is used by %d VMs", in.ID, n))
			}
			return nil, problem(err)
		}
		// IPAM refuses while the pool has allocations.
		if s.cfg.IPAM != nil {
			if err := s.cfg.IPAM.DeletePool(ctx, in.ID); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return nil, problem(field("path.id", err))
			}
		}
		err := s.st.Update(ctx, func(tx store.Tx) error { return tx.DeleteObject(ctx, store.KindPool, in.ID, 0) })
		return nil, problem(err)
	})
}

func (s *Server) changePool(ctx context.Context, id string, change func(*model.IPPool) error) (model.IPPool, error) {
	var p model.IPPool
	err := s.st.Update(ctx, func(tx store.Tx) error {
		var o store.Object
		var err error
		if p, o, err = getObject[model.IPPool](ctx, tx, store.KindPool, id, "path.id"); err != nil {
			return err
		}
		if err := change(&p); err != nil {
			return err
		}
		if o.Data, err = encode(p); err != nil {
			return err
		}
		return tx.UpdateObject(ctx, &o)
	})
	if err == nil {
		s.publish("pool", "changed", id, "", "")
	}
	return p, err
}
