package file_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// meetingExecutor runs qemu-img, but holds every "create" until n of them
// are under way at once (or a deadline passes): clones serialised by a
// pool-wide lock never meet.
type meetingExecutor struct {
	n       int
	mu      sync.Mutex
	gate    bool // hold creates (off while the base is made)
	waiting int
	met     chan struct{}
	entered chan struct{}
}

func (e *meetingExecutor) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	e.mu.Lock()
	gate := e.gate
	e.mu.Unlock()
	if gate && cmd.Name == "qemu-img" && len(cmd.Args) > 0 && cmd.Args[0] == "create" {
		e.mu.Lock()
		e.waiting++
		if e.waiting == e.n {
			close(e.met)
		}
		e.mu.Unlock()
		select {
		case e.entered <- struct{}{}:
		default:
		}
		select {
		case <-e.met:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("only %d of %d clones ran at once", e.waiting, e.n)
		}
	}
	return storage.LocalExecutor{}.Run(ctx, cmd)
}

// TestClonesRunInParallel: linked clones of one base into different
// volumes run their qemu-img at the same time, and the base cannot be
// deleted while a clone of it is under way.
func TestClonesRunInParallel(t *testing.T) {
	needQemuImg(t)
	ctx := t.Context()
	const n = 4
	ex := &meetingExecutor{n: n, met: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := newPool(t, ex)
	_, err := p.Create(ctx, storage.VolumeSpec{Name: "base", Size: 64 << 20, Format: storage.FormatQcow2})
	require.NoError(t, err)
	ex.mu.Lock()
	ex.gate = true
	ex.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = p.Clone(ctx, "base", fmt.Sprintf("vm%d", i), storage.CloneLinked)
		})
	}
	<-ex.entered
	err = p.Delete(ctx, "base")
	assert.ErrorIs(t, err, virtplane.ErrConflict, "the base of a clone under way")
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "clone %d", i)
	}
	vols, err := p.List(ctx)
	require.NoError(t, err)
	assert.Len(t, vols, n+1)
	assert.ErrorIs(t, p.Delete(ctx, "base"), virtplane.ErrConflict, "the parent of linked clones")
}
