package libvirt

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// applyTemplate puts a spec's template on a rendered domain: first its
// values (machine type, CPU, disk bus, NIC model, video), then its
// override, a partial <domain> document merged on top. The override is
// checked first (CheckOverride); disks it adds must lie under diskRoots.
func applyTemplate(t *vmm.Template, dom *libvirtxml.Domain, diskRoots []string) error {
	if t == nil {
		return nil
	}
	if t.Machine != "" {
		dom.OS.Type.Machine = t.Machine
	}
	switch t.CPUMode {
	case "":
	case "custom":
		dom.CPU = &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Model: &libvirtxml.DomainCPUModel{Value: t.CPUModel, Fallback: "allow"}}
	default:
		dom.CPU = &libvirtxml.DomainCPU{Mode: t.CPUMode}
	}
	for i := range dom.Devices.Disks {
		dd := &dom.Devices.Disks[i]
		if t.DiskBus != "" && dd.Device == "disk" && dd.Target != nil {
			dd.Target.Bus = t.DiskBus
		}
	}
	if t.DiskBus == "scsi" {
		dom.Devices.Controllers = append(dom.Devices.Controllers, libvirtxml.DomainController{Type: "scsi", Model: "virtio-scsi"})
	}
	for i := range dom.Devices.Interfaces {
		if t.NICModel != "" {
			dom.Devices.Interfaces[i].Model = &libvirtxml.DomainInterfaceModel{Type: t.NICModel}
		}
	}
	if t.Video != "" {
		dom.Devices.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: t.Video}}}
	}
	if strings.TrimSpace(t.Override) == "" {
		return nil
	}
	over, err := CheckOverride(t.Override, diskRoots)
	if err != nil {
		return err
	}
	mergeOverride(dom, over)
	return nil
}

// The elements of a domain that are the driver's: who the domain is, and
// what the driver keeps to run it (its metadata). An override of them is
// refused.
var driverOwned = map[string]bool{"/domain/name": true, "/domain/uuid": true, "/domain/metadata": true, "/domain/@type": true}

// CheckOverride parses a template override, a partial <domain> document,
// and refuses with ErrInvalidArgument naming the path of the first bad
// element: a document that is not one <domain>, an element or attribute
// that libvirt's schema (as libvirtxml knows it) does not have, a second
// <devices>, an element the driver owns (name, uuid, metadata), or a disk
// whose source is not a file or block device under one of diskRoots (the
// storage pools' directories).
func CheckOverride(x string, diskRoots []string) (*libvirtxml.Domain, error) {
	bad := func(path, format string, args ...any) error {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "template override: %s: %s", path, fmt.Sprintf(format, args...))
	}
	given, err := xmlPaths(x)
	if err != nil {
		return nil, bad("/", "not XML: %v", err)
	}
	if len(given) == 0 || given[0].path != "/domain" {
		return nil, bad("/", "want a <domain> document")
	}
	devices := 0
	for _, p := range given {
		if p.path == "/domain/devices" {
			devices++
			if devices > 1 {
				return nil, bad(p.indexed, "a second <devices>: put every device in one")
			}
		}
		if driverOwned[p.path] {
			return nil, bad(p.indexed, "set by the driver, not by templates")
		}
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return nil, bad("/domain", "%v", err)
	}
	back, err := dom.Marshal()
	if err != nil {
		return nil, bad("/domain", "%v", err)
	}
	known, err := xmlPaths(back)
	if err != nil {
		return nil, bad("/domain", "%v", err)
	}
	have := map[string]bool{}
	for _, p := range known {
		have[p.path] = true
	}
	for _, p := range given {
		if !have[p.path] {
			return nil, bad(p.indexed, "libvirt's domain schema has no such %s", map[bool]string{true: "attribute", false: "element"}[strings.Contains(p.path, "@")])
		}
	}
	if dom.Devices != nil {
		for i, d := range dom.Devices.Disks {
			at := fmt.Sprintf("/domain/devices[1]/disk[%d]/source", i+1)
			var src string
			switch {
			case d.Source != nil && d.Source.File != nil:
				src = d.Source.File.File
			case d.Source != nil && d.Source.Block != nil:
				src = d.Source.Block.Dev
			default:
				return nil, bad(at, "a disk of an override needs a file or block source")
			}
			if err := vmm.CheckPath("source", src); err != nil {
				return nil, bad(at, "%v", err)
			}
			inside := false
			for _, root := range diskRoots {
				if rel, err := filepath.Rel(root, src); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
					inside = true
				}
			}
			if !inside {
				return nil, bad(at, "%s is outside the storage pools %v", src, diskRoots)
			}
		}
	}
	return &dom, nil
}

type xmlPath struct {
	path    string // /domain/devices/video/model/@type
	indexed string // /domain/devices/video[1]/model/@type, for messages
}

// xmlPaths lists the element and attribute paths of a document in order.
func xmlPaths(x string) ([]xmlPath, error) {
	dec := xml.NewDecoder(bytes.NewReader([]byte(x)))
	var out []xmlPath
	type frame struct {
		path, indexed string
		counts        map[string]int
	}
	stack := []frame{{counts: map[string]int{}}}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 1 {
				return nil, fmt.Errorf("unclosed element")
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			top := &stack[len(stack)-1]
			if len(stack) == 1 && len(out) > 0 {
				return nil, fmt.Errorf("more than one root element")
			}
			top.counts[t.Name.Local]++
			f := frame{path: top.path + "/" + t.Name.Local, counts: map[string]int{}}
			f.indexed = fmt.Sprintf("%s/%s[%d]", top.indexed, t.Name.Local, top.counts[t.Name.Local])
			if len(stack) == 1 {
				f.indexed = "/" + t.Name.Local
			}
			out = append(out, xmlPath{f.path, f.indexed})
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				out = append(out, xmlPath{f.path + "/@" + a.Name.Local, f.indexed + "/@" + a.Name.Local})
			}
			stack = append(stack, f)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// mergeOverride puts what over sets on dom: a field set in over replaces
// dom's, structures merge field by field, and lists replace dom's, except
// disks and interfaces, which the override adds to the domain's own.
func mergeOverride(dom, over *libvirtxml.Domain) {
	if over.Devices != nil {
		if dom.Devices == nil {
			dom.Devices = &libvirtxml.DomainDeviceList{}
		}
		dom.Devices.Disks = append(dom.Devices.Disks, over.Devices.Disks...)
		dom.Devices.Interfaces = append(dom.Devices.Interfaces, over.Devices.Interfaces...)
		devs := *over.Devices
		devs.Disks, devs.Interfaces = nil, nil
		rest := *over
		rest.Devices = &devs
		over = &rest
	}
	merge(reflect.ValueOf(dom).Elem(), reflect.ValueOf(over).Elem())
}

func merge(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		sf, df := src.Field(i), dst.Field(i)
		if src.Type().Field(i).Name == "XMLName" || !df.CanSet() || sf.IsZero() {
			continue
		}
		switch {
		case sf.Kind() == reflect.Pointer && sf.Elem().Kind() == reflect.Struct && !df.IsNil():
			merge(df.Elem(), sf.Elem())
		case sf.Kind() == reflect.Struct:
			merge(df, sf)
		default:
			df.Set(sf)
		}
	}
}

// diskRootsOf returns the directories of a spec's file disks: the pools an
// override's disks may come from when the driver was given none.
func diskRootsOf(spec vmm.Spec) []string {
	var out []string
	for _, d := range spec.Disks {
		if d.Source.Kind == "file" {
			out = append(out, filepath.Dir(d.Source.Path))
		}
	}
	return out
}
