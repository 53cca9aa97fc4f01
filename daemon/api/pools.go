package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
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
	Range   string `json:"range" doc:"CIDR (192.0.2.0/24) or first-last range" minLength:"1"`
	Gateway string `json:"gateway,omitempty"`
}

func (b BlockBody) validate(loc string) error {
	if _, err := netip.ParsePrefix(b.Range); err != nil {
		first, last, ok := strings.Cut(b.Range, "-")
		_, e1 := netip.ParseAddr(strings.TrimSpace(first))
		_, e2 := netip.ParseAddr(strings.TrimSpace(last))
		if !ok || e1 != nil || e2 != nil {
			return field(loc+".range", virtplane.Errorf(virtplane.ErrInvalidArgument, "range %q: a CIDR or first-last", b.Range))
		}
	}
	if b.Gateway != "" {
		if _, err := netip.ParseAddr(b.Gateway); err != nil {
			return field(loc+".gateway", virtplane.Errorf(virtplane.ErrInvalidArgument, "gateway %q is not an address", b.Gateway))
		}
	}
	return nil
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
		for i, b := range in.Body.Blocks {
			if err := b.validate("body.blocks[" + itoa(i) + "]"); err != nil {
				return nil, problem(err)
			}
			p.Blocks = append(p.Blocks, model.IPBlock{ID: store.NewID(), Range: b.Range, Gateway: b.Gateway})
		}
		if s.cfg.IPAM != nil {
			ip := ipam.Pool{ID: p.ID, Clusters: p.ClusterIDs}
			for i, b := range p.Blocks {
				blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: b.ID, Range: b.Range, Gateway: b.Gateway})
				if err != nil {
					return nil, problem(field("body.blocks["+itoa(i)+"]", err))
				}
				ip.Blocks = append(ip.Blocks, blk)
			}
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
		if err := in.Body.validate("body"); err != nil {
			return nil, problem(err)
		}
		// IPAM first, outside the store transaction: on SQLite both share
		// the one writer connection.
		b := model.IPBlock{ID: store.NewID(), Range: in.Body.Range, Gateway: in.Body.Gateway}
		if _, _, err := getObject[model.IPPool](ctx, s.st, store.KindPool, in.ID, "path.id"); err != nil {
			return nil, problem(err)
		}
		if s.cfg.IPAM != nil {
			blk, err := ipam.ParseBlock(ipam.BlockSpec{ID: b.ID, Range: b.Range, Gateway: b.Gateway})
			if err != nil {
				return nil, problem(field("body.range", err))
			}
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
