// Package builtin ships virtplane's own scripts as real files embedded with
// embed.FS: a BIRD 2 route reflector installer for the IP fabric mode
// (bird-route-reflector.sh: apt-get install bird2, writes an iBGP route
// reflector bird.conf for the given ASN, router id and client neighbours,
// checked with bird -p before it replaces the old one) and a database as a
// service example (dbaas.sh: installs PostgreSQL or MariaDB, creates a
// database and its owner with a generated, hidden password, and mails the
// connection details through the notice template dbaas.notice.tmpl).
//
//	all, err := builtin.Scripts("operator")
//	rr, err := builtin.Script(builtin.BIRDRouteReflector, "operator")
//	res, err := executor.Run(ctx, scripts.RunRequest{Script: rr, User: "operator",
//		Args: map[string]string{"ASN": "65000", "ROUTER_ID": "10.0.0.1", "CLIENTS": "10.0.0.2,10.0.0.3"},
//		Targets: reflectors})
package builtin
