package firewall_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/firewall"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]firewall.PortRange{
		"25/tcp":        {Protocol: "tcp", First: 25},
		" 53/udp ":      {Protocol: "udp", First: 53},
		"6000-6010/udp": {Protocol: "udp", First: 6000, Last: 6010},
		"80-80/tcp":     {Protocol: "tcp", First: 80},
		"1-65535/tcp":   {Protocol: "tcp", First: 1, Last: 65535},
	} {
		got, err := firewall.ParsePortRange(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		again, err := firewall.ParsePortRange(got.String())
		require.NoError(t, err)
		assert.Equal(t, got, again, "String is what ParsePortRange reads")
	}
	for _, in := range []string{"", "25", "25/icmp", "/tcp", "0/tcp", "65536/tcp", "-5/tcp", "10-5/tcp", "a-b/udp", "25/TCP", "5-/tcp"} {
		_, err := firewall.ParsePortRange(in)
		assert.ErrorIs(t, err, virtplane.ErrInvalidArgument, "%q", in)
	}
}

func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"25/tcp", "6000-6010/udp", "0/tcp", "9-1/udp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := firewall.ParsePortRange(s)
		if err != nil {
			return
		}
		p := firewall.Policy{Port: "vnet0", MAC: []byte{2, 0, 0, 0, 0, 1}, BlockIn: []firewall.PortRange{r}}
		if err := p.Validate(); err != nil {
			t.Fatalf("%q parsed to %+v, which the policy refuses: %v", s, r, err)
		}
		again, err := firewall.ParsePortRange(r.String())
		if err != nil || again != r {
			t.Fatalf("%q: %+v prints as %q, which reads back as %+v, %v", s, r, r.String(), again, err)
		}
	})
}
