package cloudinit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// Seed is the NoCloud data of one guest.
type Seed struct {
	UserData      string
	MetaData      string
	NetworkConfig string // omitted from the image when empty
}

// Label is the volume label NoCloud looks for.
const Label = "cidata"

const sector = 2048

type isoFile struct {
	joliet, primary string
	data            []byte
	extent          uint32
}

// files returns the files of the seed sorted by name (both name sets sort
// the same way).
func (s Seed) files() []*isoFile {
	fs := []*isoFile{
		{joliet: "meta-data", primary: "METADATA.;1", data: []byte(s.MetaData)},
	}
	if s.NetworkConfig != "" {
		fs = append(fs, &isoFile{joliet: "network-config", primary: "NETWORKC.;1", data: []byte(s.NetworkConfig)})
	}
	fs = append(fs, &isoFile{joliet: "user-data", primary: "USERDATA.;1", data: []byte(s.UserData)})
	return fs
}

// WriteISO writes the seed as an ISO 9660 image with Joliet names. The
// image is deterministic: timestamps are fixed, so equal seeds give equal
// bytes.
func WriteISO(w io.Writer, s Seed) error {
	img, err := ISO(s)
	if err != nil {
		return err
	}
	_, err = w.Write(img)
	return err
}

// ISO returns the seed image.
func ISO(s Seed) ([]byte, error) {
	files := s.files()
	const (
		pvdSector    = 16
		svdSector    = 17
		termSector   = 18
		lPathPrimary = 19
		mPathPrimary = 20
		lPathJoliet  = 21
		mPathJoliet  = 22
		rootPrimary  = 23
		rootJoliet   = 24
		firstData    = 25
	)
	next := uint32(firstData)
	for _, f := range files {
		if len(f.data) > 1<<30 {
			return nil, fmt.Errorf("cloudinit: %s is %d bytes, too large", f.joliet, len(f.data))
		}
		if len(f.data) == 0 {
			continue // empty files point at extent 0, as mkisofs does
		}
		f.extent = next
		next += uint32((len(f.data) + sector - 1) / sector)
	}
	total := next
	img := make([]byte, int(total)*sector)
	put := func(sec uint32, b []byte) { copy(img[int(sec)*sector:], b) }

	when := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	primaryDir := dirBlock(rootPrimary, files, func(f *isoFile) []byte { return []byte(f.primary) }, when)
	jolietDir := dirBlock(rootJoliet, files, func(f *isoFile) []byte { return ucs2(f.joliet + ";1") }, when)
	if len(primaryDir) > sector || len(jolietDir) > sector {
		return nil, errors.New("cloudinit: directory does not fit one sector")
	}
	put(rootPrimary, primaryDir)
	put(rootJoliet, jolietDir)
	for _, f := range files {
		if len(f.data) > 0 {
			put(f.extent, f.data)
		}
	}
	put(lPathPrimary, pathTable(rootPrimary, binary.LittleEndian))
	put(mPathPrimary, pathTable(rootPrimary, binary.BigEndian))
	put(lPathJoliet, pathTable(rootJoliet, binary.LittleEndian))
	put(mPathJoliet, pathTable(rootJoliet, binary.BigEndian))
	put(pvdSector, volumeDescriptor(1, total, lPathPrimary, mPathPrimary, dirRecord(rootPrimary, sector, true, []byte{0}, when), when))
	put(svdSector, volumeDescriptor(2, total, lPathJoliet, mPathJoliet, dirRecord(rootJoliet, sector, true, []byte{0}, when), when))
	term := make([]byte, 7)
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1
	put(termSector, term)
	return img, nil
}

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func dirRecord(extent, size uint32, dir bool, id []byte, when time.Time) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	both32(r[2:], extent)
	both32(r[10:], size)
	r[18] = byte(when.Year() - 1900)
	r[19], r[20], r[21], r[22], r[23] = byte(when.Month()), byte(when.Day()), byte(when.Hour()), byte(when.Minute()), byte(when.Second())
	if dir {
		r[25] = 2
	}
	both16(r[28:], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	return r
}

func dirBlock(self uint32, files []*isoFile, id func(*isoFile) []byte, when time.Time) []byte {
	var b bytes.Buffer
	b.Write(dirRecord(self, sector, true, []byte{0}, when))
	b.Write(dirRecord(self, sector, true, []byte{1}, when))
	for _, f := range files {
		b.Write(dirRecord(f.extent, uint32(len(f.data)), false, id(f), when))
	}
	return b.Bytes()
}

func pathTable(root uint32, order binary.ByteOrder) []byte {
	t := make([]byte, 10)
	t[0] = 1
	order.PutUint32(t[2:], root)
	order.PutUint16(t[6:], 1)
	return t
}

func padded(s string, n int) []byte {
	b := bytes.Repeat([]byte{' '}, n)
	copy(b, s)
	return b
}

func jolietPadded(s string, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		b[i], b[i+1] = 0, ' '
	}
	copy(b, ucs2(s))
	return b
}

func decDate(t time.Time) []byte {
	b := []byte(t.Format("20060102150405") + "00")
	return append(b, 0)
}

func volumeDescriptor(kind byte, total, lPath, mPath uint32, root []byte, when time.Time) []byte {
	v := make([]byte, sector)
	v[0] = kind
	copy(v[1:], "CD001")
	v[6] = 1
	text := padded
	if kind == 2 {
		text = jolietPadded
		copy(v[88:], "%/E") // Joliet, UCS-2 level 3
	}
	copy(v[8:40], text("LINUX", 32))
	label := Label
	if kind == 1 {
		label = strings.ToUpper(Label)
	}
	copy(v[40:72], text(label, 32))
	both32(v[80:], total)
	both16(v[120:], 1)
	both16(v[124:], 1)
	both16(v[128:], sector)
	both32(v[132:], 10)
	binary.LittleEndian.PutUint32(v[140:], lPath)
	binary.BigEndian.PutUint32(v[148:], mPath)
	copy(v[156:190], root)
	for _, f := range [][2]int{{190, 128}, {318, 128}, {446, 128}, {574, 128}, {702, 37}, {739, 37}, {776, 37}} {
		copy(v[f[0]:f[0]+f[1]], text("", f[1]))
	}
	copy(v[574:702], text("VIRTPLANE", 128))
	d := decDate(when)
	copy(v[813:], d)
	copy(v[830:], d)
	copy(v[847:], append(bytes.Repeat([]byte{'0'}, 16), 0))
	copy(v[864:], append(bytes.Repeat([]byte{'0'}, 16), 0))
	v[881] = 1
	return v
}

// Volume is what ReadISO found in an image.
type Volume struct {
	Label string            // from the Joliet descriptor when present
	Files map[string][]byte // root directory files by name, version suffix removed
}

// ReadISO reads the root directory of an ISO 9660 image, preferring the
// Joliet tree. It reads only what it needs and rejects malformed images
// with an error rather than a panic; files above maxFile bytes are refused.
func ReadISO(r io.ReaderAt, size int64) (Volume, error) {
	const maxFile = 16 << 20
	readAt := func(off int64, n int) ([]byte, error) {
		if off < 0 || n < 0 || off+int64(n) > size {
			return nil, fmt.Errorf("cloudinit: read of %d bytes at %d beyond image of %d bytes", n, off, size)
		}
		b := make([]byte, n)
		if n == 0 {
			return b, nil
		}
		_, err := r.ReadAt(b, off)
		return b, err
	}
	var primary, joliet []byte
	for sec := int64(16); sec < 64; sec++ {
		vd, err := readAt(sec*sector, sector)
		if err != nil {
			return Volume{}, err
		}
		if string(vd[1:6]) != "CD001" {
			return Volume{}, errors.New("cloudinit: not an ISO 9660 image")
		}
		if vd[0] == 255 {
			break
		}
		switch {
		case vd[0] == 1 && primary == nil:
			primary = vd
		case vd[0] == 2 && joliet == nil && vd[88] == '%' && vd[89] == '/' && (vd[90] == '@' || vd[90] == 'C' || vd[90] == 'E'):
			joliet = vd
		}
	}
	vd, isJoliet := joliet, true
	if vd == nil {
		vd, isJoliet = primary, false
	}
	if vd == nil {
		return Volume{}, errors.New("cloudinit: no volume descriptor")
	}
	name := func(b []byte) string {
		if !isJoliet {
			return string(b)
		}
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u))
	}
	vol := Volume{Label: strings.TrimRight(name(vd[40:72]), " \x00"), Files: map[string][]byte{}}
	root := vd[156:190]
	extent := binary.LittleEndian.Uint32(root[2:])
	length := binary.LittleEndian.Uint32(root[10:])
	if length > 1<<20 {
		return Volume{}, fmt.Errorf("cloudinit: root directory of %d bytes", length)
	}
	dir, err := readAt(int64(extent)*sector, int(length))
	if err != nil {
		return Volume{}, err
	}
	for i := 0; i < len(dir); {
		n := int(dir[i])
		if n == 0 { // records do not cross sectors: skip to the next one
			i = (i/sector + 1) * sector
			continue
		}
		if n < 34 || i+n > len(dir) || 33+int(dir[i+32]) > n {
			return Volume{}, fmt.Errorf("cloudinit: bad directory record at %d", i)
		}
		rec := dir[i : i+n]
		i += n
		id := rec[33 : 33+int(rec[32])]
		if rec[25]&2 != 0 || (len(id) == 1 && id[0] <= 1) {
			continue
		}
		fname := name(id)
		fname, _, _ = strings.Cut(fname, ";")
		fname = strings.TrimSuffix(fname, ".")
		fext := binary.LittleEndian.Uint32(rec[2:])
		flen := binary.LittleEndian.Uint32(rec[10:])
		if flen > maxFile {
			return Volume{}, fmt.Errorf("cloudinit: file %q of %d bytes", fname, flen)
		}
		data, err := readAt(int64(fext)*sector, int(flen))
		if err != nil {
			return Volume{}, err
		}
		vol.Files[fname] = data
	}
	return vol, nil
}

// Names returns the file names of the volume, sorted.
func (v Volume) Names() []string {
	out := make([]string, 0, len(v.Files))
	for n := range v.Files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
