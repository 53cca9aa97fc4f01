package builtin

import (
	"embed"
	"fmt"

	"github.com/virtplane/virtplane"
	"github.com/virtplane/virtplane/scripts"
)

//go:embed files
var files embed.FS

// Names of the built-in scripts.
const (
	BIRDRouteReflector = "bird-route-reflector"
	DBaaS              = "dbaas"
)

func read(name string) (string, error) {
	b, err := files.ReadFile("files/" + name)
	if err != nil {
		return "", virtplane.Errorf(virtplane.ErrNotFound, "built-in file %q", name)
	}
	return string(b), nil
}

// Scripts returns the built-in scripts owned by owner (the operator's
// account) and visible to everyone.
func Scripts(owner string) ([]scripts.Script, error) {
	var out []scripts.Script
	for _, name := range []string{BIRDRouteReflector, DBaaS} {
		s, err := Script(name, owner)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Script returns one built-in script by name.
func Script(name, owner string) (scripts.Script, error) {
	ipv4 := `((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])`
	ident := `[a-z_][a-z0-9_]{0,62}`
	var s scripts.Script
	switch name {
	case BIRDRouteReflector:
		body, err := read("bird-route-reflector.sh")
		if err != nil {
			return s, err
		}
		s = scripts.Script{
			Name: name, Description: "Installs BIRD 2 and configures it as the iBGP route reflector of the IP fabric (Debian).",
			Kind: scripts.Shell, Body: body,
			Params: []scripts.Param{
				{Name: "ASN", Type: scripts.Int, Required: true, Min: 1, Max: 4294967295, Description: "fabric autonomous system"},
				{Name: "ROUTER_ID", Type: scripts.String, Required: true, Pattern: ipv4, Description: "router id (IPv4)"},
				{Name: "CLUSTER_ID", Type: scripts.String, Pattern: ipv4, Description: "cluster id (IPv4, default: router id)"},
				{Name: "CLIENTS", Type: scripts.String, Required: true, Pattern: `[0-9a-fA-F.:]+([ ,]+[0-9a-fA-F.:]+)*`, MaxLength: 8192, Description: "client neighbours"},
				{Name: "BIRD_CONF", Type: scripts.String, Default: "/etc/bird/bird.conf", Pattern: `/[A-Za-z0-9_./-]+`},
				{Name: "INSTALL", Type: scripts.Bool, Default: "true", Description: "install bird2 with apt-get and (re)load it"},
			},
			Targets: scripts.TargetFilter{AllOf: []string{"debian"}},
		}
	case DBaaS:
		body, err := read("dbaas.sh")
		if err != nil {
			return s, err
		}
		notice, err := read("dbaas.notice.tmpl")
		if err != nil {
			return s, err
		}
		s = scripts.Script{
			Name: name, Description: "Installs PostgreSQL or MariaDB, creates a database and mails its connection details.",
			Kind: scripts.Shell, Body: body, Notice: notice,
			Params: []scripts.Param{
				{Name: "ENGINE", Type: scripts.Choice, Choices: []string{"postgresql", "mariadb"}, Default: "postgresql"},
				{Name: "DB_NAME", Type: scripts.String, Required: true, Pattern: ident},
				{Name: "DB_USER", Type: scripts.String, Required: true, Pattern: ident},
				{Name: "DB_PASSWORD", Type: scripts.Password, Generate: 24, MaxLength: 128},
				{Name: "LISTEN", Type: scripts.String, Default: "*", Pattern: `[0-9a-fA-F.:*]+`},
			},
			Targets: scripts.TargetFilter{AllOf: []string{"debian"}},
		}
	default:
		return s, virtplane.Errorf(virtplane.ErrNotFound, "built-in script %q", name)
	}
	s.ID, s.Owner, s.Visibility = "builtin:"+name, owner, scripts.Everyone
	if err := s.Validate(); err != nil {
		return scripts.Script{}, fmt.Errorf("built-in script %q: %w", name, err)
	}
	return s, nil
}
