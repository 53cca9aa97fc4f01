package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder stands in for *testing.T to see whether Missing fails or skips.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = args[0].(string) }
func (r *recorder) Skip(args ...any)  { r.skip = args[0].(string) }

func TestMissingFailsInCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{}
	Missing(r, "libvirtd", "env-libvirt", os.ErrNotExist)
	if r.fatal == "" || r.skip != "" {
		t.Fatalf("under CI=true Missing must fail: fatal=%q skip=%q", r.fatal, r.skip)
	}
	if !strings.Contains(r.fatal, "make env-libvirt") {
		t.Fatalf("message does not name the make target: %q", r.fatal)
	}

	t.Setenv("CI", "")
	r = &recorder{}
	Missing(r, "libvirtd", "env-libvirt", os.ErrNotExist)
	if r.skip == "" || r.fatal != "" {
		t.Fatalf("outside CI Missing must skip: fatal=%q skip=%q", r.fatal, r.skip)
	}
}

func TestLoadParsesStateFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VIRTPLANE_TESTENV", dir)
	content := "# comment\nURI=qemu:///system\n\nSOCKET=/run/x=y\n"
	if err := os.WriteFile(filepath.Join(dir, "libvirt.env"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	kv, err := load("libvirt")
	if err != nil {
		t.Fatal(err)
	}
	if kv["URI"] != "qemu:///system" || kv["SOCKET"] != "/run/x=y" || len(kv) != 2 {
		t.Fatalf("load = %v", kv)
	}
	if err := need(kv, "URI", "MISSING"); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Fatalf("need did not name the missing key: %v", err)
	}
}
