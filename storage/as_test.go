package storage_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/virtplane/virtplane/storage"
	"github.com/virtplane/virtplane/storage/fake"
)

type proxy struct {
	*fake.Pool
	has map[reflect.Type]bool
}

func (p proxy) HasCapability(t reflect.Type) bool { return p.has[t] }

type bare struct{ storage.Pool }

func TestAs(t *testing.T) {
	p := fake.New("p", nil)
	_, ok := storage.As[storage.Cloner](p)
	assert.True(t, ok)
	_, ok = storage.As[storage.Cloner](bare{p})
	assert.False(t, ok, "no method")
	_, ok = storage.As[storage.Activator](p)
	assert.False(t, ok, "the fake has no Activator")

	px := proxy{Pool: p, has: map[reflect.Type]bool{reflect.TypeFor[storage.Resizer](): true}}
	_, ok = storage.As[storage.Resizer](px)
	assert.True(t, ok, "reported")
	c, ok := storage.As[storage.Cloner](px)
	assert.False(t, ok, "implemented but not reported")
	assert.Nil(t, c)
}
