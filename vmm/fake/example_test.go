package fake_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

// A test of code that starts machines injects a hypervisor failure and
// checks what was called.
func Example() {
	ctx := context.Background()
	d := fake.New()
	_, _ = d.Create(ctx, vmm.Spec{Name: "web-1", VCPUs: 1, MemoryMiB: 256})
	d.FailNext("Start", virtplane.Errorf(virtplane.ErrUnavailable, "hypervisor down"))
	err := d.Start(ctx, "web-1")
	fmt.Println(errors.Is(err, virtplane.ErrUnavailable))
	for _, c := range d.Calls() {
		fmt.Println(c.Method, c.VM)
	}
	// Output:
	// true
	// Create web-1
	// Start web-1
}
