package lxd

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
)

var _ vmm.EventWatcher = (*Driver)(nil)

// Events streams LXD lifecycle events of containers. LXD serves events over
// a WebSocket; the driver speaks the small part of RFC 6455 it needs (read
// text frames, answer pings, mask what it sends) and reconnects when LXD
// restarts.
func (d *Driver) Events(ctx context.Context) (<-chan vmm.Event, error) {
	conn, br, err := d.dialEvents(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan vmm.Event, 256)
	go func() {
		defer close(out)
		for {
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			d.readEvents(ctx, conn, br, out)
			stop()
			_ = conn.Close()
			for {
				if ctx.Err() != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(500 * time.Millisecond):
				}
				if conn, br, err = d.dialEvents(ctx); err == nil {
					break
				}
			}
		}
	}()
	return out, nil
}

func (d *Driver) dialEvents(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", d.cfg.Socket)
	if err != nil {
		return nil, nil, ctxError("events", ctx, err)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://lxd/1.0/events?type=lifecycle", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	req.Header.Set("Sec-WebSocket-Version", "13")
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, ctxError("events", ctx, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, ctxError("events", ctx, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, nil, virtplane.Errorf(virtplane.ErrUnavailable, "lxd: events: websocket upgrade refused: %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

type lxdEvent struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Metadata  struct {
		Action string `json:"action"`
		Source string `json:"source"`
	} `json:"metadata"`
}

var actionStates = map[string]vmm.State{
	"instance-started":   vmm.StateRunning,
	"instance-restarted": vmm.StateRunning,
	"instance-resumed":   vmm.StateRunning,
	"instance-paused":    vmm.StatePaused,
	"instance-stopped":   vmm.StateStopped,
	"instance-shutdown":  vmm.StateStopped,
	"instance-created":   vmm.StateStopped,
	"instance-deleted":   vmm.StateStopped,
}

func (d *Driver) readEvents(ctx context.Context, conn net.Conn, br *bufio.Reader, out chan<- vmm.Event) {
	var msg []byte
	for {
		op, payload, fin, err := readFrame(br)
		if err != nil {
			return
		}
		switch op {
		case 0x8: // close
			return
		case 0x9: // ping
			if writeFrame(conn, 0xA, payload) != nil {
				return
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if !fin {
			continue
		}
		var ev lxdEvent
		err = json.Unmarshal(msg, &ev)
		msg = nil
		if err != nil || ev.Type != "lifecycle" {
			continue
		}
		st, ok := actionStates[ev.Metadata.Action]
		name, isInstance := strings.CutPrefix(ev.Metadata.Source, "/1.0/instances/")
		if !ok || !isInstance || strings.Contains(name, "/") {
			continue
		}
		if i := strings.IndexByte(name, '?'); i >= 0 {
			name = name[:i]
		}
		if ev.Timestamp.IsZero() {
			ev.Timestamp = time.Now()
		}
		select {
		case out <- vmm.Event{VM: name, State: st, Reason: strings.TrimPrefix(ev.Metadata.Action, "instance-"), Time: ev.Timestamp}:
		case <-ctx.Done():
			return
		default: // a slow reader loses events rather than stalling the stream
		}
	}
}

// readFrame reads one WebSocket frame (servers do not mask).
func readFrame(r *bufio.Reader) (op byte, payload []byte, fin bool, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, false, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return 0, nil, false, errors.New("lxd: events: frame too large")
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(r, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return op, payload, fin, nil
}

// writeFrame sends one masked frame with a payload under 126 bytes (pongs).
func writeFrame(w io.Writer, op byte, payload []byte) error {
	if len(payload) > 125 {
		return fmt.Errorf("lxd: events: control frame of %d bytes", len(payload))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := []byte{0x80 | op, 0x80 | byte(len(payload))}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	_, err := w.Write(f)
	return err
}
