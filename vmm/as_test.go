package vmm_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/virtplane/virtplane/vmm"
	"github.com/virtplane/virtplane/vmm/fake"
)

// proxy stands for another driver: it has every method of fake.Driver and
// reports only the capabilities in has.
type proxy struct {
	*fake.Driver
	has map[reflect.Type]bool
}

func (p proxy) HasCapability(t reflect.Type) bool { return p.has[t] }

// bare is a driver with no optional interface.
type bare struct{ vmm.Driver }

func TestAs(t *testing.T) {
	d := fake.New()
	_, ok := vmm.As[vmm.Migrator](d)
	assert.True(t, ok, "a driver that implements Migrator")

	_, ok = vmm.As[vmm.Migrator](bare{d})
	assert.False(t, ok, "a driver without the method")

	p := proxy{Driver: d, has: map[reflect.Type]bool{reflect.TypeFor[vmm.Snapshotter](): true}}
	_, ok = vmm.As[vmm.Snapshotter](p)
	assert.True(t, ok, "reported")
	m, ok := vmm.As[vmm.Migrator](p)
	assert.False(t, ok, "implemented but not reported")
	assert.Nil(t, m, "the zero value when absent")

	// The base interface is a capability like the others.
	_, ok = vmm.As[interface {
		Get(context.Context, string) (vmm.VM, error)
	}](p)
	assert.False(t, ok, "a reporter decides about every type")
}
