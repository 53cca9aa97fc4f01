package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/node"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/daemon/tasks"
	"github.com/virtplane/virtplane/storage"
)

// The image task kinds.
const (
	// KindImageImport imports an image into the storage of a cluster's
	// nodes (or one node), as the base volume VMs are linked clones of.
	KindImageImport = "image.import"
	// KindImageDelete removes an image's base volumes from every node, then
	// the image.
	KindImageDelete = "image.delete"
	// KindImageFromVM makes an image of a stopped VM's disk.
	KindImageFromVM = "image.from-vm"
)

// ImageInput is the input of the image tasks: the image and, for an
// import, where to (a cluster's nodes, or one node).
type ImageInput struct {
	ImageID string `json:"image_id"`
	// VMID is the VM an image is made from (KindImageFromVM).
	VMID      string `json:"vm_id,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    string `json:"node_id,omitempty"`
}

// imagePatch is what an import found out; finishImage records it.
type imagePatch struct {
	Nodes   []string `json:"nodes"`
	Format  string   `json:"format,omitempty"`
	SizeMiB int64    `json:"size_mib,omitempty"`
}

// The undo actions of an import.
const (
	undoRemoveBase = "image.remove-base"
	undoUncache    = "image.uncache"
)

type baseArgs struct {
	ImageID string `json:"image_id"`
	NodeID  string `json:"node_id,omitempty"`
}

// cacheKey names an image in the daemon's image cache.
func cacheKey(imageID string) string { return ImageVolume(imageID) }

func isURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

// importTarget is a node an image goes to, with what it takes there.
type importTarget struct {
	node model.Node
	pool storage.Pool
	exec storage.Executor
	// upload puts the image file on the node first (nil: the node sees
	// the daemon's files).
	upload func(ctx context.Context, name string, r io.Reader, size int64) (string, error)
}

// importImage puts an image into the pools of the target nodes: fetch it
// once into the daemon's cache when it is a URL, then convert it with
// qemu-img into the base volume ImageVolume(id) of each node's pool
// (storage.Importer). Nodes that hold the base already are skipped, so an
// import can be repeated to reach nodes added since. Each step records its
// undo first: a failure on the third node removes the bases made on the
// first two and the fetched file.
func (f *Flow) importImage(ctx context.Context, r *tasks.Run) error {
	var in ImageInput
	if err := r.Input(&in); err != nil {
		return err
	}
	img, err := load[model.Image](ctx, f.cfg.Store, store.KindImage, in.ImageID)
	if err != nil {
		return err
	}
	if img.Source == "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s has no source to import from", img.ID)
	}
	targets, err := f.importTargets(ctx, in)
	if err != nil {
		return err
	}
	total := len(targets)
	span, at := 100/max(total, 1), 0
	path := img.Source
	if isURL(img.Source) {
		if f.ops.cache == nil {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s: source %q is a URL, and the daemon has no image cache (set its data directory)", img.ID, img.Source)
		}
		span, at = 50/max(total, 1), 50
		last := -1
		progress := func(done, size int64) {
			if size <= 0 {
				return
			}
			if p := int(done * 50 / size); p != last {
				last = p
				_ = r.Progress(ctx, p, fmt.Sprintf("fetching %s: %d of %d MiB", img.Source, done>>20, size>>20))
			}
		}
		if err := r.Step(ctx, "fetch "+img.Source, tasks.UndoAction(undoUncache, baseArgs{ImageID: img.ID}), func(ctx context.Context) error {
			var err error
			path, _, err = f.ops.cache.Fetch(ctx, storage.Image{Key: cacheKey(img.ID), Open: f.openURL(img.Source)}, progress)
			return err
		}); err != nil {
			return err
		}
	} else if _, err := os.Stat(path); err != nil {
		class := virtplane.ErrInvalidArgument
		if errors.Is(err, fs.ErrNotExist) {
			class = virtplane.ErrNotFound
		}
		return virtplane.Errorf(class, "image %s: source %q: %v", img.ID, img.Source, err)
	}
	// What the image is, checked once before any node is changed: on the
	// first node, where its qemu-img reads the file (streamed there first
	// when the node does not see the daemon's files).
	first := targets[0]
	firstPath, drop, err := first.place(ctx, path, img.ID)
	if err != nil {
		return fmt.Errorf("image %s: put on node %s: %w", img.ID, first.node.Name, err)
	}
	info, err := storage.QemuImageInfo(ctx, first.exec, firstPath)
	drop()
	if err != nil {
		return fmt.Errorf("image %s: source %q: %w", img.ID, img.Source, err)
	}
	if info.Format != storage.FormatQcow2 && info.Format != storage.FormatRaw {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s: source %q is %q, not qcow2 or raw", img.ID, img.Source, info.Format)
	}
	if info.BackingFilename != "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "image %s: source %q has a backing file: import a flattened image", img.ID, img.Source)
	}

	patch := imagePatch{Nodes: slices.Clone(img.Nodes), Format: string(info.Format), SizeMiB: (info.VirtualSize + 1<<20 - 1) >> 20}
	name := ImageVolume(img.ID)
	for i, tg := range targets {
		_ = r.Progress(ctx, at+i*span, fmt.Sprintf("importing into node %s (%d of %d)", tg.node.Name, i+1, total))
		_, err := tg.pool.Volume(ctx, name)
		if err == nil {
			_ = r.Log(ctx, "node "+tg.node.Name+" holds the image already")
		} else if !errors.Is(err, virtplane.ErrNotFound) {
			return err
		} else if err := r.Step(ctx, "import into node "+tg.node.Name, tasks.UndoAction(undoRemoveBase, baseArgs{ImageID: img.ID, NodeID: tg.node.ID}), func(ctx context.Context) error {
			there, drop, err := tg.place(ctx, path, img.ID)
			if err != nil {
				return fmt.Errorf("put on node %s: %w", tg.node.Name, err)
			}
			defer drop()
			im := storage.Importer{Exec: tg.exec}
			_, err = im.Import(ctx, tg.pool, name, storage.Image{Key: cacheKey(img.ID), Path: there}, nil)
			return err
		}); err != nil {
			return err
		}
		if !slices.Contains(patch.Nodes, tg.node.ID) {
			patch.Nodes = append(patch.Nodes, tg.node.ID)
		}
	}
	return r.SetResult(patch)
}

// place returns the path of the image file at path (on the daemon's host)
// as the node reads it: path itself on a node that sees the daemon's
// files, else a copy streamed onto the node, which drop removes.
func (tg importTarget) place(ctx context.Context, path, imageID string) (there string, drop func(), err error) {
	if tg.upload == nil {
		return path, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	there, err = tg.upload(ctx, "image-"+imageID, f, st.Size())
	if err != nil {
		return "", nil, err
	}
	return there, func() {
		_, _ = tg.exec.Run(context.WithoutCancel(ctx), storage.Command{Name: "rm", Args: []string{"-f", "--", there}})
	}, nil
}

// importTargets resolves the nodes of an import and everything each needs,
// so that a node that cannot take the image fails the task before any
// other node was changed.
func (f *Flow) importTargets(ctx context.Context, in ImageInput) ([]importTarget, error) {
	var nodes []model.Node
	switch {
	case in.NodeID != "":
		n, err := f.node(ctx, in.NodeID)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	case in.ClusterID != "":
		if err := forEach(ctx, f.cfg.Store, store.KindNode, store.ListOptions{Parent: in.ClusterID}, func(n model.Node) error {
			nodes = append(nodes, n)
			return nil
		}); err != nil {
			return nil, err
		}
		if len(nodes) == 0 {
			return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "cluster_id %s: the cluster has no nodes to import into", in.ClusterID)
		}
	default:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "an import needs a cluster_id or a node_id")
	}
	out := make([]importTarget, 0, len(nodes))
	for _, n := range nodes {
		b, err := f.open(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		pool, err := f.diskPool(ctx, n, b)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.Name, err)
		}
		if b.Exec == nil {
			return nil, node.NotOffered(n, "no storage command executor")
		}
		out = append(out, importTarget{node: n, pool: pool, exec: b.Exec, upload: b.Upload})
	}
	return out, nil
}

// openURL opens an http(s) image source for the image cache.
func (f *Flow) openURL(src string) func(ctx context.Context) (io.ReadCloser, int64, error) {
	return func(ctx context.Context) (io.ReadCloser, int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, 0, virtplane.Errorf(virtplane.ErrInvalidArgument, "source %q: %v", src, err)
		}
		hc := f.ops.http
		if hc == nil {
			hc = &http.Client{}
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, 0, virtplane.Errorf(virtplane.ErrUnavailable, "fetching %s: %v", src, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			class := virtplane.ErrUnavailable
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
				class = virtplane.ErrNotFound
			}
			return nil, 0, virtplane.Errorf(class, "fetching %s: %s", src, resp.Status)
		}
		return resp.Body, max(resp.ContentLength, 0), nil
	}
}

// undoRemoveBase removes a base volume an import made. A base that a VM
// was cloned from meanwhile stays: it is in use, and it is the image all
// the same.
func (f *Flow) undoRemoveBase(ctx context.Context, raw json.RawMessage) error {
	var a baseArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	pool, err := f.nodePool(ctx, a.NodeID)
	if errors.Is(err, virtplane.ErrNotFound) {
		return nil // the node is gone, and its storage with it
	}
	if err != nil {
		return err
	}
	err = deleteVolume(ctx, pool, ImageVolume(a.ImageID))
	if errors.Is(err, virtplane.ErrConflict) {
		return nil
	}
	return err
}

// undoUncache removes a fetched image from the daemon's cache.
func (f *Flow) undoUncache(ctx context.Context, raw json.RawMessage) error {
	var a baseArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	return f.uncache(a.ImageID)
}

func (f *Flow) uncache(imageID string) error {
	if f.ops.cache == nil {
		return nil
	}
	if err := os.Remove(f.ops.cache.Path(cacheKey(imageID))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// deleteImage removes an image's base volume from every node that holds
// one (imported, or the placeholder a simulated node made) and its fetched
// file; finishImage then deletes the record. The API refuses it while VMs
// use the image, and the bases' linked clones would refuse it too.
func (f *Flow) deleteImage(ctx context.Context, r *tasks.Run) error {
	var in ImageInput
	if err := r.Input(&in); err != nil {
		return err
	}
	name := ImageVolume(in.ImageID)
	done := map[string]bool{} // a shared storage once
	if err := forEach(ctx, f.cfg.Store, store.KindNode, store.ListOptions{}, func(n model.Node) error {
		pools, err := f.basePools(ctx, n)
		if errors.Is(err, virtplane.ErrNotImplemented) {
			// No storage this daemon can reach: nothing it imported is there.
			return r.Log(ctx, fmt.Sprintf("node %s skipped: %v", n.Name, err))
		}
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		for _, key := range slices.Sorted(maps.Keys(pools)) {
			pool := pools[key]
			if done[key] {
				continue
			}
			done[key] = true
			if _, err := pool.Volume(ctx, name); errors.Is(err, virtplane.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			info, err := pool.Info(ctx)
			if err != nil {
				return err
			}
			if err := r.Step(ctx, "remove from node "+n.Name+" storage "+info.Name, tasks.NoUndo, func(ctx context.Context) error {
				return deleteVolume(ctx, pool, name)
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return r.Step(ctx, "remove the fetched file", tasks.NoUndo, func(context.Context) error { return f.uncache(in.ImageID) })
}

// imageFromVM copies a stopped VM's disk (flattened: qemu-img convert)
// into its node's image pool as the base of image in.ImageID, which new
// VMs on that node are then linked clones of. A failure removes the copy.
func (f *Flow) imageFromVM(ctx context.Context, r *tasks.Run) error {
	var in ImageInput
	if err := r.Input(&in); err != nil {
		return err
	}
	vm, _, err := f.stoppedVM(ctx, in.VMID)
	if err != nil {
		return err
	}
	src, ex, err := f.poolAndExec(ctx, vm.NodeID, vm.Storage)
	if err != nil {
		return err
	}
	images, err := f.nodePool(ctx, vm.NodeID)
	if err != nil {
		return err
	}
	var dv storage.Volume
	if err := r.Step(ctx, "copy the disk of vm "+vm.ID, tasks.UndoAction(undoRemoveBase, baseArgs{ImageID: in.ImageID, NodeID: vm.NodeID}), func(ctx context.Context) error {
		dv, err = storage.CopyVolume(ctx, ex, src, VolumeName(vm.ID), images, ImageVolume(in.ImageID))
		return err
	}); err != nil {
		return err
	}
	return r.SetResult(imagePatch{Nodes: []string{vm.NodeID}, Format: string(dv.Format), SizeMiB: dv.Capacity >> 20})
}

// basePools are the pools of node n that may hold image bases, by a key
// that is the same on every node for a shared storage: the one imports go
// to, and each storage of its cluster that a create copied a base into. A
// storage that cannot be opened now is skipped: its copies stay until it
// can (an operator sees them as image-ID volumes).
func (f *Flow) basePools(ctx context.Context, n model.Node) (map[string]storage.Pool, error) {
	b, err := f.open(ctx, n)
	if err != nil {
		return nil, err
	}
	images, err := f.diskPool(ctx, n, b)
	if err != nil {
		return nil, err
	}
	c, err := f.cluster(ctx, n.ClusterID)
	if err != nil {
		return nil, err
	}
	img := imageStorage(c)
	pools := map[string]storage.Pool{"node/" + n.ID + "/" + img: images}
	for _, ref := range c.Storages {
		key := "node/" + n.ID + "/" + ref.Name
		if f.IsShared(b, ref.Driver) {
			key = "cluster/" + c.ID + "/" + ref.Name
		}
		if ref.Name == img {
			continue
		}
		if p, err := f.storagePool(ctx, n, b, c, ref); err == nil {
			pools[key] = p
		}
	}
	return pools, nil
}

// finishImage records an image task's end on the image in the task's final
// transaction.
func (f *Flow) finishImage(ctx context.Context, tx store.Tx, t *store.Task) error {
	var in ImageInput
	if err := json.Unmarshal(t.Input, &in); err != nil || in.ImageID == "" {
		return nil
	}
	o, err := tx.GetObject(ctx, store.KindImage, in.ImageID)
	if err != nil {
		return nil // deleted meanwhile
	}
	var img model.Image
	if err := json.Unmarshal(o.Data, &img); err != nil {
		return err
	}
	ok := t.State == store.TaskSucceeded
	switch {
	case ok && t.Kind == KindImageDelete:
		bases, err := tx.ListObjects(ctx, store.KindImageBase, store.ListOptions{Parent: img.ID})
		if err != nil {
			return err
		}
		for _, b := range bases {
			if err := tx.DeleteObject(ctx, store.KindImageBase, b.ID, 0); err != nil && !errors.Is(err, virtplane.ErrNotFound) {
				return err
			}
		}
		return tx.DeleteObject(ctx, store.KindImage, img.ID, 0)
	case ok:
		var p imagePatch
		if err := json.Unmarshal(t.Result, &p); err != nil {
			return err
		}
		img.State, img.Nodes, img.Error = model.ImageReady, p.Nodes, ""
		img.Format, img.SizeMiB = p.Format, p.SizeMiB
	default:
		// A failed import undid its own bases: what the image had before
		// is still there. A failed delete may have removed some bases: the
		// image is failed until it is imported or deleted again.
		img.Error = t.Error
		img.State = model.ImageFailed
		if t.Kind == KindImageImport && len(img.Nodes) > 0 {
			img.State = model.ImageReady
		}
	}
	img.TaskID = t.ID
	if o.Data, err = json.Marshal(img); err != nil {
		return err
	}
	return tx.UpdateObject(ctx, &o)
}
