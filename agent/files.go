package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// An upload is a PUT to /v1/files/{name} with the file as its body and its
// size as the Content-Length. The file lands in Node.UploadDir, and only
// there: a name is one path element (storage.ValidateName: no '/', no
// leading dot, so no "..", no hidden files). It is written under a
// temporary name and renamed when complete, so a broken upload leaves
// nothing behind and an existing file of that name is replaced whole.

func (s *Server) prepareUploads() error {
	dir := s.node.UploadDir
	if dir == "" {
		return nil
	}
	if err := storage.ValidatePath("agent: upload dir", dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload dir %s: %v", dir, err)
	}
	return nil
}

func (s *Server) registerFiles() {
	s.addUnary("files/Remove", unary(func(ctx context.Context, in fileName) (done, error) {
		return done{}, s.removeFile(in.Name)
	}))
}

type (
	fileName     struct{ Name string }
	fileUploaded struct{ Path string }
)

// uploadPath returns where the upload name lands.
func (s *Server) uploadPath(name string) (string, error) {
	if s.node.UploadDir == "" {
		return "", virtplane.Errorf(virtplane.ErrNotImplemented, "agent: the node takes no uploads")
	}
	if err := storage.ValidateName("agent: file name", name); err != nil {
		return "", err
	}
	return filepath.Join(s.node.UploadDir, name), nil
}

func (s *Server) upload(ctx context.Context, w http.ResponseWriter, r *http.Request, name string) {
	p, err := s.writeUpload(ctx, r, name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, fileUploaded{Path: p})
}

func (s *Server) writeUpload(ctx context.Context, r *http.Request, name string) (string, error) {
	dst, err := s.uploadPath(name)
	if err != nil {
		return "", err
	}
	size := r.ContentLength
	if size < 0 {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: upload %s: the size (Content-Length) is required", name)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.node.UploadDir, &st); err == nil && uint64(size) > st.Bavail*uint64(st.Bsize) {
		return "", virtplane.Errorf(virtplane.ErrResourceExhausted, "agent: upload %s: %d bytes, %d free in %s", name, size, st.Bavail*uint64(st.Bsize), s.node.UploadDir)
	}
	tmp, err := os.CreateTemp(s.node.UploadDir, ".upload-*")
	if err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: %v", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	// The body ends with the connection or the deadline: ctx is checked by
	// the reads failing, and once more at the end.
	n, err := io.Copy(tmp, io.LimitReader(r.Body, size+1))
	switch {
	case err != nil:
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: after %d of %d bytes: %v", name, n, size, err)
	case n != size:
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: upload %s: %d bytes, announced %d", name, n, size)
	case ctx.Err() != nil:
		return "", virtplane.Errorf(virtplane.ErrTimeout, "agent: upload %s: %v", name, ctx.Err())
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: %v", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: sync: %v", name, err)
	}
	if err := tmp.Close(); err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: %v", name, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", virtplane.Errorf(virtplane.ErrUnavailable, "agent: upload %s: %v", name, err)
	}
	ok = true
	if d, err := os.Open(s.node.UploadDir); err == nil {
		_ = d.Sync() // the rename survives a crash
		_ = d.Close()
	}
	s.log.Info("agent: file uploaded", "path", dst, "bytes", size)
	return dst, nil
}

func (s *Server) removeFile(name string) error {
	p, err := s.uploadPath(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return virtplane.Errorf(virtplane.ErrNotFound, "agent: file %q", name)
		}
		return virtplane.Errorf(virtplane.ErrUnavailable, "agent: remove %s: %v", name, err)
	}
	return nil
}

// Upload puts size bytes of r into the file name in the node's upload
// directory, replacing a file of that name whole, and returns its path on
// the node (an image for a file pool, a cloud-init seed). r must hold
// exactly size bytes. A bad name is ErrInvalidArgument, a node without
// room ErrResourceExhausted, one that takes no uploads ErrNotImplemented;
// a failed upload leaves nothing on the node. Uploads are never sent twice.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64) (string, error) {
	method := "files/" + name
	if size < 0 {
		return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: upload %s: size %d", c.prefix(), name, size)
	}
	ctx, cancel := c.callContext(ctx, true)
	defer cancel()
	counted := &countingReader{r: io.LimitReader(r, size)}
	in := &stdinBody{r: counted, closed: make(chan struct{})}
	var body io.Reader = in
	if size == 0 {
		body = http.NoBody
		_ = in.Close()
	}
	req, err := c.request(ctx, http.MethodPut, "files/"+url.PathEscape(name), body)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	// The agent checks name and room before it reads: a refused upload
	// is refused before its body is sent.
	req.Header.Set("Expect", "100-continue")
	// The transport is done with r when it closes the body, which may be
	// after the answer: wait for that, so that the caller has r back.
	bodyDone := func() bool {
		select {
		case <-in.closed:
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer bodyDone()
	resp, err := c.roundTrip(ctx, method, req, false)
	if err != nil {
		if bodyDone() && counted.eof && counted.n < size {
			return "", virtplane.Errorf(virtplane.ErrInvalidArgument, "%s: upload %s: the reader ended after %d of %d bytes", c.prefix(), name, counted.n, size)
		}
		return "", err
	}
	defer resp.Body.Close()
	var out fileUploaded
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBytes))
	if err != nil {
		return "", c.lost(ctx, method, err)
	}
	if err := decodeJSON(b, &out); err != nil {
		return "", &callError{msg: fmt.Sprintf("%s: %s: answer: %v", c.prefix(), method, err), class: virtplane.ErrUnavailable, cause: err}
	}
	return out.Path, nil
}

// RemoveFile removes an uploaded file from the node; a file that is not
// there is ErrNotFound.
func (c *Client) RemoveFile(ctx context.Context, name string) error {
	return c.call(ctx, "files/Remove", write, fileName{Name: name}, nil)
}

// countingReader counts what it read and whether it reached the end.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}
