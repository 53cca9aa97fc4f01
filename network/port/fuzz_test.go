package port_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/network/nettest"
	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/network/routing"
	"github.com/virtplane/virtplane/network/vxlan"
)

// FuzzSpec: any spec read back from a state file or a store record is
// either refused with ErrInvalidArgument or valid for the firewall and the
// shaper as well, and survives a JSON round trip unchanged.
func FuzzSpec(f *testing.F) {
	for _, seed := range []string{
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","bridge":"vptbr0","addresses":["192.0.2.1","2001:db8::1"]}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","bridge":"vptbr0","in_kbit":8,"out_kbit":100000000}`,
		`{"name":"..","vm_id":"v1","mac":"02:00:00:00:00:01","bridge":"b"}`,
		`{"name":"vptabc","vm_id":"v1","mac":"ff:ff:ff:ff:ff:ff","bridge":"b"}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","bridge":"b","block_out":[{"Protocol":"tcp","First":25}]}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","bridge":"b","addresses":["::ffff:1.2.3.4"]}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"routed","bridge":"","gateway_v4":"192.0.2.1","gateway_v6":"fe80::1","addresses":["192.0.2.10"]}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"routed","bridge":"","gateway_v4":"192.0.2.10","addresses":["192.0.2.10"]}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"vxlan","bridge":"","vxlan":{"vni":100,"local":"10.0.0.1","peers":["10.0.0.3","10.0.0.2","10.0.0.1"]}}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"vxlan","bridge":"vxbr7","vxlan":{"vni":100,"local":"10.0.0.1"}}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"vxlan","bridge":"","vxlan":{"vni":16777216,"local":"10.0.0.1"}}`,
		`{"name":"vptabc","vm_id":"v1","mac":"02:00:00:00:00:01","mode":"mesh","bridge":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s netport.Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		err := s.Normalize().Validate()
		if err != nil {
			if !errors.Is(err, virtplane.ErrInvalidArgument) {
				t.Fatalf("invalid spec refused without ErrInvalidArgument: %v", err)
			}
			return
		}
		if err := s.Policy().Validate(); err != nil {
			t.Fatalf("valid spec, invalid firewall policy: %v", err)
		}
		if err := s.Limit().Validate(); err != nil {
			t.Fatalf("valid spec, invalid limit: %v", err)
		}
		n := s.Normalize()
		switch n.Mode {
		case netport.ModeRouted:
			if _, err := routing.New(nettest.NewRecorder(), routing.Config{GatewayV4: n.GatewayV4, GatewayV6: n.GatewayV6}); err != nil {
				t.Fatalf("valid routed spec, gateways the router refuses: %v", err)
			}
		case netport.ModeVXLAN:
			d, err := vxlan.Desired(vxlan.Underlay{Local: n.VXLAN.Local}, []vxlan.Network{{VNI: n.VXLAN.VNI, Ports: []string{n.Name}}}, true)
			if err != nil {
				t.Fatalf("valid vxlan spec, network vxlan refuses: %v", err)
			}
			if d.Bridges[0].Name != n.Bridge {
				t.Fatalf("vxlan spec on bridge %q, its network on %q", n.Bridge, d.Bridges[0].Name)
			}
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var back netport.Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !back.Equal(n) || !n.Equal(n.Normalize()) {
			t.Fatalf("round trip changed the spec: %+v -> %+v", n, back)
		}
	})
}
