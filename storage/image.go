package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
)

// Progress receives the bytes done and the total (0 when unknown) of a
// transfer. It is called from the transferring goroutine.
type Progress func(done, total int64)

// Image is an OS image to import: either a local file (Path) or a stream
// that Open returns (an HTTP body, an object store read). Key identifies the
// image content in the node's ImageCache ("debian-12-amd64-20260101").
type Image struct {
	Key  string
	Path string
	// Open returns the image data and its length (0 when unknown).
	Open func(ctx context.Context) (io.ReadCloser, int64, error)
}

// ImageCache keeps fetched images in a directory on the node, so that the
// second volume made from an image does not fetch it again.
type ImageCache struct {
	dir string
	mu  sync.Mutex // serialises fetches; a fetch of a missing image is the slow path anyway
}

// NewImageCache returns a cache in dir, creating it.
func NewImageCache(dir string) (*ImageCache, error) {
	if err := ValidatePath("image cache dir", dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("image cache %s: %w", dir, err)
	}
	return &ImageCache{dir: dir}, nil
}

// Path returns where the cache keeps the image with key.
func (c *ImageCache) Path(key string) string { return filepath.Join(c.dir, key+".img") }

// Fetch returns the local path of img, fetching it through img.Open only
// when the cache does not hold it. hit reports whether it was cached.
func (c *ImageCache) Fetch(ctx context.Context, img Image, progress Progress) (path string, hit bool, err error) {
	if err := ValidateName("image key", img.Key); err != nil {
		return "", false, err
	}
	if img.Open == nil {
		return "", false, virtplane.Errorf(virtplane.ErrInvalidArgument, "image %q has no Open", img.Key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	path = c.Path(img.Key)
	if _, err := os.Stat(path); err == nil {
		return path, true, nil
	}
	rc, total, err := img.Open(ctx)
	if err != nil {
		return "", false, fmt.Errorf("image %q: %w", img.Key, err)
	}
	defer rc.Close()
	// Written under a temporary name and renamed, so an interrupted fetch
	// never leaves a truncated image that a later Fetch would take as cached.
	tmp, err := os.CreateTemp(c.dir, ".fetch-*")
	if err != nil {
		return "", false, err
	}
	r := revert.New()
	defer r.Fail()
	r.Add(func() { _ = os.Remove(tmp.Name()) })
	w := &progressWriter{w: tmp, total: total, progress: progress, ctx: ctx}
	_, err = io.Copy(w, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("image %q: fetching: %w", img.Key, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", false, err
	}
	r.Success()
	return path, false, nil
}

type progressWriter struct {
	ctx      context.Context
	w        io.Writer
	done     int64
	total    int64
	progress Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.progress != nil {
		p.progress(p.done, p.total)
	}
	return n, err
}

// Importer puts OS images into pools: it fetches through the node's cache,
// creates a volume of the image's virtual size and converts the image into
// it with qemu-img, whatever the pool's backend.
type Importer struct {
	Exec  Executor    // runs qemu-img; nil means LocalExecutor{} (it panicked before)
	Cache *ImageCache // nil: images must be local files (Image.Path)
}

// Import makes volume name in pool from img. A failure at any step removes
// the volume again.
func (im Importer) Import(ctx context.Context, pool Pool, name string, img Image, progress Progress) (Volume, error) {
	if err := ValidateName("volume name", name); err != nil {
		return Volume{}, err
	}
	if im.Exec == nil {
		im.Exec = LocalExecutor{}
	}
	path := img.Path
	if path == "" {
		if im.Cache == nil {
			return Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "image %q: a stream needs an image cache", img.Key)
		}
		var err error
		if path, _, err = im.Cache.Fetch(ctx, img, progress); err != nil {
			return Volume{}, err
		}
	}
	info, err := QemuImageInfo(ctx, im.Exec, path)
	if err != nil {
		return Volume{}, err
	}
	if info.Format != FormatQcow2 && info.Format != FormatRaw {
		return Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "image %q: format %q", path, info.Format)
	}
	if info.BackingFilename != "" {
		// A backing file could point anywhere on the node; refuse it.
		return Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "image %q has a backing file", path)
	}
	pinfo, err := pool.Info(ctx)
	if err != nil {
		return Volume{}, err
	}
	if len(pinfo.Formats) == 0 {
		return Volume{}, virtplane.Errorf(virtplane.ErrInvalidArgument, "pool %q lists no formats", pinfo.Name)
	}
	r := revert.New()
	defer r.Fail()
	undoCtx := context.WithoutCancel(ctx)
	v, err := pool.Create(ctx, VolumeSpec{Name: name, Size: info.VirtualSize, Format: pinfo.Formats[0]})
	if err != nil {
		return Volume{}, err
	}
	r.Add(func() { _ = pool.Delete(undoCtx, name) })
	if a, ok := As[Activator](pool); ok {
		if err := a.Activate(ctx, name); err != nil {
			return Volume{}, err
		}
		defer func() { _ = a.Deactivate(undoCtx, name) }()
	}
	cmd, err := ConvertCommand(Attachment{Kind: KindFile, Path: path, Format: string(info.Format)}, v.Attachment)
	if err != nil {
		return Volume{}, err
	}
	if _, err := im.Exec.Run(ctx, cmd); err != nil {
		return Volume{}, fmt.Errorf("import %q into %q: %w", path, name, err)
	}
	if progress != nil {
		progress(info.VirtualSize, info.VirtualSize)
	}
	v, err = pool.Volume(ctx, name)
	if err != nil {
		return Volume{}, err
	}
	r.Success()
	return v, nil
}

// Base returns the pool's base volume of img, named after img.Key, importing
// it only when the pool does not hold it yet: the second VM made from an
// image neither fetches nor converts it again, it is a linked clone of the
// same base. imported reports whether this call made it.
func (im Importer) Base(ctx context.Context, pool Pool, img Image, progress Progress) (v Volume, imported bool, err error) {
	if err := ValidateName("image key", img.Key); err != nil {
		return Volume{}, false, err
	}
	v, err = pool.Volume(ctx, img.Key)
	if err == nil {
		return v, false, nil
	}
	if !errors.Is(err, virtplane.ErrNotFound) {
		return Volume{}, false, err
	}
	v, err = im.Import(ctx, pool, img.Key, img, progress)
	return v, err == nil, err
}
