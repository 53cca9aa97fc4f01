// Command billing shows how a billing system sells a VM through the daemon's
// API: it creates the VM with an idempotency key derived from the order (so
// a retried request never makes a second VM), polls the task, reads the
// address, and deletes the VM when the order ends.
//
//	go run ./daemon/cmd/virtplaned serve --data ./var   # prints a token
//	go run ./examples/billing -url http://127.0.0.1:8080 -token vpt_... -order 1001
//
// Without -url it starts an embedded daemon on a simulated node, so the
// example runs anywhere.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon"
	"github.com/virtplane/virtplane/daemon/api"
	"github.com/virtplane/virtplane/daemon/client"
	"github.com/virtplane/virtplane/daemon/store/sqlite"
)

func main() {
	url := flag.String("url", "", "daemon URL; empty starts an embedded daemon with a simulated node")
	token := flag.String("token", "", "API token")
	order := flag.String("order", "1001", "order number of the billing system")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *url, *token, *order); err != nil {
		fmt.Fprintln(os.Stderr, "billing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, url, token, order string) error {
	if url == "" {
		var stop func()
		var err error
		url, token, stop, err = embedded(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	c := client.New(url, token)

	// What the customer bought: the first cluster, pool and image on offer.
	clusters, err := c.ListClusters(ctx, client.ListOptions{})
	if err != nil {
		return err
	}
	pools, err := c.ListPools(ctx, client.ListOptions{})
	if err != nil {
		return err
	}
	images, err := c.ListImages(ctx, client.ListOptions{})
	if err != nil {
		return err
	}
	if len(clusters.Items) == 0 || len(pools.Items) == 0 || len(images.Items) == 0 {
		return fmt.Errorf("the daemon offers no cluster, pool or image yet")
	}
	spec := api.VMCreateBody{
		Name: "order-" + order, ClusterID: clusters.Items[0].ID, PoolID: pools.Items[0].ID, ImageID: images.Items[0].ID,
		CPUs: 2, MemoryMiB: 2048, DiskGiB: 20,
	}
	key := "billing-order-" + order

	vm, task, err := c.CreateVM(ctx, spec, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "order %s: vm %s, task %s %s\n", order, vm.ID, task.ID, task.State)
	// A network hiccup makes billing systems retry; the key makes that safe.
	again, _, err := c.CreateVM(ctx, spec, key)
	if err != nil {
		return err
	}
	if again.ID != vm.ID {
		return fmt.Errorf("the retry made a second VM %s", again.ID)
	}
	fmt.Fprintf(out, "retry with the same key: same vm %s\n", again.ID)

	// Wait returns the task's error, with its class: errors.Is(err,
	// virtplane.ErrResourceExhausted) means no node had room.
	if err := c.Task(task).Wait(ctx); err != nil {
		return err
	}
	vm, err = c.GetVM(ctx, vm.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vm %s is %s on node %s with address %v\n", vm.Name, vm.State, vm.NodeID, vm.Addresses)

	// The order ends: delete the VM and wait until it is gone.
	del, err := c.DeleteVM(ctx, vm.ID)
	if err != nil {
		return err
	}
	if err := c.Task(del).Wait(ctx); err != nil {
		return err
	}
	if _, err := c.GetVM(ctx, vm.ID); !errors.Is(err, virtplane.ErrNotFound) {
		return fmt.Errorf("vm %s still there after its delete: %v", vm.ID, err)
	}
	fmt.Fprintf(out, "order %s ended: vm %s deleted\n", order, vm.ID)
	return nil
}

// embedded starts a daemon in this process with one simulated node.
func embedded(ctx context.Context) (url, token string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "billing-example-")
	if err != nil {
		return "", "", nil, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "virtplane.db"))
	if err != nil {
		return "", "", nil, err
	}
	srv, err := daemon.New(daemon.Config{Store: st, Instance: "billing-example"})
	if err != nil {
		return "", "", nil, err
	}
	if token, err = srv.Bootstrap(ctx, ""); err != nil {
		return "", "", nil, err
	}
	if err := srv.SetupFirstNode(ctx, "sim"); err != nil {
		return "", "", nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx) }()
	hs := httptest.NewServer(srv.Handler())
	return hs.URL, token, func() {
		hs.Close()
		cancel()
		<-done
		_ = st.Close()
		_ = os.RemoveAll(dir)
	}, nil
}
