package san

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
)

// LUN is one logical unit of a target.
type LUN struct {
	Number int
	Name   string // the volume name it holds
	Size   int64
}

// LUNProvisioner is the management side of a SAN: it carves named LUNs out
// of the array and exports them on the pool's target. Each array vendor has
// its own; TGT drives Linux's tgt.
type LUNProvisioner interface {
	CreateLUN(ctx context.Context, name string, size int64) (LUN, error)
	DeleteLUN(ctx context.Context, name string) error
	ListLUNs(ctx context.Context) ([]LUN, error)
}

// TGT provisions file-backed LUNs on one target of a local tgtd through
// tgtadm. A LUN's backing file is <Dir>/<volume>.img, which is how the
// volume name survives in tgt's own state.
type TGT struct {
	Exec        storage.Executor // runs tgtadm; nil = storage.LocalExecutor{}
	ControlPort int              // tgtd -C: selects the management socket
	TID         int              // target id
	Dir         string           // where the backing files live
	mu          sync.Mutex
}

var _ LUNProvisioner = (*TGT)(nil)

func (t *TGT) exec() storage.Executor {
	if t.Exec == nil {
		return storage.LocalExecutor{}
	}
	return t.Exec
}

func (t *TGT) tgtadm(ctx context.Context, args ...string) ([]byte, error) {
	base := []string{"-C", strconv.Itoa(t.ControlPort), "--lld", "iscsi"}
	return t.exec().Run(ctx, storage.Command{Name: "tgtadm", Args: append(base, args...)})
}

// ListLUNs implements LUNProvisioner. LUN 0 (the controller) and LUNs whose
// backing file is outside Dir are not volumes.
func (t *TGT) ListLUNs(ctx context.Context) ([]LUN, error) {
	out, err := t.tgtadm(ctx, "--op", "show", "--mode", "target")
	if err != nil {
		return nil, fmt.Errorf("tgtadm show: %w: %w", virtplane.ErrUnavailable, err)
	}
	luns, err := parseTargetLUNs(out, t.TID)
	if err != nil {
		return nil, err
	}
	var mine []LUN
	for _, l := range luns {
		if l.backing == "" || filepath.Dir(l.backing) != t.Dir {
			continue
		}
		name, ok := strings.CutSuffix(filepath.Base(l.backing), ".img")
		if !ok || storage.ValidateName("volume name", name) != nil {
			continue
		}
		st, err := os.Stat(l.backing)
		if err != nil {
			continue
		}
		mine = append(mine, LUN{Number: l.number, Name: name, Size: st.Size()})
	}
	return mine, nil
}

type tgtLUN struct {
	number  int
	backing string
}

// parseTargetLUNs reads `tgtadm --op show --mode target` and returns the
// LUNs of target tid with their backing store paths.
func parseTargetLUNs(out []byte, tid int) ([]tgtLUN, error) {
	var luns []tgtLUN
	in := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Target ") {
			num, _, ok := strings.Cut(strings.TrimPrefix(line, "Target "), ":")
			n, err := strconv.Atoi(num)
			in = ok && err == nil && n == tid
			continue
		}
		if !in {
			continue
		}
		f := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(f, "LUN: "):
			n, err := strconv.Atoi(strings.TrimPrefix(f, "LUN: "))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("tgtadm show: line %q: %w", line, virtplane.ErrUnavailable)
			}
			luns = append(luns, tgtLUN{number: n})
		case strings.HasPrefix(f, "Backing store path: ") && len(luns) > 0:
			p := strings.TrimPrefix(f, "Backing store path: ")
			if p != "None" {
				luns[len(luns)-1].backing = p
			}
		}
	}
	return luns, sc.Err()
}

// CreateLUN implements LUNProvisioner: a sparse backing file and a new
// logical unit with the lowest free number.
func (t *TGT) CreateLUN(ctx context.Context, name string, size int64) (LUN, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out, err := t.tgtadm(ctx, "--op", "show", "--mode", "target")
	if err != nil {
		return LUN{}, fmt.Errorf("tgtadm show: %w: %w", virtplane.ErrUnavailable, err)
	}
	luns, err := parseTargetLUNs(out, t.TID)
	if err != nil {
		return LUN{}, err
	}
	used := map[int]bool{0: true}
	for _, l := range luns {
		used[l.number] = true
	}
	num := 1
	for used[num] {
		num++
	}
	path := filepath.Join(t.Dir, name+".img")
	r := revert.New()
	defer r.Fail()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LUN{}, virtplane.Errorf(virtplane.ErrAlreadyExists, "lun %q", name)
	}
	if err != nil {
		return LUN{}, fmt.Errorf("lun %q: %w: %v", name, virtplane.ErrUnavailable, err)
	}
	r.Add(func() { _ = os.Remove(path) })
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return LUN{}, fmt.Errorf("lun %q: %w: %v", name, virtplane.ErrUnavailable, err)
	}
	if _, err := t.tgtadm(ctx, "--op", "new", "--mode", "logicalunit", "--tid", strconv.Itoa(t.TID), "--lun", strconv.Itoa(num), "-b", path); err != nil {
		return LUN{}, fmt.Errorf("lun %q: %w", name, err)
	}
	r.Success()
	return LUN{Number: num, Name: name, Size: size}, nil
}

// DeleteLUN implements LUNProvisioner.
func (t *TGT) DeleteLUN(ctx context.Context, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	luns, err := t.ListLUNs(ctx)
	if err != nil {
		return err
	}
	for _, l := range luns {
		if l.Name != name {
			continue
		}
		if _, err := t.tgtadm(ctx, "--op", "delete", "--mode", "logicalunit", "--tid", strconv.Itoa(t.TID), "--lun", strconv.Itoa(l.Number)); err != nil {
			return fmt.Errorf("lun %q: %w", name, err)
		}
		if err := os.Remove(filepath.Join(t.Dir, name+".img")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lun %q: %w: %v", name, virtplane.ErrUnavailable, err)
		}
		return nil
	}
	return virtplane.Errorf(virtplane.ErrNotFound, "lun %q", name)
}
