package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/virtplane/virtplane"
)

// Facts are a node's capacity and identity, as the node itself reports
// them: what the controller registers a node with instead of asking the
// operator.
type Facts struct {
	Hostname string `json:"hostname"`
	// HostnameUnresolved says why the node's own hostname does not resolve
	// on the node (empty: it does). libvirt looks it up on both ends of
	// every live migration, so each one waits out the resolver's timeouts.
	HostnameUnresolved string `json:"hostname_unresolved,omitempty"`
	// Addresses are the node's own unicast addresses (HostAddresses): a
	// VM on the node must never be given one.
	Addresses []string `json:"addresses,omitempty"`
	// Kernel is the kernel release (uname -r), Arch the machine (uname -m).
	Kernel string `json:"kernel"`
	Arch   string `json:"arch"`
	// Cores are the CPUs the node's processes may use; MemoryBytes its RAM.
	Cores       int   `json:"cores"`
	MemoryBytes int64 `json:"memory_bytes"`
	// Pools are the node's storage pools with their space.
	Pools []PoolFacts `json:"pools,omitempty"`
	// Libvirt and QEMU are the versions of the hypervisor stack, empty
	// when unknown.
	Libvirt string `json:"libvirt,omitempty"`
	QEMU    string `json:"qemu,omitempty"`
}

// PoolFacts are the space of one pool (storage.PoolInfo), or why it could
// not be read.
type PoolFacts struct {
	Name      string `json:"name"`
	Driver    string `json:"driver,omitempty"`
	Capacity  int64  `json:"capacity"`
	Used      int64  `json:"used"`
	Allocated int64  `json:"allocated"`
	Error     string `json:"error,omitempty"`
}

// ReadHostFacts reads this host's identity, CPUs and memory (from the
// kernel: uname, /proc/meminfo); it leaves Pools and the hypervisor
// versions empty.
func ReadHostFacts(ctx context.Context) (Facts, error) {
	var f Facts
	var err error
	if f.Hostname, err = os.Hostname(); err != nil {
		return Facts{}, virtplane.Errorf(virtplane.ErrUnavailable, "facts: hostname: %v", err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Facts{}, virtplane.Errorf(virtplane.ErrUnavailable, "facts: uname: %v", err)
	}
	f.HostnameUnresolved = checkHostname(ctx, net.DefaultResolver, f.Hostname)
	f.Addresses = HostAddresses()
	f.Kernel, f.Arch = unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
	f.Cores = runtime.NumCPU()
	mem, err := os.Open("/proc/meminfo")
	if err != nil {
		return Facts{}, virtplane.Errorf(virtplane.ErrUnavailable, "facts: %v", err)
	}
	defer mem.Close()
	if f.MemoryBytes, err = memTotal(mem); err != nil {
		return Facts{}, err
	}
	return f, nil
}

// HostNetworks lists the networks of this host's interfaces, each an
// address with its mask (loopback and link-local ones too).
func HostNetworks() []netip.Prefix {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, ifa := range ifas {
		n, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		bits, _ := n.Mask.Size()
		if a.Is4In6() && bits > 32 {
			bits -= 96
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), bits))
	}
	return out
}

// HostAddresses lists this host's global unicast addresses, those of every
// interface (not loopback or link-local ones, which no pool hands out).
func HostAddresses() []string {
	var out []string
	for _, p := range HostNetworks() {
		if p.Addr().IsGlobalUnicast() {
			out = append(out, p.Addr().String())
		}
	}
	return out
}

// hostResolver is what checkHostname asks (*net.Resolver).
type hostResolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// checkHostname says why name does not resolve, or "" when it does. The
// lookup gets two seconds: a resolver that takes longer is the problem
// this reports.
func checkHostname(ctx context.Context, r hostResolver, name string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, name)
	switch {
	case err != nil:
		return fmt.Sprintf("hostname %q does not resolve on the node (%v); add it to /etc/hosts, or every live migration waits out the resolver", name, err)
	case len(addrs) == 0:
		return fmt.Sprintf("hostname %q resolves to no address on the node; add it to /etc/hosts", name)
	}
	return ""
}

// memTotal reads MemTotal from /proc/meminfo text.
func memTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb <= 0 {
			break
		}
		return kb << 10, nil
	}
	return 0, virtplane.Errorf(virtplane.ErrUnavailable, "facts: /proc/meminfo has no MemTotal in kB")
}

func (s *Server) registerFacts() {
	s.addUnary("facts/Get", unary(func(ctx context.Context, _ noArgs) (Facts, error) {
		readFacts := s.node.Facts
		if readFacts == nil {
			readFacts = ReadHostFacts
		}
		f, err := readFacts(ctx)
		if err != nil {
			return Facts{}, err
		}
		if f.Pools == nil {
			f.Pools = s.poolFacts(ctx)
		}
		return f, nil
	}))
}

// poolFacts reads the space of every open pool; a pool that cannot be read
// says why instead of failing the others.
func (s *Server) poolFacts(ctx context.Context) []PoolFacts {
	out := []PoolFacts{}
	for _, name := range s.poolNames() {
		p, err := s.pool(name)
		if err != nil {
			continue // closed meanwhile
		}
		pf := PoolFacts{Name: name}
		if info, err := p.Info(ctx); err != nil {
			pf.Error = err.Error()
		} else {
			pf.Driver, pf.Capacity, pf.Used, pf.Allocated = info.Driver, info.Capacity, info.Used, info.Allocated
		}
		out = append(out, pf)
	}
	return out
}

// Facts returns the node's capacity and identity.
func (c *Client) Facts(ctx context.Context) (Facts, error) {
	var f Facts
	err := c.call(ctx, "facts/Get", read, noArgs{}, &f)
	return f, err
}
