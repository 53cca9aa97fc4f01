package agent

import (
	"context"
	"io"
	"reflect"
	"slices"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// vmmCapabilities are the optional interfaces of package vmm by name: what
// an agent reports and its client answers vmm.As with.
func vmmCapabilities() map[string]reflect.Type {
	return map[string]reflect.Type{
		"Snapshotter":      reflect.TypeFor[vmm.Snapshotter](),
		"Resizer":          reflect.TypeFor[vmm.Resizer](),
		"DiskResizer":      reflect.TypeFor[vmm.DiskResizer](),
		"DiskAttacher":     reflect.TypeFor[vmm.DiskAttacher](),
		"DiskCopier":       reflect.TypeFor[vmm.DiskCopier](),
		"Limiter":          reflect.TypeFor[vmm.Limiter](),
		"Rescuer":          reflect.TypeFor[vmm.Rescuer](),
		"Consoler":         reflect.TypeFor[vmm.Consoler](),
		"Migrator":         reflect.TypeFor[vmm.Migrator](),
		"MigrationAborter": reflect.TypeFor[vmm.MigrationAborter](),
		"IncomingPreparer": reflect.TypeFor[vmm.IncomingPreparer](),
		"GuestAgent":       reflect.TypeFor[vmm.GuestAgent](),
		"EventWatcher":     reflect.TypeFor[vmm.EventWatcher](),
		"UsageReporter":    reflect.TypeFor[vmm.UsageReporter](),
		"ImageRooted":      reflect.TypeFor[vmm.ImageRooted](),
	}
}

// The requests of the vmm methods.
type (
	vmName     struct{ Name string }
	vmCreate   struct{ Spec vmm.Spec }
	vmShutdown struct {
		Name    string
		Timeout time.Duration
	}
	vmSnapshotCreate struct {
		Name string
		Spec vmm.SnapshotSpec
	}
	vmSnapshot struct{ Name, Snapshot string }
	vmResize   struct {
		Name      string
		Resources vmm.Resources
	}
	vmResizeDisk struct {
		Name, Target string
		Size         int64
	}
	vmAttachDisk struct {
		Name string
		Disk vmm.Disk
	}
	vmDetachDisk struct{ Name, Target string }
	vmCopyDisk   struct {
		Name, Target string
		Dest         vmm.DiskSource
	}
	vmLimits struct {
		Name   string
		Limits vmm.Limits
	}
	vmRescue struct {
		Name   string
		Rescue vmm.RescueSpec
	}
	vmPassword struct{ Name, Password string }
	vmMigrate  struct {
		Name   string
		Target vmm.MigrationTarget
	}
	vmGuestExec struct {
		Name string
		Argv []string
	}
	vmGuestPassword struct{ Name, User, Password string }
	noArgs          struct{}
)

// vmmAs returns the node's hypervisor driver as T, or ErrNotImplemented
// naming what it lacks.
func vmmAs[T any](s *Server, capability string) (T, error) {
	var zero T
	if s.node.VMM == nil {
		return zero, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: the node has no hypervisor driver")
	}
	d, ok := vmm.As[T](s.node.VMM)
	if !ok {
		return zero, virtplane.Errorf(virtplane.ErrNotImplemented, "agent: the node's hypervisor driver has no %s", capability)
	}
	return d, nil
}

// vmmCall is a vmm method of T answering Out.
func vmmCall[T, In, Out any](s *Server, capability string, f func(ctx context.Context, d T, in In) (Out, error)) unaryMethod {
	return unary(func(ctx context.Context, in In) (Out, error) {
		d, err := vmmAs[T](s, capability)
		if err != nil {
			var zero Out
			return zero, err
		}
		return f(ctx, d, in)
	})
}

// vmmDo is a vmm method of T that answers only an error.
func vmmDo[T, In any](s *Server, capability string, f func(ctx context.Context, d T, in In) error) unaryMethod {
	return vmmCall(s, capability, func(ctx context.Context, d T, in In) (done, error) { return done{}, f(ctx, d, in) })
}

func (s *Server) registerVMM() {
	const drv = "Driver"
	s.addUnary("vmm/Create", vmmCall(s, drv, func(ctx context.Context, d vmm.Driver, in vmCreate) (vmm.VM, error) { return d.Create(ctx, in.Spec) }))
	s.addUnary("vmm/Start", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Start(ctx, in.Name) }))
	s.addUnary("vmm/Shutdown", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmShutdown) error {
		return d.Shutdown(ctx, in.Name, in.Timeout)
	}))
	s.addUnary("vmm/Stop", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Stop(ctx, in.Name) }))
	s.addUnary("vmm/Reboot", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Reboot(ctx, in.Name) }))
	s.addUnary("vmm/Suspend", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Suspend(ctx, in.Name) }))
	s.addUnary("vmm/Resume", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Resume(ctx, in.Name) }))
	s.addUnary("vmm/Delete", vmmDo(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) error { return d.Delete(ctx, in.Name) }))
	s.addUnary("vmm/Get", vmmCall(s, drv, func(ctx context.Context, d vmm.Driver, in vmName) (vmm.VM, error) { return d.Get(ctx, in.Name) }))
	s.addUnary("vmm/List", vmmCall(s, drv, func(ctx context.Context, d vmm.Driver, _ noArgs) ([]vmm.VM, error) { return d.List(ctx) }))

	s.addUnary("vmm/CreateSnapshot", vmmDo(s, "Snapshotter", func(ctx context.Context, d vmm.Snapshotter, in vmSnapshotCreate) error {
		return d.CreateSnapshot(ctx, in.Name, in.Spec)
	}))
	s.addUnary("vmm/ListSnapshots", vmmCall(s, "Snapshotter", func(ctx context.Context, d vmm.Snapshotter, in vmName) ([]vmm.Snapshot, error) {
		return d.ListSnapshots(ctx, in.Name)
	}))
	s.addUnary("vmm/RevertSnapshot", vmmDo(s, "Snapshotter", func(ctx context.Context, d vmm.Snapshotter, in vmSnapshot) error {
		return d.RevertSnapshot(ctx, in.Name, in.Snapshot)
	}))
	s.addUnary("vmm/DeleteSnapshot", vmmDo(s, "Snapshotter", func(ctx context.Context, d vmm.Snapshotter, in vmSnapshot) error {
		return d.DeleteSnapshot(ctx, in.Name, in.Snapshot)
	}))
	s.addUnary("vmm/Resize", vmmDo(s, "Resizer", func(ctx context.Context, d vmm.Resizer, in vmResize) error {
		return d.Resize(ctx, in.Name, in.Resources)
	}))
	s.addUnary("vmm/ResizeDisk", vmmDo(s, "DiskResizer", func(ctx context.Context, d vmm.DiskResizer, in vmResizeDisk) error {
		return d.ResizeDisk(ctx, in.Name, in.Target, in.Size)
	}))
	s.addUnary("vmm/AttachDisk", vmmDo(s, "DiskAttacher", func(ctx context.Context, d vmm.DiskAttacher, in vmAttachDisk) error {
		return d.AttachDisk(ctx, in.Name, in.Disk)
	}))
	s.addUnary("vmm/DetachDisk", vmmDo(s, "DiskAttacher", func(ctx context.Context, d vmm.DiskAttacher, in vmDetachDisk) error {
		return d.DetachDisk(ctx, in.Name, in.Target)
	}))
	s.addUnary("vmm/SetLimits", vmmDo(s, "Limiter", func(ctx context.Context, d vmm.Limiter, in vmLimits) error {
		return d.SetLimits(ctx, in.Name, in.Limits)
	}))
	s.addUnary("vmm/EnterRescue", vmmDo(s, "Rescuer", func(ctx context.Context, d vmm.Rescuer, in vmRescue) error {
		return d.EnterRescue(ctx, in.Name, in.Rescue)
	}))
	s.addUnary("vmm/ExitRescue", vmmDo(s, "Rescuer", func(ctx context.Context, d vmm.Rescuer, in vmName) error { return d.ExitRescue(ctx, in.Name) }))
	s.addUnary("vmm/Console", vmmCall(s, "Consoler", func(ctx context.Context, d vmm.Consoler, in vmName) (vmm.Console, error) {
		return d.Console(ctx, in.Name)
	}))
	s.addUnary("vmm/SetConsolePassword", vmmDo(s, "Consoler", func(ctx context.Context, d vmm.Consoler, in vmPassword) error {
		return d.SetConsolePassword(ctx, in.Name, in.Password)
	}))
	s.addUnary("vmm/AbortMigration", vmmDo(s, "MigrationAborter", func(ctx context.Context, d vmm.MigrationAborter, in vmName) error {
		return d.AbortMigration(ctx, in.Name)
	}))
	s.addUnary("vmm/PrepareIncoming", vmmDo(s, "IncomingPreparer", func(ctx context.Context, d vmm.IncomingPreparer, in vmCreate) error {
		return d.PrepareIncoming(ctx, in.Spec)
	}))
	s.addUnary("vmm/DiscardIncoming", vmmDo(s, "IncomingPreparer", func(ctx context.Context, d vmm.IncomingPreparer, in vmName) error {
		return d.DiscardIncoming(ctx, in.Name)
	}))
	s.addUnary("vmm/GuestAddresses", vmmCall(s, "GuestAgent", func(ctx context.Context, d vmm.GuestAgent, in vmName) ([]vmm.GuestInterface, error) {
		return d.GuestAddresses(ctx, in.Name)
	}))
	s.addUnary("vmm/GuestExec", vmmCall(s, "GuestAgent", func(ctx context.Context, d vmm.GuestAgent, in vmGuestExec) (vmm.ExecResult, error) {
		return d.GuestExec(ctx, in.Name, in.Argv)
	}))
	s.addUnary("vmm/SetGuestPassword", vmmDo(s, "GuestAgent", func(ctx context.Context, d vmm.GuestAgent, in vmGuestPassword) error {
		return d.SetGuestPassword(ctx, in.Name, in.User, in.Password)
	}))
	s.addUnary("vmm/Usage", vmmCall(s, "UsageReporter", func(ctx context.Context, d vmm.UsageReporter, in vmName) (vmm.Usage, error) {
		return d.Usage(ctx, in.Name)
	}))

	// Migrate streams its progress reports, then its outcome.
	s.addStream("vmm/Migrate", func(ctx context.Context, body []byte, st *stream) error {
		var in vmMigrate
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		m, err := vmmAs[vmm.Migrator](s, "Migrator")
		if err != nil {
			return err
		}
		return m.Migrate(ctx, in.Name, in.Target, func(p vmm.MigrationProgress) { _ = st.Send(streamLine{Progress: &p}) })
	})
	// CopyDisk streams its progress, then its outcome.
	s.addStream("vmm/CopyDisk", func(ctx context.Context, body []byte, st *stream) error {
		var in vmCopyDisk
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		c, err := vmmAs[vmm.DiskCopier](s, "DiskCopier")
		if err != nil {
			return err
		}
		return c.CopyDisk(ctx, in.Name, in.Target, in.Dest, func(done, total int64) { _ = st.Send(streamLine{Copied: &copied{Done: done, Total: total}}) })
	})
	s.addUnary("vmm/AbortDiskCopy", vmmDo(s, "DiskCopier", func(ctx context.Context, d vmm.DiskCopier, in vmDetachDisk) error {
		return d.AbortDiskCopy(ctx, in.Name, in.Target)
	}))
	// Events streams until the caller goes or its deadline passes.
	s.addStream("vmm/Events", func(ctx context.Context, body []byte, st *stream) error {
		if err := decodeJSON(body, &noArgs{}); err != nil {
			return err
		}
		w, err := vmmAs[vmm.EventWatcher](s, "EventWatcher")
		if err != nil {
			return err
		}
		events, err := w.Events(ctx)
		if err != nil {
			return err
		}
		st.Start() // subscribed: the caller's Events returns now
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return nil
				}
				if err := st.Send(streamLine{Event: &ev}); err != nil {
					return nil // the caller went away
				}
			case <-ctx.Done():
				return nil
			}
		}
	})
}

// VMM returns the node's hypervisor driver. It implements every optional
// interface of package vmm and reports, to vmm.As, those the driver on the
// node has (as the handshake learned them).
func (c *Client) VMM() vmm.Driver { return &remoteVMM{c: c} }

// remoteVMM is the node's vmm.Driver through the agent.
type remoteVMM struct{ c *Client }

var (
	_ vmm.Driver             = (*remoteVMM)(nil)
	_ vmm.Snapshotter        = (*remoteVMM)(nil)
	_ vmm.Resizer            = (*remoteVMM)(nil)
	_ vmm.DiskResizer        = (*remoteVMM)(nil)
	_ vmm.DiskAttacher       = (*remoteVMM)(nil)
	_ vmm.DiskCopier         = (*remoteVMM)(nil)
	_ vmm.Limiter            = (*remoteVMM)(nil)
	_ vmm.Rescuer            = (*remoteVMM)(nil)
	_ vmm.Consoler           = (*remoteVMM)(nil)
	_ vmm.Migrator           = (*remoteVMM)(nil)
	_ vmm.MigrationAborter   = (*remoteVMM)(nil)
	_ vmm.IncomingPreparer   = (*remoteVMM)(nil)
	_ vmm.GuestAgent         = (*remoteVMM)(nil)
	_ vmm.EventWatcher       = (*remoteVMM)(nil)
	_ vmm.UsageReporter      = (*remoteVMM)(nil)
	_ vmm.ImageRooted        = (*remoteVMM)(nil)
	_ vmm.CapabilityReporter = (*remoteVMM)(nil)
)

// HasCapability implements vmm.CapabilityReporter: the optional interface
// t is there when the node's driver has it. Any other interface of the
// driver is there when the node has a driver at all.
func (v *remoteVMM) HasCapability(t reflect.Type) bool {
	caps := v.c.capabilities()
	if caps == nil || len(caps.VMM) == 0 {
		return false
	}
	name, optional := capabilityName(vmmCapabilities(), t)
	return !optional || slices.Contains(caps.VMM, name)
}

const (
	read  = true  // a call that changes nothing: sent again when it was lost on the way
	write = false // a call that may have acted: never sent twice
)

func (v *remoteVMM) Create(ctx context.Context, spec vmm.Spec) (vmm.VM, error) {
	var vm vmm.VM
	err := v.c.call(ctx, "vmm/Create", write, vmCreate{Spec: spec}, &vm)
	return vm, err
}

func (v *remoteVMM) Start(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Start", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Shutdown(ctx context.Context, name string, timeout time.Duration) error {
	return v.c.call(ctx, "vmm/Shutdown", write, vmShutdown{Name: name, Timeout: timeout}, nil)
}

func (v *remoteVMM) Stop(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Stop", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Reboot(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Reboot", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Suspend(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Suspend", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Resume(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Resume", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Delete(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/Delete", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Get(ctx context.Context, name string) (vmm.VM, error) {
	var vm vmm.VM
	err := v.c.call(ctx, "vmm/Get", read, vmName{Name: name}, &vm)
	return vm, err
}

func (v *remoteVMM) List(ctx context.Context) ([]vmm.VM, error) {
	var vms []vmm.VM
	err := v.c.call(ctx, "vmm/List", read, noArgs{}, &vms)
	return vms, err
}

func (v *remoteVMM) CreateSnapshot(ctx context.Context, name string, spec vmm.SnapshotSpec) error {
	return v.c.call(ctx, "vmm/CreateSnapshot", write, vmSnapshotCreate{Name: name, Spec: spec}, nil)
}

func (v *remoteVMM) ListSnapshots(ctx context.Context, name string) ([]vmm.Snapshot, error) {
	var out []vmm.Snapshot
	err := v.c.call(ctx, "vmm/ListSnapshots", read, vmName{Name: name}, &out)
	return out, err
}

func (v *remoteVMM) RevertSnapshot(ctx context.Context, name, snapshot string) error {
	return v.c.call(ctx, "vmm/RevertSnapshot", write, vmSnapshot{Name: name, Snapshot: snapshot}, nil)
}

func (v *remoteVMM) DeleteSnapshot(ctx context.Context, name, snapshot string) error {
	return v.c.call(ctx, "vmm/DeleteSnapshot", write, vmSnapshot{Name: name, Snapshot: snapshot}, nil)
}

func (v *remoteVMM) Resize(ctx context.Context, name string, r vmm.Resources) error {
	return v.c.call(ctx, "vmm/Resize", write, vmResize{Name: name, Resources: r}, nil)
}

func (v *remoteVMM) ResizeDisk(ctx context.Context, name, target string, size int64) error {
	return v.c.call(ctx, "vmm/ResizeDisk", write, vmResizeDisk{Name: name, Target: target, Size: size}, nil)
}

func (v *remoteVMM) AttachDisk(ctx context.Context, name string, disk vmm.Disk) error {
	return v.c.call(ctx, "vmm/AttachDisk", write, vmAttachDisk{Name: name, Disk: disk}, nil)
}

func (v *remoteVMM) DetachDisk(ctx context.Context, name, target string) error {
	return v.c.call(ctx, "vmm/DetachDisk", write, vmDetachDisk{Name: name, Target: target}, nil)
}

func (v *remoteVMM) SetLimits(ctx context.Context, name string, l vmm.Limits) error {
	return v.c.call(ctx, "vmm/SetLimits", write, vmLimits{Name: name, Limits: l}, nil)
}

func (v *remoteVMM) EnterRescue(ctx context.Context, name string, r vmm.RescueSpec) error {
	return v.c.call(ctx, "vmm/EnterRescue", write, vmRescue{Name: name, Rescue: r}, nil)
}

// PrepareIncoming implements vmm.IncomingPreparer.
func (v *remoteVMM) PrepareIncoming(ctx context.Context, spec vmm.Spec) error {
	return v.c.call(ctx, "vmm/PrepareIncoming", write, vmCreate{Spec: spec}, nil)
}

// DiscardIncoming implements vmm.IncomingPreparer.
func (v *remoteVMM) DiscardIncoming(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/DiscardIncoming", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) ExitRescue(ctx context.Context, name string) error {
	return v.c.call(ctx, "vmm/ExitRescue", write, vmName{Name: name}, nil)
}

func (v *remoteVMM) Console(ctx context.Context, name string) (vmm.Console, error) {
	var out vmm.Console
	err := v.c.call(ctx, "vmm/Console", read, vmName{Name: name}, &out)
	return out, err
}

func (v *remoteVMM) SetConsolePassword(ctx context.Context, name, password string) error {
	return v.c.call(ctx, "vmm/SetConsolePassword", write, vmPassword{Name: name, Password: password}, nil)
}

// Migrate returns once the machine runs on the target, passing the agent's
// progress reports to progress. When the connection drops during the
// migration, the outcome is unknown to this side: the error is then
// ErrUnavailable, and the caller aborts (AbortMigration) and looks where
// the machine is, as after its own crash.
func (v *remoteVMM) Migrate(ctx context.Context, name string, target vmm.MigrationTarget, progress func(vmm.MigrationProgress)) error {
	resp, sctx, cancel, err := v.c.openStream(ctx, "vmm/Migrate", true, vmMigrate{Name: name, Target: target})
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	return v.c.readStream(sctx, "vmm/Migrate", resp.Body, func(l streamLine) {
		if l.Progress != nil && progress != nil {
			progress(*l.Progress)
		}
	})
}

// CopyDisk returns once the machine runs on dest. When the connection
// drops during the copy, the outcome is unknown to this side
// (ErrUnavailable): the caller looks at the machine's disk, and abandons
// the copy (AbortDiskCopy) if it has not switched.
func (v *remoteVMM) CopyDisk(ctx context.Context, name, target string, dest vmm.DiskSource, progress func(done, total int64)) error {
	resp, sctx, cancel, err := v.c.openStream(ctx, "vmm/CopyDisk", true, vmCopyDisk{Name: name, Target: target, Dest: dest})
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	return v.c.readStream(sctx, "vmm/CopyDisk", resp.Body, func(l streamLine) {
		if l.Copied != nil && progress != nil {
			progress(l.Copied.Done, l.Copied.Total)
		}
	})
}

func (v *remoteVMM) AbortDiskCopy(ctx context.Context, name, target string) error {
	// Idempotent by its contract: safe to send again.
	return v.c.call(ctx, "vmm/AbortDiskCopy", read, vmDetachDisk{Name: name, Target: target}, nil)
}

func (v *remoteVMM) AbortMigration(ctx context.Context, name string) error {
	// Idempotent by its contract: safe to send again.
	return v.c.call(ctx, "vmm/AbortMigration", read, vmName{Name: name}, nil)
}

func (v *remoteVMM) GuestAddresses(ctx context.Context, name string) ([]vmm.GuestInterface, error) {
	var out []vmm.GuestInterface
	err := v.c.call(ctx, "vmm/GuestAddresses", read, vmName{Name: name}, &out)
	return out, err
}

func (v *remoteVMM) GuestExec(ctx context.Context, name string, argv []string) (vmm.ExecResult, error) {
	var out vmm.ExecResult
	err := v.c.call(ctx, "vmm/GuestExec", write, vmGuestExec{Name: name, Argv: argv}, &out)
	return out, err
}

func (v *remoteVMM) SetGuestPassword(ctx context.Context, name, user, password string) error {
	return v.c.call(ctx, "vmm/SetGuestPassword", write, vmGuestPassword{Name: name, User: user, Password: password}, nil)
}

func (v *remoteVMM) Usage(ctx context.Context, name string) (vmm.Usage, error) {
	var out vmm.Usage
	err := v.c.call(ctx, "vmm/Usage", read, vmName{Name: name}, &out)
	return out, err
}

// RootFromImage implements vmm.ImageRooted (a marker: the node's driver
// makes root file systems from images when HasCapability says so).
func (v *remoteVMM) RootFromImage() {}

// Events delivers the node's machine events until ctx ends. When the
// stream breaks (a dropped connection, an agent restart), the client
// subscribes again, retrying until ctx ends; events in the gap are lost,
// as a slow reader loses them.
func (v *remoteVMM) Events(ctx context.Context) (<-chan vmm.Event, error) {
	sub := func() (*eventStream, error) {
		resp, sctx, cancel, err := v.c.openStream(ctx, "vmm/Events", false, noArgs{})
		if err != nil {
			return nil, err
		}
		return &eventStream{resp: resp.Body, ctx: sctx, cancel: cancel}, nil
	}
	first, err := sub()
	if err != nil {
		return nil, err
	}
	out := make(chan vmm.Event, 256)
	go func() {
		defer close(out)
		cur := first
		for {
			err := v.c.readStream(cur.ctx, "vmm/Events", cur.resp, func(l streamLine) {
				if l.Event == nil {
					return
				}
				select {
				case out <- *l.Event:
				default: // a slow reader loses events rather than holding up the agent
				}
			})
			_ = cur.resp.Close()
			cur.cancel()
			if ctx.Err() != nil || v.c.life.Err() != nil {
				return
			}
			v.c.log.Info("agent: event stream ended, subscribing again", "node", v.c.cfg.Node, "err", err)
			for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
				select {
				case <-ctx.Done():
					return
				case <-v.c.life.Done():
					return
				case <-time.After(delay):
				}
				if cur, err = sub(); err == nil {
					break
				}
				v.c.log.Debug("agent: event subscription failed", "node", v.c.cfg.Node, "err", err)
			}
		}
	}()
	return out, nil
}

type eventStream struct {
	resp   io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}
