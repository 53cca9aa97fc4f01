// Package console is the daemon's browser console: single-use console
// tickets bound to a VM and a user, a WebSocket proxy that speaks VNC (RFB)
// to the hypervisor with the VM's console password and offers the browser
// a console that needs no password, and the console page with a vendored
// noVNC (1.3.0, see novnc/VERSION) served by the daemon itself.
//
// The browser never learns a node's address or the console password: it
// holds a ticket, which it trades once for the proxied stream.
//
//	t := console.NewTickets(st, 30*time.Second)
//	secret, expires, err := t.Issue(ctx, vmID, userID)
//	tk, err := t.Redeem(ctx, secret, vmID) // once; a second time is ErrNotFound
//	err = console.ProxyRFB(ctx, browser, hypervisor, password)
package console
