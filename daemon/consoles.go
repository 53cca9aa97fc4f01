package daemon

import (
	"context"
	"encoding/json"
	"net"
	"strconv"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
	"github.com/virtplane/virtplane/daemon/store"
	"github.com/virtplane/virtplane/vmm/libvirt"
)

// ConsoleDialer opens a TCP connection to host:port as seen from node: the
// seam through which the console proxy reaches a node's VNC server (by
// default the node's own node.Backend.Dial; see Config.ConsoleDial).
type ConsoleDialer func(ctx context.Context, node model.Node, host string, port int) (net.Conn, error)

// dialNode is the default ConsoleDialer: the node's own dial (a local
// node's is a TCP dial from this host; a remote kind's goes through what
// reaches the node). A console listening on every address is reached on
// the node's loopback.
func (s *Server) dialNode(ctx context.Context, n model.Node, host string, port int) (net.Conn, error) {
	o, err := s.cfg.Store.GetObject(ctx, store.KindCluster, n.ClusterID)
	if err != nil {
		return nil, err
	}
	var c model.Cluster
	if err := json.Unmarshal(o.Data, &c); err != nil {
		return nil, err
	}
	b, err := s.Backend(ctx, n, c)
	if err != nil {
		return nil, err
	}
	if b.Dial == nil {
		return nil, virtplane.Errorf(virtplane.ErrNotImplemented, "console of node %s: a %s node offers no connection to its ports (Config.ConsoleDial)", n.Name, b.Kind)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	conn, err := b.Dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, virtplane.Errorf(virtplane.ErrUnavailable, "console of node %s: %v", n.Name, err)
	}
	return conn, nil
}

// consoles opens VMs' consoles for the API's proxy.
type consoles struct{ s *Server }

func (c consoles) ConsoleReady(ctx context.Context, vmID string) error {
	ep, err := c.s.Flow.ConsoleEndpoint(ctx, vmID)
	if err != nil {
		return err
	}
	if ep.Console.Type != "vnc" {
		return virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s has a %s console: the web console speaks VNC", vmID, ep.Console.Type)
	}
	return nil
}

func (c consoles) OpenConsole(ctx context.Context, vmID string) (net.Conn, string, error) {
	ep, err := c.s.Flow.ConsoleEndpoint(ctx, vmID)
	if err != nil {
		return nil, "", err
	}
	if ep.Console.Type != "vnc" {
		return nil, "", virtplane.Errorf(virtplane.ErrNotImplemented, "vm %s has a %s console: the web console speaks VNC", vmID, ep.Console.Type)
	}
	conn, err := c.s.consoleDial(ctx, ep.Node, ep.Console.Host, ep.Console.Port)
	return conn, ep.Console.Password, err
}

// checkOverride checks a template override against the storage
// directories the daemon knows: its data directory (node pools, the local
// pool under make run), the agent's directory on ssh:// nodes, and the
// clusters' file storages.
func (s *Server) checkOverride(ctx context.Context, x string) error {
	roots := []string{agentStateDir}
	if s.cfg.DataDir != "" {
		roots = append(roots, s.cfg.DataDir)
	}
	roots = append(roots, s.cfg.OverrideDiskRoots...)
	var clusters []model.Cluster
	if err := s.eachCluster(ctx, func(c model.Cluster) { clusters = append(clusters, c) }); err != nil {
		return err
	}
	for _, c := range clusters {
		for _, ref := range c.Storages {
			if ref.Driver == "file" && ref.Path != "" {
				roots = append(roots, ref.Path)
			}
		}
	}
	_, err := libvirt.CheckOverride(x, roots)
	return err
}

func (s *Server) eachCluster(ctx context.Context, fn func(model.Cluster)) error {
	after := ""
	for {
		objs, err := s.cfg.Store.ListObjects(ctx, store.KindCluster, store.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, o := range objs {
			var c model.Cluster
			if err := json.Unmarshal(o.Data, &c); err != nil {
				return err
			}
			fn(c)
		}
		if len(objs) < 1000 {
			return nil
		}
		after = objs[len(objs)-1].ID
	}
}
