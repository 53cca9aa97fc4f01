package opener

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/file"
	"github.com/virtplane/virtplane/storage/lvm"
	"github.com/virtplane/virtplane/storage/san"
)

// Builtin returns the drivers of this module: file, lvm, san-lvm,
// san-iscsi and ceph (which opens only in a binary built with the ceph
// tag; without it its Open says so).
func Builtin() []Driver {
	return []Driver{File(), LVM(), SANLVM(), SANISCSI(), Ceph()}
}

// File is the file driver (storage/file): qcow2 files in a directory,
// made when missing. It takes no options.
func File() Driver {
	return Driver{
		Name: "file", Path: "directory", CheckPath: storage.ValidatePath,
		Open: func(_ context.Context, spec Spec, ex storage.Executor) (storage.Pool, error) {
			if err := os.MkdirAll(spec.Path, 0o755); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "storage %s: directory %s: %v", spec.Name, spec.Path, err)
			}
			return file.New(file.Config{Name: spec.Name, Dir: spec.Path, Tags: spec.Tags, Exec: ex})
		},
	}
}

// lvmEnv is the env option of the lvm drivers: lvm2's own variables only
// (LVM_SYSTEM_DIR=...), so that a storage setting cannot change what else
// the commands run with (PATH, LD_PRELOAD).
var lvmEnv = Option{Name: "env", Doc: "lvm2 environment, K=V,K=V of LVM_* variables", Check: func(v string) error {
	for _, kv := range splitList(v) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "LVM_") || strings.ContainsAny(kv, "\x00\n") {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%q: want LVM_NAME=value", kv)
		}
	}
	return nil
}}

var noActivation = Option{Name: "no_activation", Flag: true, Doc: "true on hosts without device-mapper: LVs are made inactive (metadata only)"}

// LVM is the lvm driver (storage/lvm): one LV per volume in the volume
// group Path; with option thin_pool, thin LVs of that thin pool (linked
// clones and snapshots).
func LVM() Driver {
	return Driver{
		Name: "lvm", Path: "volume group", CheckPath: storage.ValidateName,
		Options: []Option{
			{Name: "thin_pool", Doc: "a thin pool LV of the volume group", Check: func(v string) error { return storage.ValidateName("thin pool", v) }},
			lvmEnv, noActivation,
		},
		Open: func(_ context.Context, spec Spec, ex storage.Executor) (storage.Pool, error) {
			o := spec.Options
			cfg := lvm.Config{Name: spec.Name, VG: spec.Path, Tags: spec.Tags, Exec: ex, Env: splitList(o["env"]),
				ThinPool: o["thin_pool"], NoActivation: o["no_activation"] == "true"}
			if cfg.ThinPool != "" {
				return lvm.NewThin(cfg)
			}
			return lvm.New(cfg)
		},
	}
}

// SANLVM is the san-lvm driver (storage/san): LVM on a shared LUN. Path is
// the volume group, which is never initialised from here.
func SANLVM() Driver {
	return Driver{
		Name: "san-lvm", Shared: true, Path: "volume group", CheckPath: storage.ValidateName,
		Options: []Option{
			{Name: "device", Required: true, Doc: "the LUN's block device", Check: func(v string) error { return storage.ValidatePath("device", v) }},
			{Name: "shared", Flag: true, Doc: "true: the VG is shared through lvmlockd"},
			lvmEnv, noActivation,
		},
		Open: func(ctx context.Context, spec Spec, ex storage.Executor) (storage.Pool, error) {
			o := spec.Options
			return san.NewSharedLVM(ctx, san.SharedLVMConfig{Name: spec.Name, Device: o["device"], VG: spec.Path, Tags: spec.Tags,
				Exec: ex, Env: splitList(o["env"]), Shared: o["shared"] == "true", NoActivation: o["no_activation"] == "true"})
		},
	}
}

// SANISCSI is the san-iscsi driver (storage/san): each volume a whole LUN
// of the target Path, which QEMU reaches with its own initiator. The LUNs
// are made by Linux tgt (the only provisioner this module has) on the host
// the pool is opened on.
func SANISCSI() Driver {
	port := func(v string) error {
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
			return virtplane.Errorf(virtplane.ErrInvalidArgument, "%q: want a port number", v)
		}
		return nil
	}
	return Driver{
		Name: "san-iscsi", Shared: true, Path: "target IQN",
		CheckPath: func(field, p string) error {
			if err := storage.ValidateISCSIURL("iscsi://127.0.0.1:3260/" + p + "/0"); err != nil {
				return virtplane.Errorf(virtplane.ErrInvalidArgument, "%s %q: want iqn.YYYY-MM.domain:name", field, p)
			}
			return nil
		},
		Options: []Option{
			{Name: "portal", Required: true, Doc: "host:port of the target portal", Check: func(v string) error {
				host, p, err := net.SplitHostPort(v)
				if err != nil || host == "" || strings.ContainsAny(v, "/?#@ \t\n") {
					return virtplane.Errorf(virtplane.ErrInvalidArgument, "%q: want host:port", v)
				}
				return port(p)
			}},
			{Name: "tid", Required: true, Doc: "tgt target id", Check: func(v string) error {
				if n, err := strconv.Atoi(v); err != nil || n < 1 {
					return virtplane.Errorf(virtplane.ErrInvalidArgument, "%q: want a target id >= 1", v)
				}
				return nil
			}},
			{Name: "dir", Required: true, Doc: "directory of the LUNs' backing files on the tgt host", Check: func(v string) error { return storage.ValidatePath("dir", v) }},
			{Name: "control_port", Doc: "tgtd's management port (tgtadm -C); default 0", Check: port},
		},
		Open: func(_ context.Context, spec Spec, ex storage.Executor) (storage.Pool, error) {
			o := spec.Options
			tid, _ := strconv.Atoi(o["tid"])
			cp, _ := strconv.Atoi(o["control_port"])
			if err := os.MkdirAll(o["dir"], 0o755); err != nil {
				return nil, virtplane.Errorf(virtplane.ErrUnavailable, "storage %s: directory %s: %v", spec.Name, o["dir"], err)
			}
			return san.NewISCSI(san.ISCSIConfig{Name: spec.Name, Portal: o["portal"], Target: spec.Path, Tags: spec.Tags,
				Provisioner: &san.TGT{Exec: ex, ControlPort: cp, TID: tid, Dir: o["dir"]}})
		},
	}
}

func cephOptions() []Option {
	return []Option{
		{Name: "conf", Doc: "ceph.conf path", Check: func(v string) error { return storage.ValidatePath("conf", v) }},
		{Name: "user", Doc: "cephx user, without client.", Check: func(v string) error { return storage.ValidateName("user", v) }},
		{Name: "monitors", Doc: "host:port,host:port of the monitors, handed to QEMU", Check: func(v string) error {
			for _, m := range splitList(v) {
				if _, _, err := net.SplitHostPort(m); err != nil || strings.ContainsAny(m, "/?#@ \t\n;\\") {
					return virtplane.Errorf(virtplane.ErrInvalidArgument, "monitor %q: want host:port", m)
				}
			}
			return nil
		}},
		{Name: "secret", Doc: "UUID of the libvirt secret of the user's key"},
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
