package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/console"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
)

// ConsoleOpener opens the console of a running VM for the proxy: a
// connection to its VNC server (through whatever reaches the VM's node)
// and the password it asks for. ErrConflict: the VM does not run.
type ConsoleOpener interface {
	OpenConsole(ctx context.Context, vmID string) (conn net.Conn, password string, err error)
	// ConsoleReady checks, without connecting, that the VM's console can
	// be opened now (the VM runs and has a VNC console).
	ConsoleReady(ctx context.Context, vmID string) error
}

// ConsoleTicketView is a console ticket: open PageURL in a browser (or
// connect a VNC-over-WebSocket client to WebSocketURL) before Expires. The
// ticket works once, for this VM and this user.
type ConsoleTicketView struct {
	Ticket       string    `json:"ticket"`
	Expires      time.Time `json:"expires"`
	Type         string    `json:"type" doc:"vnc"`
	PageURL      string    `json:"page_url" doc:"the console page on this daemon (path and fragment)"`
	WebSocketURL string    `json:"websocket_url" doc:"the console stream (RFB without authentication) on this daemon (path and query)"`
}

func (s *Server) registerConsole() {
	tags := []string{"vms"}
	huma.Register(s.api, huma.Operation{
		OperationID: "getVMConsole", Method: http.MethodGet, Path: "/v1/vms/{id}/console", Tags: tags,
		Summary: "What graphical console a VM has and whether it can be opened now",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body model.ConsoleInfo }, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		ci := model.ConsoleInfo{Type: vm.Console}
		if ci.Type == "" {
			ci.Type = "none"
		}
		ci.Open = s.cfg.Console != nil && s.cfg.Console.ConsoleReady(ctx, in.ID) == nil
		return &struct{ Body model.ConsoleInfo }{ci}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "createConsoleTicket", Method: http.MethodPost, Path: "/v1/vms/{id}/console", Tags: tags,
		Summary: "A single-use ticket for a running VM's web console",
		Description: "The ticket opens the console page (page_url) once, within a short time (expires); it is bound to the VM and to the caller. " +
			"The daemon proxies the console: the client never gets the node's address or the console password. A stopped VM is 409.",
	}, func(ctx context.Context, in *IDInput) (*struct{ Body ConsoleTicketView }, error) {
		vm, _, err := s.vm(ctx, s.st, in.ID)
		if err != nil {
			return nil, problem(err)
		}
		switch {
		case vm.Console != "vnc" && vm.Console != "":
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s has a %s console: the web console speaks VNC", vm.ID, vm.Console)))
		case !running(vm):
			return nil, problem(field("path.id", virtplane.Errorf(virtplane.ErrConflict, "vm %s is %s: a console opens on a running VM", vm.ID, vm.State)))
		case s.cfg.Console == nil:
			return nil, problem(virtplane.Errorf(virtplane.ErrNotImplemented, "console access"))
		}
		if err := s.cfg.Console.ConsoleReady(ctx, vm.ID); err != nil {
			return nil, problem(field("path.id", err))
		}
		secret, expires, err := s.tickets.Issue(ctx, vm.ID, principal(ctx).UserID)
		if err != nil {
			return nil, problem(err)
		}
		q := url.Values{"vm": {vm.ID}, "ticket": {secret}}
		return &struct{ Body ConsoleTicketView }{ConsoleTicketView{Ticket: secret, Expires: expires, Type: "vnc",
			PageURL:      console.PagePath + "#" + q.Encode(),
			WebSocketURL: "/v1/vms/" + url.PathEscape(vm.ID) + "/console/ws?ticket=" + url.QueryEscape(secret)}}, nil
	})
	s.mux.HandleFunc("GET "+console.PagePath, console.Page)
	s.mux.Handle("GET "+console.PagePath+"/novnc/", http.StripPrefix(console.PagePath+"/novnc/", console.NoVNC()))
	s.mux.HandleFunc("GET /v1/vms/{id}/console/ws", s.consoleStream)
}

// consoleStream trades a ticket for the console: the ticket must be for
// this VM, unused and fresh, and its user must still be allowed the VM.
// Refusals come before the WebSocket upgrade, as plain HTTP problems.
func (s *Server) consoleStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	vmID := r.PathValue("id")
	refuse := func(err error) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(statusOf(err))
		_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(statusOf(err)), "status": statusOf(err), "detail": err.Error()})
	}
	tk, err := s.tickets.Redeem(ctx, r.URL.Query().Get("ticket"), vmID)
	if err != nil {
		refuse(err)
		return
	}
	if err := s.ticketHolderMay(ctx, tk); err != nil {
		refuse(err)
		return
	}
	if s.cfg.Console == nil {
		refuse(virtplane.Errorf(virtplane.ErrNotImplemented, "console access"))
		return
	}
	server, password, err := s.cfg.Console.OpenConsole(ctx, vmID)
	if err != nil {
		refuse(err)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		_ = server.Close()
		return
	}
	c.SetReadLimit(1 << 20)
	// The stream lives as long as the browser keeps it, not the request's
	// handler deadline.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	browser := websocket.NetConn(sctx, c, websocket.MessageBinary)
	if err := console.ProxyRFB(sctx, browser, server, password); err != nil {
		_ = c.Close(websocket.StatusInternalError, "console: "+err.Error())
	}
}

// ticketHolderMay checks that a ticket's user still exists, is enabled,
// and may still see the VM (it may have changed hands since the ticket).
func (s *Server) ticketHolderMay(ctx context.Context, tk console.Ticket) error {
	denied := virtplane.Errorf(virtplane.ErrPermissionDenied, "console ticket: its user may not open this VM's console")
	u, _, err := getObject[model.User](ctx, s.st, store.KindUser, tk.UserID, "ticket")
	if err != nil || u.Disabled {
		return denied
	}
	o, err := s.st.GetObject(ctx, store.KindVM, tk.VMID)
	if err != nil {
		return denied
	}
	if u.Role != model.RoleAdmin && o.Owner != u.ID {
		return denied
	}
	return nil
}
