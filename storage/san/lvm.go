package san

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/internal/revert"
	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/lvm"
)

// SharedLVMConfig describes LVM on a LUN every node of a cluster sees (as
// VMmanager and Proxmox do it): one VG on the LUN, one LV per volume, each
// LV active on one node at a time.
type SharedLVMConfig struct {
	Name   string            // pool name
	Device string            // the LUN's block device on this node (/dev/mapper/mpatha, /dev/sdb)
	VG     string            // volume group on it
	Tags   map[string]string // pool labels
	Exec   storage.Executor  // runs lvm2; nil = storage.LocalExecutor{}
	Env    []string          // added to lvm2 commands
	// Init makes the PV and VG when the VG does not exist yet; without it a
	// missing VG is ErrNotFound (only one node should initialise a LUN).
	Init bool
	// Shared creates the VG with --shared for lvmlockd, the lock manager
	// that keeps two nodes from changing the VG metadata at once.
	Shared bool
	// NoActivation: hosts without device-mapper (metadata only, tests).
	NoActivation bool
}

// NewSharedLVM opens (or, with Init, creates) the VG on the LUN and returns
// an lvm pool on it that activates LVs exclusively (-aey).
func NewSharedLVM(ctx context.Context, cfg SharedLVMConfig) (*lvm.Pool, error) {
	if err := storage.ValidatePath("lun device", cfg.Device); err != nil {
		return nil, err
	}
	if err := storage.ValidateName("volume group", cfg.VG); err != nil {
		return nil, err
	}
	ex := cfg.Exec
	if ex == nil {
		ex = storage.LocalExecutor{}
	}
	run := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return ex.Run(ctx, storage.Command{Name: name, Args: args, Env: cfg.Env})
	}
	out, err := run(ctx, "pvs", "--reportformat", "json", "-o", "pv_name,vg_name", cfg.Device)
	pvVG, known := "", err == nil
	if known {
		if pvVG, err = parsePVVG(out); err != nil {
			return nil, err
		}
	}
	switch {
	case known && pvVG == cfg.VG:
		// The LUN already carries the VG: adopt it.
	case known && pvVG != "":
		return nil, virtplane.Errorf(virtplane.ErrConflict, "lun %q belongs to volume group %q, not %q", cfg.Device, pvVG, cfg.VG)
	case !cfg.Init:
		return nil, virtplane.Errorf(virtplane.ErrNotFound, "volume group %q on lun %q (set Init to create it)", cfg.VG, cfg.Device)
	default:
		r := revert.New()
		defer r.Fail()
		undoCtx := context.WithoutCancel(ctx)
		if !known {
			if _, err := run(ctx, "pvcreate", "-y", cfg.Device); err != nil {
				return nil, fmt.Errorf("pvcreate %s: %w", cfg.Device, err)
			}
			r.Add(func() { _, _ = run(undoCtx, "pvremove", "-y", cfg.Device) })
		}
		args := []string{"-y"}
		if cfg.Shared {
			args = append(args, "--shared")
		}
		if _, err := run(ctx, "vgcreate", append(args, cfg.VG, cfg.Device)...); err != nil {
			return nil, fmt.Errorf("vgcreate %s: %w", cfg.VG, err)
		}
		r.Add(func() { _, _ = run(undoCtx, "vgremove", "-y", cfg.VG) })
		if cfg.Shared {
			if _, err := run(ctx, "vgchange", "--lockstart", cfg.VG); err != nil {
				return nil, fmt.Errorf("vgchange --lockstart %s: %w", cfg.VG, err)
			}
		}
		r.Success()
	}
	return lvm.New(lvm.Config{Name: cfg.Name, VG: cfg.VG, Tags: cfg.Tags, Exec: ex, Env: cfg.Env,
		NoActivation: cfg.NoActivation, ExclusiveActivation: true})
}

// parsePVVG returns the VG of the single PV in a pvs JSON report ("" when none).
func parsePVVG(out []byte) (string, error) {
	var rep struct {
		Report []struct {
			PV []map[string]string `json:"pv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return "", fmt.Errorf("pvs report: %w: %v", virtplane.ErrUnavailable, err)
	}
	if len(rep.Report) != 1 || len(rep.Report[0].PV) != 1 {
		return "", fmt.Errorf("pvs report: want one PV: %w", virtplane.ErrUnavailable)
	}
	return rep.Report[0].PV[0]["vg_name"], nil
}
