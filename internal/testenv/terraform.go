package testenv

import (
	"os"
	"testing"
)

// Terraform is a Terraform CLI built by `make env-terraform`.
type Terraform struct {
	Bin     string // the terraform binary
	Version string // 1.5.7
}

// RequireTerraform returns the Terraform CLI `make env-terraform` built
// (from the Go module proxy, once; cached in the state directory).
func RequireTerraform(t testing.TB) Terraform {
	t.Helper()
	kv := component(t, "terraform", "env-terraform", func(kv map[string]string) error {
		if err := need(kv, "BIN", "VERSION"); err != nil {
			return err
		}
		_, err := os.Stat(kv["BIN"])
		return err
	})
	return Terraform{Bin: kv["BIN"], Version: kv["VERSION"]}
}
