package model_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/model"
)

func TestClusterValidateNetwork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     model.Cluster
		field string // "" when valid
	}{
		{"bridge", model.Cluster{NetworkMode: "bridge", Bridge: "br0"}, ""},
		{"empty mode is bridge", model.Cluster{}, ""},
		{"routed", model.Cluster{NetworkMode: "routed"}, ""},
		{"vxlan", model.Cluster{NetworkMode: "vxlan", VNI: 100}, ""},
		{"vxlan max vni", model.Cluster{NetworkMode: "vxlan", VNI: model.MaxVNI}, ""},
		{"unknown mode", model.Cluster{NetworkMode: "evpn"}, "network_mode"},
		{"vxlan without vni", model.Cluster{NetworkMode: "vxlan"}, "vni"},
		{"vxlan vni too large", model.Cluster{NetworkMode: "vxlan", VNI: model.MaxVNI + 1}, "vni"},
		{"vxlan negative vni", model.Cluster{NetworkMode: "vxlan", VNI: -1}, "vni"},
		{"vni in bridge mode", model.Cluster{NetworkMode: "bridge", VNI: 5}, "vni"},
		{"bridge in routed mode", model.Cluster{NetworkMode: "routed", Bridge: "br0"}, "bridge"},
		{"bridge in vxlan mode", model.Cluster{NetworkMode: "vxlan", VNI: 5, Bridge: "br0"}, "bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.ValidateNetwork()
			if tc.field == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, virtplane.ErrInvalidArgument)
			var fe *model.FieldError
			require.True(t, errors.As(err, &fe))
			assert.Equal(t, tc.field, fe.Field)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestNodeVTEP(t *testing.T) {
	a, err := model.Node{Name: "n1", VTEPAddress: "10.99.0.1"}.VTEP()
	require.NoError(t, err)
	assert.Equal(t, "10.99.0.1", a.String())
	_, err = model.Node{Name: "n1", VTEPAddress: "2001:db8::1"}.VTEP()
	assert.NoError(t, err)
	for _, bad := range []string{"", "nope", "0.0.0.0", "239.1.1.1", "fe80::1%eth0", "::ffff:10.0.0.1", "10.0.0.1/24"} {
		_, err := model.Node{Name: "n1", VTEPAddress: bad}.VTEP()
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, bad)
		var fe *model.FieldError
		if assert.True(t, errors.As(err, &fe), bad) {
			assert.Equal(t, "vtep_address", fe.Field)
		}
	}
}
