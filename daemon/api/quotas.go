package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/flow"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// QuotaPatch changes a user's limits: only the limits sent change; -1
// removes one.
type QuotaPatch struct {
	VMs       *int64 `json:"vms,omitempty" minimum:"-1" doc:"VMs at most; -1: no limit"`
	VCPUs     *int64 `json:"vcpus,omitempty" minimum:"-1" doc:"vCPUs of all the user's VMs at most; -1: no limit"`
	MemoryMiB *int64 `json:"memory_mib,omitempty" minimum:"-1" doc:"memory of all the user's VMs at most, MiB; -1: no limit"`
	DiskGiB   *int64 `json:"disk_gib,omitempty" minimum:"-1" doc:"disks (root and data) of all the user's VMs at most, GiB; -1: no limit"`
	Addresses *int64 `json:"addresses,omitempty" minimum:"-1" doc:"IP addresses of all the user's VMs at most; -1: no limit"`
}

func (p QuotaPatch) over(l model.QuotaAmounts) model.QuotaAmounts {
	set(&l.VMs, p.VMs)
	set(&l.VCPUs, p.VCPUs)
	set(&l.MemoryMiB, p.MemoryMiB)
	set(&l.DiskGiB, p.DiskGiB)
	set(&l.Addresses, p.Addresses)
	return l
}

// QuotaOutput is a user's quota with what they use.
type QuotaOutput struct{ Body model.Quota }

func (s *Server) registerQuotas() {
	tags := []string{"users"}
	huma.Register(s.api, huma.Operation{
		OperationID: "getQuota", Method: http.MethodGet, Path: "/v1/users/{id}/quota", Tags: tags,
		Summary:     "A user's quota and what their VMs use of it (admin or self)",
		Description: "A create or resize that would pass a limit is refused with 403 naming the limit (errors[0].location quota.NAME). Limits of -1 do not limit; a user without a quota set has none.",
	}, func(ctx context.Context, in *IDInput) (*QuotaOutput, error) {
		if !principal(ctx).CanAccess(in.ID) {
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrNotFound, "user %q", in.ID)))
		}
		if _, _, err := s.user(ctx, in.ID); err != nil {
			return nil, problem(err)
		}
		q, err := quotaOf(ctx, s.st, in.ID)
		return &QuotaOutput{Body: q}, problem(err)
	})
	set := func(ctx context.Context, in *struct {
		IDInput
		Body QuotaPatch
	}) (*QuotaOutput, error) {
		if err := requireAdmin(ctx); err != nil {
			return nil, problem(err)
		}
		var q model.Quota
		err := s.st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.GetObject(ctx, store.KindUser, in.ID); err != nil {
				return field("path.id", err)
			}
			o, err := tx.GetObject(ctx, store.KindQuota, in.ID)
			limits := model.Unlimited()
			exists := err == nil
			switch {
			case exists:
				if limits, err = decode[model.QuotaAmounts](o); err != nil {
					return err
				}
			case !errors.Is(err, virtplane.ErrNotFound):
				return err
			}
			limits = in.Body.over(limits)
			data, err := encode(limits)
			if err != nil {
				return err
			}
			if exists {
				o.Data = data
				err = tx.UpdateObject(ctx, &o)
			} else {
				err = tx.CreateObject(ctx, &store.Object{Kind: store.KindQuota, ID: in.ID, Name: in.ID, Owner: in.ID, Data: data})
			}
			if err != nil {
				return err
			}
			q, err = quotaOf(ctx, tx, in.ID)
			return err
		})
		return &QuotaOutput{Body: q}, problem(err)
	}
	const partial = "Only the limits sent change, the others keep their values; -1 removes a limit. Limits below what the user holds now are accepted: they refuse what would add to it."
	huma.Register(s.api, huma.Operation{
		OperationID: "setQuota", Method: http.MethodPut, Path: "/v1/users/{id}/quota", Tags: tags,
		Summary: "Set a user's quota (admin)", Description: partial,
	}, set)
	huma.Register(s.api, huma.Operation{
		OperationID: "patchQuota", Method: http.MethodPatch, Path: "/v1/users/{id}/quota", Tags: tags,
		Summary: "Change some of a user's limits (admin)", Description: partial + " The same as PUT.",
	}, set)
}

// quotaOf reads a user's limits and adds up what their VMs hold.
func quotaOf(ctx context.Context, r store.Reader, userID string) (model.Quota, error) {
	q := model.Quota{UserID: userID, Limits: model.Unlimited()}
	o, err := r.GetObject(ctx, store.KindQuota, userID)
	switch {
	case err == nil:
		if q.Limits, err = decode[model.QuotaAmounts](o); err != nil {
			return q, err
		}
	case !errors.Is(err, virtplane.ErrNotFound):
		return q, err
	}
	q.Usage, err = quotaUsage(ctx, r, userID, "")
	return q, err
}

// quotaUsage adds up what the VMs of owner hold, but the VM except.
func quotaUsage(ctx context.Context, r store.Reader, owner, except string) (model.QuotaAmounts, error) {
	var use model.QuotaAmounts
	opts := store.ListOptions{Owner: owner, Limit: 1000}
	for {
		objs, err := r.ListObjects(ctx, store.KindVM, opts)
		if err != nil {
			return use, err
		}
		for _, o := range objs {
			if o.ID == except {
				continue
			}
			vm, err := decode[model.VM](o)
			if err != nil {
				return use, err
			}
			use = use.Add(model.QuotaUse(vm))
		}
		if len(objs) < opts.Limit {
			return use, nil
		}
		opts.After = objs[len(objs)-1].ID
	}
}

// errQuotaRace is a quota charge that met a concurrent one of the same
// user (on a store where two write transactions run at once): the
// transaction is run again.
var errQuotaRace = errors.New("quota charged concurrently")

// chargeQuota checks, inside the transaction that makes or grows a VM
// (prev: as it is, nil for a new one; next: as it will be), that its
// owner's quota has room for what grows; a user without a quota
// costs one read. The quota's record is rewritten, so that of two
// transactions charging one user at once, on a store that runs them in
// parallel, the second fails on its version (errQuotaRace) and is run
// again, seeing the first one's VM: the check and the change are one.
func chargeQuota(ctx context.Context, tx store.Tx, prev *model.VM, next model.VM) error {
	o, err := tx.GetObject(ctx, store.KindQuota, next.Owner)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	limits, err := decode[model.QuotaAmounts](o)
	if err != nil {
		return err
	}
	used, err := quotaUsage(ctx, tx, next.Owner, next.ID)
	if err != nil {
		return err
	}
	var held model.QuotaAmounts
	if prev != nil {
		held = model.QuotaUse(*prev)
	}
	if err := limits.Check(used, held, model.QuotaUse(next)); err != nil {
		var qe *model.QuotaError
		if errors.As(err, &qe) {
			return field("quota."+qe.Quota, err)
		}
		return err
	}
	if err := tx.UpdateObject(ctx, &o); err != nil {
		if errors.Is(err, virtplane.ErrConflict) {
			return errors.Join(errQuotaRace, err)
		}
		return err
	}
	return nil
}

// withQuotaRetry runs update again while it fails on errQuotaRace.
func withQuotaRetry(update func() error) error {
	var err error
	for range 10 {
		if err = update(); !errors.Is(err, errQuotaRace) {
			return err
		}
	}
	return virtplane.Errorf(virtplane.ErrUnavailable, "quota: too many concurrent changes, try again")
}

// grown is vm as a task of kind with input leaves it, for the quota
// check of what it grows; false when it grows nothing.
func grown(kind string, vm model.VM, in flow.VMInput) (model.VM, bool) {
	switch kind {
	case flow.KindVMResize:
		if in.CPUs != 0 {
			vm.CPUs = in.CPUs
		}
		if in.MemoryMiB != 0 {
			vm.MemoryMiB = in.MemoryMiB
		}
		if in.DiskGiB != 0 {
			vm.DiskGiB = in.DiskGiB
		}
		return vm, true
	case flow.KindVMDiskAttach:
		if in.Disk != nil {
			vm.Disks = append(slices.Clone(vm.Disks), *in.Disk)
		}
		return vm, true
	case flow.KindVMDiskResize:
		vm.Disks = slices.Clone(vm.Disks)
		for i := range vm.Disks {
			if vm.Disks[i].Target == in.DiskTarget {
				vm.Disks[i].SizeGiB = in.DiskGiB
			}
		}
		return vm, true
	}
	return vm, false
}
