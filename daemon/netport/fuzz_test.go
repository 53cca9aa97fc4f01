package netport_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/daemon/netport"
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
