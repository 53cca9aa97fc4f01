package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	netport "github.com/virtplane/virtplane/network/port"
	"github.com/virtplane/virtplane/storage"
	sfake "github.com/virtplane/virtplane/storage/fake"
	vfake "github.com/virtplane/virtplane/vmm/fake"
)

// FuzzServeRequest sends arbitrary calls to a server over fakes: every
// answer is a success or a JSON error of a known class, and no input
// reaches the server's panic guard.
func FuzzServeRequest(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/v1/vmm/Create", `{"Spec":{"Name":"vpt-a","VCPUs":1,"MemoryMiB":128}}`},
		{"POST", "/v1/vmm/Start", `{"Name":"vpt-a"}`},
		{"POST", "/v1/vmm/Migrate", `{"Name":"vpt-a","Target":{"URI":"fake://x"}}`},
		{"POST", "/v1/vmm/Events", `{}`},
		{"POST", "/v1/vmm/SetLimits", `{"Name":"vpt-a","Limits":{"Disks":{"vda":{"ReadIOPS":1}}}}`},
		{"POST", "/v1/pool/Create", `{"Pool":"p","Spec":{"Name":"v","Size":1048576}}`},
		{"POST", "/v1/pool/Clone", `{"Pool":"p","Src":"v","Dst":"w","Mode":1}`},
		{"POST", "/v1/pools/Open", `{"Spec":{"Name":"q","Driver":"file","Path":"/nonexistent/x"}}`},
		{"POST", "/v1/ports/Setup", `{"Spec":{"name":"vpt1","vm_id":"v","mac":"02:00:00:00:00:01","bridge":"br0"}}`},
		{"POST", "/v1/facts/Get", `{}`},
		{"POST", "/v1/files/Remove", `{"Name":"x"}`},
		{"PUT", "/v1/files/x", `data`},
		{"POST", "/v1/hello", `{"version":"v","protocol":1}`},
		{"POST", "/v1/x/none/", ``},
		{"POST", "/v1/vmm/Get", `{"Name":"` + strings.Repeat("\\u0000", 10) + `"}`},
	} {
		f.Add(seed.method, seed.path, []byte(seed.body))
	}
	s, err := NewServer(ServerConfig{Version: "v", Node: Node{
		VMM:       vfake.New(),
		Pools:     map[string]storage.Pool{"p": sfake.New("p", nil)},
		Ports:     netport.NewFake(),
		Exec:      &sfake.Executor{},
		UploadDir: f.TempDir(),
	}})
	if err != nil {
		f.Fatal(err)
	}
	classes := classNames()
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if method != "POST" && method != "PUT" {
			method = "POST"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://agent", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path = path
		req.Header.Set(headerProtocol, "1")
		req.Header.Set(headerVersion, "v")
		req.Header.Set(headerTimeout, "20ms")
		rec := httptest.NewRecorder()
		served := make(chan struct{})
		go func() { defer close(served); s.ServeHTTP(rec, req) }()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s %q: no answer 10 s after a 20 ms deadline", method, path, body)
		}
		if rec.Code == http.StatusOK {
			return
		}
		var we wireError
		if err := json.Unmarshal(rec.Body.Bytes(), &we); err != nil {
			t.Fatalf("%s %s: answer %d is not a JSON error: %q", method, path, rec.Code, rec.Body.String())
		}
		if we.Message == "" {
			t.Fatalf("%s %s: error without a message: %q", method, path, rec.Body.String())
		}
		if we.Class != "" && classes[we.Class] == nil {
			t.Fatalf("%s %s: unknown class %q", method, path, we.Class)
		}
		if strings.HasPrefix(we.Message, "agent: internal error") {
			t.Fatalf("%s %s: the request panicked the server", method, path)
		}
	})
}

// TestClassNamesAreDistinct: every class has one wire name, and back.
func TestClassNamesAreDistinct(t *testing.T) {
	seen := map[error]bool{}
	for name, c := range classNames() {
		if seen[c] {
			t.Errorf("class %v named twice", c)
		}
		seen[c] = true
		if className(c) != name {
			t.Errorf("className(%v) = %q, want %q", c, className(c), name)
		}
	}
	if len(seen) != 11 {
		t.Errorf("%d classes on the wire, the root package has 11", len(seen))
	}
}
