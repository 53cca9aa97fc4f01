package main

import (
	"testing"
)

func TestParseStorages(t *testing.T) {
	got, err := parseStorages([]string{"local:file:/var/lib/vpt,default=true", "san:san-iscsi:iqn.2026-12.io.x:t1,portal=10.0.0.5:3260,tid=2,dir=/srv/luns,tags=shared+ssd,disk_overcommit=2,enabled=false"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "/var/lib/vpt" || !got[0].Default || got[0].Options != nil {
		t.Fatalf("first: %+v", got)
	}
	s := got[1]
	if s.Path != "iqn.2026-12.io.x:t1" || s.Options["portal"] != "10.0.0.5:3260" || s.Options["tid"] != "2" || s.Options["dir"] != "/srv/luns" ||
		len(s.Tags) != 2 || s.Tags[1] != "ssd" || s.DiskOvercommit != 2 || s.Enabled == nil || *s.Enabled {
		t.Fatalf("second: %+v", s)
	}
	for _, bad := range []string{"noDriver", "a:file:/x,flag", "a:file:/x,default=maybe", "a:file:/x,disk_overcommit=lots"} {
		if _, err := parseStorages([]string{bad}); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
