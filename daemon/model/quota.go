package model

import (
	"strconv"

	"github.com/virtplane/virtplane"
)

// NoLimit is the value of a quota limit that does not limit.
const NoLimit = -1

// QuotaAmounts are the amounts a quota counts: what a user's VMs hold, or
// what they may hold at most (NoLimit: no bound).
type QuotaAmounts struct {
	VMs       int64 `json:"vms"`
	VCPUs     int64 `json:"vcpus"`
	MemoryMiB int64 `json:"memory_mib"`
	DiskGiB   int64 `json:"disk_gib"`
	Addresses int64 `json:"addresses"`
}

// Unlimited is the quota of a user for whom none was set.
func Unlimited() QuotaAmounts {
	return QuotaAmounts{VMs: NoLimit, VCPUs: NoLimit, MemoryMiB: NoLimit, DiskGiB: NoLimit, Addresses: NoLimit}
}

// Quota is what a user's VMs may hold at most, and what they hold.
type Quota struct {
	UserID string       `json:"user_id"`
	Limits QuotaAmounts `json:"limits" doc:"-1: no limit"`
	Usage  QuotaAmounts `json:"usage" doc:"what the user's VMs hold now (a VM being created counts with what it asked for; a failed one counts nothing)"`
}

// QuotaUse is what one VM counts against its owner's quota. A failed VM
// holds nothing; one that is being created counts the addresses it will get
// (two for a dual-stack VM).
func QuotaUse(vm VM) QuotaAmounts {
	if vm.State == VMFailed {
		return QuotaAmounts{}
	}
	want := 1
	if vm.DualStack {
		want = 2
	}
	return QuotaAmounts{VMs: 1, VCPUs: int64(vm.CPUs), MemoryMiB: vm.MemoryMiB, DiskGiB: vm.TotalDiskGiB(), Addresses: int64(max(len(vm.Addresses), want))}
}

// Add returns a + b.
func (a QuotaAmounts) Add(b QuotaAmounts) QuotaAmounts {
	return QuotaAmounts{VMs: a.VMs + b.VMs, VCPUs: a.VCPUs + b.VCPUs, MemoryMiB: a.MemoryMiB + b.MemoryMiB, DiskGiB: a.DiskGiB + b.DiskGiB, Addresses: a.Addresses + b.Addresses}
}

// QuotaError is a change that would take a user past a limit of their quota.
type QuotaError struct {
	Quota              string // the limit's name: vms, vcpus, memory_mib, disk_gib, addresses
	Limit, Used, Asked int64
}

func (e *QuotaError) Error() string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return "quota " + e.Quota + " exceeded: " + i(e.Used) + " in use + " + i(e.Asked) + " asked > " + i(e.Limit) + " allowed: " + virtplane.ErrPermissionDenied.Error()
}

// Unwrap makes a QuotaError an ErrPermissionDenied: the caller may not have more.
func (e *QuotaError) Unwrap() error { return virtplane.ErrPermissionDenied }

// Check returns a *QuotaError for the first limit that a VM going from
// holding prev to holding next passes, with used held by the owner's other
// VMs. Only what grows is checked: a limit set below what a user holds
// refuses more, not what is there.
func (limits QuotaAmounts) Check(used, prev, next QuotaAmounts) error {
	for _, c := range []struct {
		name                    string
		limit, used, prev, next int64
	}{
		{"vms", limits.VMs, used.VMs, prev.VMs, next.VMs},
		{"vcpus", limits.VCPUs, used.VCPUs, prev.VCPUs, next.VCPUs},
		{"memory_mib", limits.MemoryMiB, used.MemoryMiB, prev.MemoryMiB, next.MemoryMiB},
		{"disk_gib", limits.DiskGiB, used.DiskGiB, prev.DiskGiB, next.DiskGiB},
		{"addresses", limits.Addresses, used.Addresses, prev.Addresses, next.Addresses},
	} {
		if c.limit >= 0 && c.next > c.prev && c.used+c.next > c.limit {
			return &QuotaError{Quota: c.name, Limit: c.limit, Used: c.used + c.prev, Asked: c.next - c.prev}
		}
	}
	return nil
}
