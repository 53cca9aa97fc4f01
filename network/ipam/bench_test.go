package ipam

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveAllocator is the reference the benchmarks compare against: a map of
// allocated offsets and a next-fit cursor that probes one address at a time.
type naiveAllocator struct {
	units  uint64
	used   map[uint64]struct{}
	cursor uint64
}

func (n *naiveAllocator) next() (uint64, bool) {
	for i := uint64(0); i < n.units; i++ {
		off := (n.cursor + i) % n.units
		if _, ok := n.used[off]; !ok {
			n.used[off] = struct{}{}
			n.cursor = (off + 1) % n.units
			return off, true
		}
	}
	return 0, false
}

func (n *naiveAllocator) release(off uint64) { delete(n.used, off) }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mustParseBlock(tb testing.TB, r string) Block {
	tb.Helper()
	b, err := ParseBlock(BlockSpec{Range: r, KeepNetworkBroadcast: true})
	require.NoError(tb, err)
	return b
}

// halfFull allocates every even offset, the fragmentation of a pool whose
// customers came and went.
func halfFull(st *blockState) {
	for off := uint64(0); off <= st.last; off += 2 {
		if err := st.take(off); err != nil {
			panic(err)
		}
	}
}

// BenchmarkAllocateRelease measures one next-free allocation plus one
// release on a half-full, fragmented block, for the bitmap allocator and, in
// the same run, for the naive map allocator; it reports pairs per second,
// allocator bytes per address and the speedup over the naive allocator.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, size := range []string{"10.0.0.0/16", "10.0.0.0/8"} {
		blk := mustParseBlock(b, size)
		units := blk.Units()
		b.Run(fmt.Sprintf("bitmap/%s", size), func(b *testing.B) {
			before := heapInUse()
			st := newBlockState(blk, 0)
			halfFull(st)
			after := heapInUse()
			b.ReportAllocs()
			for b.Loop() {
				off, ok := st.nextAny()
				if !ok {
					b.Fatal("block full")
				}
				st.release(off, 0)
			}
			elapsed := b.Elapsed()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			b.ReportMetric(float64(st.sizeBytes())/float64(units), "B/addr")
			b.ReportMetric(float64(after-before)/float64(1<<20), "heap-MiB")
			runtime.KeepAlive(st)

			// The naive reference, same workload, in the same run.
			nv := &naiveAllocator{units: units, used: make(map[uint64]struct{}, units/2)}
			for off := uint64(0); off < units; off += 2 {
				nv.used[off] = struct{}{}
			}
			naiveOps := min(b.N, 2_000_000)
			start := time.Now()
			for range naiveOps {
				off, ok := nv.next()
				if !ok {
					b.Fatal("naive block full")
				}
				nv.release(off)
			}
			naivePerOp := time.Since(start).Seconds() / float64(naiveOps)
			bitmapPerOp := elapsed.Seconds() / float64(b.N)
			b.ReportMetric(1/naivePerOp, "naive-ops/s")
			b.ReportMetric(naivePerOp/bitmapPerOp, "speedup")
		})
	}
}

// BenchmarkAllocateReleaseCooldown is the bitmap benchmark with a cooldown:
// every released address waits in the FIFO for the next 1024 operations.
func BenchmarkAllocateReleaseCooldown(b *testing.B) {
	blk := mustParseBlock(b, "10.0.0.0/16")
	st := newBlockState(blk, 1024)
	halfFull(st)
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		now++
		st.expire(now)
		off, ok := st.nextAny()
		if !ok {
			b.Fatal("block full")
		}
		st.release(off, now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkNaiveMemory reports what the naive map costs for the same
// half-full blocks, beside the bitmap's B/addr.
func BenchmarkNaiveMemory(b *testing.B) {
	for _, bits := range []int{16, 8} {
		b.Run(fmt.Sprintf("slash%d", bits), func(b *testing.B) {
			units := uint64(1) << (32 - bits)
			var perAddr float64
			for b.Loop() {
				before := heapInUse()
				m := make(map[uint64]struct{})
				for off := uint64(0); off < units; off += 2 {
					m[off] = struct{}{}
				}
				perAddr = float64(heapInUse()-before) / float64(units)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(perAddr, "B/addr")
		})
	}
}

// BenchmarkManagerAllocateRelease measures the whole path: a Manager over a
// MemoryStore, with transactions, owner records and the owner index.
func BenchmarkManagerAllocateRelease(b *testing.B) {
	ctx := b.Context()
	m, err := New(Config{Store: NewMemoryStore()}, WithCooldown(0))
	require.NoError(b, err)
	_, err = m.CreatePool(ctx, Pool{ID: "p", Blocks: []Block{mustParseBlock(b, "10.0.0.0/16")}})
	require.NoError(b, err)
	req := Request{Owner: Owner{VM: "vm", Interface: "eth0"}}
	b.ReportAllocs()
	for b.Loop() {
		a, err := m.Allocate(ctx, "p", req)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Release(ctx, "p", a.Prefix); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// TestSlash8MemoryBudget holds the allocator state of a whole IPv4 /8 to
// 2.5 MiB, measured on the heap, and reports bytes per address.
func TestSlash8MemoryBudget(t *testing.T) {
	blk := mustParseBlock(t, "10.0.0.0/8")
	before := heapInUse()
	st := newBlockState(blk, int64(time.Hour))
	halfFull(st)
	after := heapInUse()
	used := after - before
	t.Logf("/8: %d bytes on the heap, %.4f bytes per address, sizeBytes %d", used, float64(used)/float64(blk.Units()), st.sizeBytes())
	assert.LessOrEqual(t, used, uint64(5<<19), "2.5 MiB budget")
	assert.LessOrEqual(t, st.sizeBytes(), 5<<19)
	runtime.KeepAlive(st)
}

// TestRecordMemory reports the store's cost per allocated address (owner
// data is kept only for allocated units).
func TestRecordMemory(t *testing.T) {
	ctx := t.Context()
	s := NewMemoryStore()
	m, err := New(Config{Store: s}, WithCooldown(0))
	require.NoError(t, err)
	_, err = m.CreatePool(ctx, Pool{ID: "p", Blocks: []Block{mustParseBlock(t, "10.0.0.0/8")}})
	require.NoError(t, err)
	_, err = m.Allocate(ctx, "p", Request{Owner: Owner{VM: "warm"}})
	require.NoError(t, err)
	const n = 20000
	before := heapInUse()
	for i := range n {
		_, err := m.Allocate(ctx, "p", Request{Owner: Owner{VM: fmt.Sprintf("vm-%05d", i), Interface: "eth0"}})
		require.NoError(t, err)
	}
	after := heapInUse()
	per := float64(after-before) / n
	t.Logf("store: %.0f bytes per allocated address (record + owner index)", per)
	assert.Less(t, per, 1024.0)
	a, err := m.Lookup(ctx, "p", netip.MustParseAddr("10.0.0.1"))
	require.NoError(t, err)
	assert.Equal(t, "vm-00000", a.Owner.VM)
}
