package simnode

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
)

// Executor runs the storage commands of a simulated node: qemu-img as far
// as storage.Importer and storage.CopyVolume use it. `qemu-img info` reads
// the real image file (a qcow2 header, or a raw file's length), so an import
// checks what a real node would; `qemu-img convert` checks that its source
// can be read and copies nothing, since a simulated pool's volumes have no
// data. Anything else is ErrNotImplemented.
type Executor struct{}

var _ storage.Executor = Executor{}

// fakePrefix starts the attachment paths of simulated volumes (storage/fake).
const fakePrefix = "/fake/"

// Run implements storage.Executor.
func (Executor) Run(ctx context.Context, cmd storage.Command) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cmd.Name == "qemu-img" && len(cmd.Args) > 0 {
		args := cmd.Args[1:]
		switch cmd.Args[0] {
		case "info":
			if len(args) > 0 {
				return imageInfo(args[len(args)-1])
			}
		case "convert":
			// convert -n -f FMT -O FMT SRC DST
			if len(args) >= 2 {
				return nil, readable(args[len(args)-2])
			}
		}
	}
	return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "simulated node: command %q", cmd.String())
}

func readable(p string) error {
	if strings.HasPrefix(p, fakePrefix) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return &storage.ExitError{Command: storage.Command{Name: "qemu-img", Args: []string{"convert", p}}, Code: 1, Stderr: err.Error()}
	}
	return f.Close()
}

// qcow2Magic starts every qcow2 file ("QFI\xfb").
const qcow2Magic = 0x514649fb

// imageInfo answers `qemu-img info --output=json` for a file.
func imageInfo(p string) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, &storage.ExitError{Command: storage.Command{Name: "qemu-img", Args: []string{"info", p}}, Code: 1,
			Stderr: fmt.Sprintf("qemu-img: Could not open '%s': %v", p, err)}
	}
	f, err := os.Open(p)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	info := storage.ImageInfo{Filename: p, Format: storage.FormatRaw, VirtualSize: st.Size(), ActualSize: st.Size()}
	// The qcow2 header: magic, version, backing file offset and size, cluster
	// bits, virtual size (all big-endian).
	var h [32]byte
	if _, err := io.ReadFull(f, h[:]); err == nil && binary.BigEndian.Uint32(h[0:4]) == qcow2Magic {
		info.Format, info.VirtualSize = storage.FormatQcow2, int64(binary.BigEndian.Uint64(h[24:32]))
		if off, n := binary.BigEndian.Uint64(h[8:16]), binary.BigEndian.Uint32(h[16:20]); off != 0 && n > 0 && n < 4096 {
			name := make([]byte, n)
			if _, err := f.ReadAt(name, int64(off)); err != nil {
				return fail(err)
			}
			info.BackingFilename = string(name)
		}
	}
	return json.Marshal(info)
}
