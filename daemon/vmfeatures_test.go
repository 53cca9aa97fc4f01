package daemon_test

import (
	"context"
	"crypto/des"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/internal/dbtest"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// done waits for a task and requires it to succeed.
func done(t *testing.T, c *client.Client, tk api.TaskView, err error) {
	t.Helper()
	require.NoError(t, err)
	tk, err = c.WaitTask(t.Context(), tk.ID)
	require.NoError(t, err)
	require.NoError(t, client.TaskError(tk))
}

// fails waits for a task and returns its error (nil if it succeeded).
func fails(t *testing.T, c *client.Client, tk api.TaskView, err error) error {
	t.Helper()
	require.NoError(t, err)
	tk, err = c.WaitTask(t.Context(), tk.ID)
	require.NoError(t, err)
	return client.TaskError(tk)
}

func problemOf(t *testing.T, err error) *client.Problem {
	t.Helper()
	var p *client.Problem
	require.ErrorAs(t, err, &p)
	return p
}

// TestVMOperationsOnSimulatedNode drives the everyday operations through
// the API on a simulated node: lifecycle, limits, snapshots of both kinds
// and revert, rescue, guest agent.
func TestVMOperationsOnSimulatedNode(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	a, vmID := e.alice, e.aliceVM.ID
	done(t, a, e.aliceTask, nil)
	state := func() string {
		vm, err := a.GetVM(ctx, vmID)
		require.NoError(t, err)
		return vm.State
	}

	// Lifecycle.
	tk, err := a.VMAction(ctx, vmID, "suspend")
	done(t, a, tk, err)
	assert.Equal(t, model.VMPaused, state())
	tk, err = a.VMAction(ctx, vmID, "resume")
	done(t, a, tk, err)
	assert.Equal(t, model.VMRunning, state())
	tk, err = a.VMAction(ctx, vmID, "reset")
	done(t, a, tk, err)
	tk, err = a.Shutdown(ctx, vmID, "reboot", &api.ShutdownBody{TimeoutSec: 5})
	done(t, a, tk, err)
	assert.Equal(t, model.VMRunning, state())
	tk, err = a.Shutdown(ctx, vmID, "shutdown", nil)
	done(t, a, tk, err)
	assert.Equal(t, model.VMStopped, state())

	// Limits of a stopped VM wait for its start; bad input names the field.
	lim := model.Limits{CPUPercent: 50, CPUWeight: 300, NetInMbit: 20, NetOutMbit: 10,
		Disks: map[string]model.DiskLimits{"vda": {ReadIOPS: 500, WriteBytesSec: 4 << 20}}}
	tk, err = a.SetLimits(ctx, vmID, lim)
	done(t, a, tk, err)
	vm, err := a.GetVM(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, "next_start", vm.LimitsApplied)
	assert.Equal(t, lim, vm.Limits)
	dom, err := e.srv.Flow.NodeDriver(ctx, e.node.ID)
	require.NoError(t, err)
	d, err := dom.Get(ctx, "vpt-"+vmID)
	require.NoError(t, err)
	assert.EqualValues(t, 50, d.Spec.Limits.CPUCapPercent, "cpu_percent of 1 vCPU: a cap of half a host CPU")
	assert.EqualValues(t, 300, d.Spec.Limits.CPUWeight)
	assert.EqualValues(t, 500, d.Spec.Limits.Disks["vda"].ReadIOPS)
	ports, err := e.srv.Flow.NodePorts(ctx, e.node.ID)
	require.NoError(t, err)
	specs, err := ports.List(ctx)
	require.NoError(t, err)
	require.Len(t, specs, 1)
	assert.EqualValues(t, 20000, specs[0].InKbit, "in and out apart")
	assert.EqualValues(t, 10000, specs[0].OutKbit)
	for _, bad := range []struct {
		l     model.Limits
		field string
	}{
		{model.Limits{NetMbit: 10, NetInMbit: 5}, "body.net_mbit"},
		{model.Limits{Disks: map[string]model.DiskLimits{"vdb": {ReadIOPS: 1}}}, "body.disks.vdb"},
	} {
		_, err := a.SetLimits(ctx, vmID, bad.l)
		p := problemOf(t, err)
		assert.Equal(t, http.StatusUnprocessableEntity, p.Status, p.Error())
		assert.Equal(t, bad.field, p.Field(), p.Error())
	}

	// A snapshot of the stopped VM has its disks; of the running one, its memory too.
	tk, err = a.CreateSnapshot(ctx, vmID, "off", nil)
	done(t, a, tk, err)
	_, err = a.CreateSnapshot(ctx, vmID, "mem-off", ptr(true))
	assert.Equal(t, "body.memory", problemOf(t, err).Field())
	tk, err = a.VMAction(ctx, vmID, "start")
	done(t, a, tk, err)
	vm, err = a.GetVM(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, "live", func() string {
		tk, err := a.SetLimits(ctx, vmID, lim)
		done(t, a, tk, err)
		vm, err := a.GetVM(ctx, vmID)
		require.NoError(t, err)
		return vm.LimitsApplied
	}())
	tk, err = a.CreateSnapshot(ctx, vmID, "on", nil)
	done(t, a, tk, err)
	vm, err = a.GetVM(ctx, vmID)
	require.NoError(t, err)
	require.Len(t, vm.Snapshots, 2)
	assert.Equal(t, model.SnapshotDisk, vm.Snapshots[0].Kind)
	assert.Equal(t, model.SnapshotMemory, vm.Snapshots[1].Kind)
	tk, err = a.RevertSnapshot(ctx, vmID, "off")
	done(t, a, tk, err)
	assert.Equal(t, model.VMStopped, state(), "a disk snapshot leaves the VM stopped")
	tk, err = a.RevertSnapshot(ctx, vmID, "on")
	done(t, a, tk, err)
	assert.Equal(t, model.VMRunning, state(), "a memory snapshot resumes it")
	_, err = a.RevertSnapshot(ctx, vmID, "nope")
	assert.ErrorIs(t, err, virtplane.ErrNotFound)
	for _, n := range []string{"off", "on"} {
		tk, err = a.DeleteSnapshot(ctx, vmID, n)
		done(t, a, tk, err)
	}

	// Rescue needs the cluster's image; then in and out.
	_, err = a.Rescue(ctx, vmID, true)
	assert.ErrorIs(t, err, virtplane.ErrConflict)
	assert.Contains(t, err.Error(), "rescue image")
	_, err = e.admin.SetClusterRescue(ctx, e.cluster.ID, model.RescueImage{Kernel: "relative/vmlinuz"})
	assert.Equal(t, "body.kernel", problemOf(t, err).Field())
	_, err = e.admin.SetClusterRescue(ctx, e.cluster.ID, model.RescueImage{Kernel: "/srv/rescue/vmlinuz", Initrd: "/srv/rescue/initrd", Cmdline: "console=ttyS0"})
	require.NoError(t, err)
	tk, err = a.Rescue(ctx, vmID, true)
	done(t, a, tk, err)
	assert.Equal(t, model.VMRescue, state())
	d, err = dom.Get(ctx, "vpt-"+vmID)
	require.NoError(t, err)
	assert.True(t, d.Rescue)
	tk, err = a.Rescue(ctx, vmID, false)
	done(t, a, tk, err)
	assert.Equal(t, model.VMRunning, state())
	// Or an ISO image, imported like OS images: the VM boots it as a CD-ROM.
	isoFile := filepath.Join(t.TempDir(), "rescue.iso")
	require.NoError(t, os.WriteFile(isoFile, make([]byte, 1<<20), 0o644))
	iso, err := e.admin.CreateImage(ctx, api.ImageBody{Name: "rescue-iso", OSType: "linux", Source: isoFile, Format: "raw"})
	require.NoError(t, err)
	_, err = e.admin.SetClusterRescue(ctx, e.cluster.ID, model.RescueImage{ISOImageID: iso.ID, Kernel: "/boot/vmlinuz"})
	assert.Equal(t, "body.iso_image_id", problemOf(t, err).Field(), "an ISO or a kernel")
	_, err = e.admin.SetClusterRescue(ctx, e.cluster.ID, model.RescueImage{ISOImageID: iso.ID})
	require.NoError(t, err)
	tk, err = a.Rescue(ctx, vmID, true)
	err = fails(t, a, tk, err)
	assert.ErrorIs(t, err, virtplane.ErrConflict, "not imported into the node yet")
	assert.Contains(t, err.Error(), "not imported")
	_, tk, err = e.admin.ImportImage(ctx, iso.ID, api.ImageImportBody{ClusterID: e.cluster.ID})
	done(t, e.admin, tk, err)
	tk, err = a.Rescue(ctx, vmID, true)
	done(t, a, tk, err)
	rescued, err := dom.Get(ctx, "vpt-"+vmID)
	require.NoError(t, err)
	assert.True(t, rescued.Rescue)
	tk, err = a.Rescue(ctx, vmID, false)
	done(t, a, tk, err)

	// The guest agent answers at once.
	res, err := a.GuestExec(ctx, vmID, api.GuestExecBody{Argv: []string{"echo", "hi"}})
	require.NoError(t, err)
	assert.Equal(t, "hi\n", res.Stdout)
	ifs, err := a.GuestInterfaces(ctx, vmID)
	require.NoError(t, err)
	assert.NotEmpty(t, ifs)
	require.NoError(t, a.SetGuestPassword(ctx, vmID, "root", "n3w-Pass"))
	_, err = a.GuestExec(ctx, vmID, api.GuestExecBody{Argv: []string{""}})
	assert.Equal(t, "body.argv[0]", problemOf(t, err).Field())
}

func ptr[T any](v T) *T { return &v }

// fakeVNC is a VNC server that asks for VNC authentication with password
// and then sends a ServerInit naming the desktop.
type fakeVNC struct {
	ln       net.Listener
	password string
	mu       sync.Mutex
	authed   int
}

func startFakeVNC(t *testing.T, password string) *fakeVNC {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeVNC{ln: ln, password: password}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeVNC) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 16)
	_, _ = c.Write([]byte("RFB 003.008\n"))
	if _, err := io.ReadFull(c, buf[:12]); err != nil {
		return
	}
	_, _ = c.Write([]byte{1, 2}) // VNC authentication only
	if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != 2 {
		return
	}
	challenge := []byte("0123456789abcdef")
	_, _ = c.Write(challenge)
	resp := make([]byte, 16)
	if _, err := io.ReadFull(c, resp); err != nil {
		return
	}
	key := make([]byte, 8)
	copy(key, f.password)
	for i, b := range key {
		var r byte
		for j := 0; j < 8; j++ {
			r = r<<1 | (b>>j)&1
		}
		key[i] = r
	}
	block, _ := des.NewCipher(key)
	want := make([]byte, 16)
	block.Encrypt(want[:8], challenge[:8])
	block.Encrypt(want[8:], challenge[8:])
	if string(want) != string(resp) {
		_, _ = c.Write([]byte{0, 0, 0, 1})
		return
	}
	f.mu.Lock()
	f.authed++
	f.mu.Unlock()
	_, _ = c.Write([]byte{0, 0, 0, 0})
	if _, err := io.ReadFull(c, buf[:1]); err != nil { // ClientInit
		return
	}
	name := "vpt-fake-desktop"
	init := binary.BigEndian.AppendUint16(nil, 640)
	init = binary.BigEndian.AppendUint16(init, 480)
	init = append(init, make([]byte, 16)...)
	init = binary.BigEndian.AppendUint32(init, uint32(len(name)))
	_, _ = c.Write(append(init, name...))
	_, _ = io.Copy(io.Discard, c)
}

// rfbClient opens the console stream with a ticket and runs the browser
// side of the handshake the proxy offers (no authentication), returning
// the desktop name of the ServerInit.
func rfbClient(ctx context.Context, base, wsPath string) (string, error) {
	conn, resp, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+wsPath, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		if resp != nil {
			return "", &client.Problem{Status: resp.StatusCode, Title: resp.Status}
		}
		return "", err
	}
	nc := websocket.NetConn(ctx, conn, websocket.MessageBinary)
	defer nc.Close()
	buf := make([]byte, 12)
	if _, err := io.ReadFull(nc, buf); err != nil {
		return "", err
	}
	_, _ = nc.Write([]byte("RFB 003.008\n"))
	types := make([]byte, 2)
	if _, err := io.ReadFull(nc, types); err != nil {
		return "", err
	}
	_, _ = nc.Write([]byte{1})
	if _, err := io.ReadFull(nc, buf[:4]); err != nil {
		return "", err
	}
	_, _ = nc.Write([]byte{1}) // ClientInit: shared
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		return "", err
	}
	name := make([]byte, binary.BigEndian.Uint32(hdr[20:]))
	_, err = io.ReadFull(nc, name)
	return string(name), err
}

// TestConsoleTickets: a running VM's console opens once per ticket,
// through the dial seam, with the VM's VNC password kept inside the
// daemon; expired, reused and misdirected tickets are refused, another
// user's VM gets no ticket, a stopped VM is 409.
func TestConsoleTickets(t *testing.T) {
	st := dbtest.SQLite(t)
	var dialed []string
	var mu sync.Mutex
	var vnc *fakeVNC
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "test", DataDir: t.TempDir(), ConsoleTicketTTL: 2 * time.Second,
		ConsoleDial: func(ctx context.Context, n model.Node, host string, port int) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, n.Name+" "+net.JoinHostPort(host, strconv.Itoa(port)))
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, "tcp", vnc.ln.Addr().String())
		}})
	require.NoError(t, err)
	e := newEnvOn(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done(t, e.alice, e.aliceTask, nil)
	vmID := e.aliceVM.ID
	drv, err := srv.Flow.NodeDriver(ctx, e.node.ID)
	require.NoError(t, err)
	d, err := drv.Get(ctx, "vpt-"+vmID)
	require.NoError(t, err)
	require.Equal(t, "vnc", d.Spec.Console.Type, "the create flow asks for a graphics device")
	require.Len(t, d.Spec.Console.Password, 8)
	vnc = startFakeVNC(t, d.Spec.Console.Password)

	info, err := e.alice.Console(ctx, vmID)
	require.NoError(t, err)
	assert.Equal(t, model.ConsoleInfo{Type: "vnc", Open: true}, info)
	tk, err := e.alice.ConsoleTicket(ctx, vmID)
	require.NoError(t, err)
	assert.NotContains(t, tk.PageURL+tk.WebSocketURL, d.Spec.Console.Password)
	assert.NotContains(t, tk.PageURL+tk.WebSocketURL, "127.0.0.1")
	name, err := rfbClient(ctx, e.url, tk.WebSocketURL)
	require.NoError(t, err)
	assert.Equal(t, "vpt-fake-desktop", name, "the guest's desktop through the proxy")
	require.Len(t, dialed, 1)
	assert.Contains(t, dialed[0], e.node.Name+" 127.0.0.1:59", "the seam gets the node and the hypervisor's console port")

	// Used once.
	_, err = rfbClient(ctx, e.url, tk.WebSocketURL)
	assert.Equal(t, http.StatusForbidden, problemOf(t, err).Status, "a used ticket")
	// For this VM only.
	tk, err = e.alice.ConsoleTicket(ctx, vmID)
	require.NoError(t, err)
	bobVM, btask, err := e.bob.CreateVM(ctx, e.vmBody("bobs"), "")
	done(t, e.bob, btask, err)
	bobTk, err := e.bob.ConsoleTicket(ctx, bobVM.ID)
	require.NoError(t, err)
	_, err = rfbClient(ctx, e.url, strings.Replace(bobTk.WebSocketURL, bobVM.ID, vmID, 1))
	assert.Equal(t, http.StatusForbidden, problemOf(t, err).Status, "bob's ticket on alice's VM")
	_, err = e.bob.ConsoleTicket(ctx, vmID)
	assert.ErrorIs(t, err, virtplane.ErrNotFound, "bob gets no ticket for alice's VM")
	// Expired.
	time.Sleep(2100 * time.Millisecond)
	_, err = rfbClient(ctx, e.url, tk.WebSocketURL)
	assert.Equal(t, http.StatusForbidden, problemOf(t, err).Status, "an expired ticket")
	mu.Lock()
	assert.Len(t, dialed, 1, "refused tickets reach no node")
	mu.Unlock()
	// A stopped VM has no console.
	stop, err := e.alice.VMAction(ctx, vmID, "stop")
	done(t, e.alice, stop, err)
	_, err = e.alice.ConsoleTicket(ctx, vmID)
	p := problemOf(t, err)
	assert.Equal(t, http.StatusConflict, p.Status, p.Error())
	assert.Contains(t, p.Detail, "stopped")
	// The page and noVNC come from the daemon.
	for path, want := range map[string]string{"/console": "novnc/core/rfb.js", "/console/novnc/core/rfb.js": "export default class RFB"} {
		resp, err := http.Get(e.url + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, path)
		assert.Contains(t, string(b), want, path)
		assert.NotContains(t, string(b), "https://", path+": no CDN")
	}
	n, err := st.CountObjects(ctx, store.KindConsoleTicket, store.ListOptions{})
	require.NoError(t, err)
	assert.LessOrEqual(t, n, 1, "used tickets are gone")
}
