package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

// Config holds what the driver needs to reach libvirtd.
type Config struct {
	// Socket is libvirtd's read-write unix socket; default
	// /run/libvirt/libvirt-sock.
	Socket string
	// Dial, when set, opens the connection to libvirtd instead of dialling
	// Socket here: a tunnel to a libvirtd on another machine (an SSH
	// connection's direct-streamlocal channel to its socket). It is called
	// for every (re)connection, bounded by ctx.
	Dial func(ctx context.Context) (net.Conn, error)
	// URI is the driver URI opened over the socket; default qemu:///system.
	URI string
	// StateDir holds the files the driver creates per machine (cloud-init
	// seed, serial console log); default /var/lib/virtplane/vmm. libvirtd
	// (and QEMU) must be able to read and write it.
	StateDir string
}

// Option configures a Driver.
type Option func(*Driver)

// WithValues sets the values of the built-in domain template.
func WithValues(v Values) Option { return func(d *Driver) { d.values = v } }

// WithDomainEditor installs a function that edits every rendered domain
// before it is defined.
func WithDomainEditor(e DomainEditor) Option { return func(d *Driver) { d.editor = e } }

// WithDiskRoots sets the directories (the storage pools') that disks added
// by a template override may come from; without it, the directories of
// the spec's own disks.
func WithDiskRoots(dirs ...string) Option { return func(d *Driver) { d.diskRoots = dirs } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// WithConnections sets how many connections to libvirtd the driver spreads
// its calls over (default 4). libvirtd serves at most max_client_requests
// calls of one connection at a time (5 unless configured), and a domain
// start under load takes seconds: over one connection, twenty creates on a
// node would wait for each other's starts.
func WithConnections(n int) Option {
	return func(d *Driver) {
		if n > 0 {
			d.lvs = make([]*golibvirt.Libvirt, n)
		}
	}
}

// WithCallTimeout bounds libvirt calls made with a context that has no
// deadline; default 2 minutes.
func WithCallTimeout(t time.Duration) Option { return func(d *Driver) { d.callTimeout = t } }

// Driver is a vmm.Driver for one libvirtd. It holds a few connections
// (WithConnections), each opened on first use and re-opened after libvirtd
// restarts, and spreads its calls over them.
type Driver struct {
	cfg         Config
	values      Values
	editor      DomainEditor
	diskRoots   []string
	log         *slog.Logger
	callTimeout time.Duration

	mu   sync.Mutex
	lvs  []*golibvirt.Libvirt // the connections, nil until opened
	next int                  // the connection the next call takes

	probe    BootProbe
	detectMu sync.Mutex
	detected *Detection // the domain type chosen on first use (domaintype.go)
	// kvmCaps and kvmProbeAs replace, in tests, libvirt's answer for kvm
	// and the type the kvm probe boots as (a host without kvm can then
	// walk the kvm branch); nil and "" in use.
	kvmCaps    func(ctx context.Context) (string, error)
	kvmProbeAs string
}

var (
	_ vmm.Driver           = (*Driver)(nil)
	_ vmm.Snapshotter      = (*Driver)(nil)
	_ vmm.Resizer          = (*Driver)(nil)
	_ vmm.DiskResizer      = (*Driver)(nil)
	_ vmm.DiskAttacher     = (*Driver)(nil)
	_ vmm.DiskCopier       = (*Driver)(nil)
	_ vmm.Limiter          = (*Driver)(nil)
	_ vmm.Rescuer          = (*Driver)(nil)
	_ vmm.Consoler         = (*Driver)(nil)
	_ vmm.Migrator         = (*Driver)(nil)
	_ vmm.MigrationAborter = (*Driver)(nil)
	_ vmm.GuestAgent       = (*Driver)(nil)
	_ vmm.EventWatcher     = (*Driver)(nil)
	_ vmm.UsageReporter    = (*Driver)(nil)
)

// New returns a driver; it connects on first use.
func New(cfg Config, opts ...Option) (*Driver, error) {
	if cfg.Socket == "" {
		cfg.Socket = "/run/libvirt/libvirt-sock"
	}
	if cfg.URI == "" {
		cfg.URI = string(golibvirt.QEMUSystem)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/var/lib/virtplane/vmm"
	}
	if err := vmm.CheckPath("state_dir", cfg.StateDir); err != nil {
		return nil, err
	}
	d := &Driver{cfg: cfg, log: slog.New(slog.DiscardHandler), callTimeout: 2 * time.Minute, lvs: make([]*golibvirt.Libvirt, 4)}
	for _, o := range opts {
		o(d)
	}
	switch d.values.DomainType {
	case "", DomainKVM, DomainQEMU:
	default:
		return nil, virtplane.Errorf(virtplane.ErrInvalidArgument, "domain_type %q: want kvm, qemu or empty (detect)", d.values.DomainType)
	}
	return d, nil
}

// Close drops the connection.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for i, lv := range d.lvs {
		d.lvs[i] = nil
		if lv != nil && lv.IsConnected() {
			errs = append(errs, lv.Disconnect())
		}
	}
	return errors.Join(errs...)
}

// ConsoleLog returns the path of the serial console log of a machine.
func (d *Driver) ConsoleLog(name string) string {
	return filepath.Join(d.cfg.StateDir, name, "console.log")
}

func (d *Driver) vmDir(name string) string { return filepath.Join(d.cfg.StateDir, name) }

// conn returns a live connection, dialling a new one when libvirtd went
// away. Dialling retries until ctx ends, because a restarting libvirtd takes
// a moment to open its socket.
func (d *Driver) conn(ctx context.Context) (*golibvirt.Libvirt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	slot := d.next % len(d.lvs)
	d.next++
	if lv := d.lvs[slot]; lv != nil && lv.IsConnected() {
		return lv, nil
	}
	var last error
	for attempt := 0; ; attempt++ {
		var dialer socket.Dialer = dialers.NewLocal(dialers.WithSocket(d.cfg.Socket), dialers.WithLocalTimeout(5*time.Second))
		if d.cfg.Dial != nil {
			dialer = ctxDialer{ctx: ctx, dial: d.cfg.Dial}
		}
		lv := golibvirt.NewWithDialer(dialer)
		done := make(chan error, 1)
		go func() { done <- lv.ConnectToURI(golibvirt.ConnectURI(d.cfg.URI)) }()
		select {
		case err := <-done:
			if err == nil {
				if attempt > 0 || d.lvs[slot] != nil {
					d.log.Info("reconnected to libvirtd", "socket", d.cfg.Socket, "attempts", attempt+1)
				}
				d.lvs[slot] = lv
				return lv, nil
			}
			last = err
		case <-ctx.Done():
			go func() {
				if <-done == nil {
					_ = lv.Disconnect()
				}
			}()
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "libvirt: connect to %s: %v", d.cfg.Socket, ctx.Err())
		}
		select {
		case <-ctx.Done():
			return nil, virtplane.Errorf(virtplane.ErrUnavailable, "libvirt: connect to %s: %v", d.cfg.Socket, last)
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

// ctxDialer adapts Config.Dial to go-libvirt's context-less dialer.
type ctxDialer struct {
	ctx  context.Context
	dial func(ctx context.Context) (net.Conn, error)
}

func (c ctxDialer) Dial() (net.Conn, error) { return c.dial(c.ctx) }

// withDeadline gives ctx the default call timeout when it has none.
func (d *Driver) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d.callTimeout)
}

// call runs f on a live connection and gives up when ctx ends: go-libvirt
// calls take no context, so f runs in a goroutine and is abandoned (its
// reply discarded) at the deadline. A call cut short by a lost connection is
// retried once on a new connection when idempotent.
func call[T any](ctx context.Context, d *Driver, op string, idempotent bool, f func(*golibvirt.Libvirt) (T, error)) (T, error) {
	ctx, cancel := d.withDeadline(ctx)
	defer cancel()
	var zero T
	for try := 0; ; try++ {
		lv, err := d.conn(ctx)
		if err != nil {
			return zero, err
		}
		type result struct {
			v   T
			err error
		}
		ch := make(chan result, 1)
		go func() {
			v, err := f(lv)
			ch <- result{v, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil && !lv.IsConnected() && idempotent && try == 0 {
				continue
			}
			return r.v, classify(op, r.err, lv)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return zero, virtplane.Errorf(virtplane.ErrTimeout, "libvirt: %s: no answer within the deadline", op)
			}
			return zero, virtplane.Errorf(virtplane.ErrCanceled, "libvirt: %s: %v", op, ctx.Err())
		}
	}
}

// do is call for functions without a result.
func do(ctx context.Context, d *Driver, op string, idempotent bool, f func(*golibvirt.Libvirt) error) error {
	_, err := call(ctx, d, op, idempotent, func(lv *golibvirt.Libvirt) (struct{}, error) { return struct{}{}, f(lv) })
	return err
}

// classify maps libvirt error codes to virtplane error classes.
func classify(op string, err error, lv *golibvirt.Libvirt) error {
	if err == nil {
		return nil
	}
	var le golibvirt.Error
	if errors.As(err, &le) {
		if strings.Contains(le.Message, "valid only for bfq or cfq scheduler") {
			// An IO weight on a host whose block I/O scheduler has no
			// weights (cgroup v1 blkio without CFQ/BFQ, cgroup v2 without
			// io.weight): libvirt says "operation invalid", but no state of
			// the domain would make it valid; this host cannot do it.
			return fmt.Errorf("libvirt: %s: %s (this host's block I/O scheduler has no weights: load bfq): %w", op, le.Message, virtplane.ErrNotImplemented)
		}
		class := classOf(golibvirt.ErrorNumber(le.Code))
		if class != nil {
			return fmt.Errorf("libvirt: %s: %s: %w", op, le.Message, class)
		}
		return fmt.Errorf("libvirt: %s: %s (code %d)", op, le.Message, le.Code)
	}
	if lv != nil && !lv.IsConnected() || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EINVAL) {
		return virtplane.Errorf(virtplane.ErrUnavailable, "libvirt: %s: connection lost: %v", op, err)
	}
	return fmt.Errorf("libvirt: %s: %w", op, err)
}

func classOf(code golibvirt.ErrorNumber) error {
	switch code {
	case golibvirt.ErrNoDomain, golibvirt.ErrNoDomainSnapshot:
		return virtplane.ErrNotFound
	case golibvirt.ErrDomExist:
		return virtplane.ErrAlreadyExists
	case golibvirt.ErrOperationInvalid:
		return virtplane.ErrConflict
	case golibvirt.ErrAgentUnresponsive, golibvirt.ErrAgentUnsynced, golibvirt.ErrNoConnect:
		return virtplane.ErrUnavailable
	case golibvirt.ErrOperationUnsupported, golibvirt.ErrNoSupport, golibvirt.ErrArgumentUnsupported, golibvirt.ErrConfigUnsupported:
		return virtplane.ErrNotImplemented
	case golibvirt.ErrInvalidArg, golibvirt.ErrXMLError:
		return virtplane.ErrInvalidArgument
	case golibvirt.ErrOperationTimeout:
		return virtplane.ErrTimeout
	}
	return nil
}
