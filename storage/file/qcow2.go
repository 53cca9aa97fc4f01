package file

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/virtplane/virtplane"
)

// qcow2Header is the part of a qcow2 header the pool reads itself: reading
// 72 bytes is far cheaper than running qemu-img info for every stat and list.
type qcow2Header struct {
	Version     uint32
	Size        int64  // virtual size
	BackingFile string // as recorded: relative to the image's directory, or absolute
}

const qcow2Magic = 0x514649fb // "QFI\xfb"

// parseQcow2Header decodes the header at the start of r (which must also
// serve the backing file name at its recorded offset).
func parseQcow2Header(r io.ReaderAt) (qcow2Header, error) {
	var b [72]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return qcow2Header{}, fmt.Errorf("qcow2 header: %w: %v", virtplane.ErrUnavailable, err)
	}
	if binary.BigEndian.Uint32(b[0:4]) != qcow2Magic {
		return qcow2Header{}, fmt.Errorf("qcow2 header: bad magic: %w", virtplane.ErrUnavailable)
	}
	h := qcow2Header{Version: binary.BigEndian.Uint32(b[4:8])}
	if h.Version != 2 && h.Version != 3 {
		return qcow2Header{}, fmt.Errorf("qcow2 header: version %d: %w", h.Version, virtplane.ErrUnavailable)
	}
	size := binary.BigEndian.Uint64(b[24:32])
	if size > 1<<62 {
		return qcow2Header{}, fmt.Errorf("qcow2 header: size %d: %w", size, virtplane.ErrUnavailable)
	}
	h.Size = int64(size)
	off := binary.BigEndian.Uint64(b[8:16])
	n := binary.BigEndian.Uint32(b[16:20])
	if off != 0 && n > 0 {
		if n > 1023 || off > 1<<20 { // QEMU limits the name to 1023 bytes in the first cluster
			return qcow2Header{}, fmt.Errorf("qcow2 header: backing file at %d len %d: %w", off, n, virtplane.ErrUnavailable)
		}
		name := make([]byte, n)
		if _, err := r.ReadAt(name, int64(off)); err != nil {
			return qcow2Header{}, fmt.Errorf("qcow2 backing file name: %w: %v", virtplane.ErrUnavailable, err)
		}
		h.BackingFile = string(name)
	}
	return h, nil
}
