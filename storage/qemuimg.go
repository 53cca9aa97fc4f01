package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/virtplane/virtplane"
)

// ImageInfo is the part of `qemu-img info --output=json` the drivers use.
type ImageInfo struct {
	Filename            string          `json:"filename"`
	Format              Format          `json:"format"`
	VirtualSize         int64           `json:"virtual-size"`
	ActualSize          int64           `json:"actual-size"`
	BackingFilename     string          `json:"backing-filename"`
	FullBackingFilename string          `json:"full-backing-filename"`
	BackingFormat       Format          `json:"backing-filename-format"`
	Snapshots           []ImageSnapshot `json:"snapshots"`
}

// ImageSnapshot is an internal qcow2 snapshot as qemu-img reports it.
type ImageSnapshot struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	DateSec  int64  `json:"date-sec"`
	DateNsec int64  `json:"date-nsec"`
}

// ParseImageInfo decodes `qemu-img info --output=json` output for one image.
func ParseImageInfo(out []byte) (ImageInfo, error) {
	var info ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return ImageInfo{}, fmt.Errorf("qemu-img info output: %w: %v", virtplane.ErrUnavailable, err)
	}
	if info.VirtualSize < 0 || info.ActualSize < 0 {
		return ImageInfo{}, fmt.Errorf("qemu-img info output: negative size: %w", virtplane.ErrUnavailable)
	}
	return info, nil
}

// QemuImageInfo runs `qemu-img info` on a local file or block device.
// -U (force-share) lets it read an image a running VM holds open.
func QemuImageInfo(ctx context.Context, ex Executor, path string) (ImageInfo, error) {
	if err := ValidatePath("image path", path); err != nil {
		return ImageInfo{}, err
	}
	out, err := ex.Run(ctx, Command{Name: "qemu-img", Args: []string{"info", "-U", "--output=json", path}})
	if err != nil {
		return ImageInfo{}, err
	}
	return ParseImageInfo(out)
}

// QemuSpec renders an Attachment as a qemu-img filename and format. RBD
// becomes a json: pseudo-filename built with encoding/json, so no value of
// the attachment can break out of its field; paths and URLs are validated.
func QemuSpec(a Attachment) (spec string, format Format, err error) {
	format = Format(a.Format)
	if format != FormatQcow2 && format != FormatRaw {
		return "", "", virtplane.Errorf(virtplane.ErrInvalidArgument, "attachment format %q", a.Format)
	}
	switch a.Kind {
	case KindFile, KindBlock:
		if err := ValidatePath("attachment path", a.Path); err != nil {
			return "", "", err
		}
		return a.Path, format, nil
	case KindISCSI:
		if err := ValidateISCSIURL(a.URL); err != nil {
			return "", "", err
		}
		return a.URL, format, nil
	case KindRBD:
		if err := ValidateName("rbd pool", a.Pool); err != nil {
			return "", "", err
		}
		if err := ValidateName("rbd image", a.Image); err != nil {
			return "", "", err
		}
		opts := map[string]any{"driver": "rbd", "pool": a.Pool, "image": a.Image}
		var servers []map[string]string
		for _, m := range a.Monitors {
			host, port, err := net.SplitHostPort(m)
			if err != nil {
				return "", "", virtplane.Errorf(virtplane.ErrInvalidArgument, "rbd monitor %q: %v", m, err)
			}
			servers = append(servers, map[string]string{"host": host, "port": port})
		}
		if len(servers) > 0 {
			opts["server"] = servers
		}
		if a.User != "" {
			if err := ValidateName("rbd user", a.User); err != nil {
				return "", "", err
			}
			opts["user"] = a.User
		}
		// The format layer wraps the rbd protocol layer; qemu-img -f/-O
		// then name the same format.
		b, err := json.Marshal(map[string]any{"driver": string(format), "file": opts})
		if err != nil {
			return "", "", err
		}
		return "json:" + string(b), format, nil
	}
	return "", "", virtplane.Errorf(virtplane.ErrInvalidArgument, "attachment kind %q", a.Kind)
}

// ValidateISCSIURL checks an iscsi://host:port/iqn/lun URL.
func ValidateISCSIURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "iscsi" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "iscsi url %q", s)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "iqn.") && !strings.HasPrefix(parts[0], "eui.") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "iscsi url %q: path must be /iqn/lun", s)
	}
	if n, err := strconv.Atoi(parts[1]); err != nil || n < 0 || n > 16383 {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "iscsi url %q: lun %q", s, parts[1])
	}
	if strings.ContainsAny(s, " \t\n\x00") {
		return virtplane.Errorf(virtplane.ErrInvalidArgument, "iscsi url %q contains whitespace", s)
	}
	return nil
}

// ConvertCommand is the qemu-img command that copies src's data into the
// existing dst (-n: the destination pool created it), whatever either kind is.
func ConvertCommand(src, dst Attachment) (Command, error) {
	sspec, sfmt, err := QemuSpec(src)
	if err != nil {
		return Command{}, err
	}
	dspec, dfmt, err := QemuSpec(dst)
	if err != nil {
		return Command{}, err
	}
	return Command{Name: "qemu-img", Args: []string{"convert", "-n", "-f", string(sfmt), "-O", string(dfmt), sspec, dspec}}, nil
}
