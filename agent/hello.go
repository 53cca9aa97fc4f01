package agent

import (
	"net/http"
	"reflect"
	"sort"

	"github.com/virtplane/virtplane"
)

// Hello is the agent's answer to the version handshake.
type Hello struct {
	// Version is the agent's software version, Protocol its protocol.
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
	// Accepted says whether the agent takes calls from the client that
	// asked (same protocol, same version when both name one).
	Accepted     bool         `json:"accepted"`
	Capabilities Capabilities `json:"capabilities"`
}

// Capabilities say what the node offers. Interface names are those of
// packages vmm and storage without the package ("Migrator", "Cloner").
type Capabilities struct {
	// VMM lists "Driver" when the node has a hypervisor driver, and the
	// optional vmm interfaces it implements.
	VMM []string `json:"vmm,omitempty"`
	// Pools lists, per open pool, "Pool" and the optional storage
	// interfaces it implements.
	Pools map[string][]string `json:"pools,omitempty"`
	// PoolDrivers are the drivers OpenPool can open.
	PoolDrivers []string `json:"pool_drivers,omitempty"`
	Ports       bool     `json:"ports,omitempty"`
	Exec        bool     `json:"exec,omitempty"`
	Upload      bool     `json:"upload,omitempty"`
	// Extra are the extra services mounted under /v1/x/.
	Extra []string `json:"extra,omitempty"`
}

type helloRequest struct {
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
}

// serveHello answers the handshake whatever the caller's version, so that
// a mismatched controller learns which agent it met.
func (s *Server) serveHello(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, virtplane.Errorf(virtplane.ErrInvalidArgument, "agent: %s /v1/hello: the handshake is POST", r.Method))
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var in helloRequest
	if err := decodeJSON(body, &in); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Hello{Version: s.cfg.Version, Protocol: Protocol,
		Accepted:     compatible(s.cfg.Version, Protocol, in.Version, in.Protocol),
		Capabilities: s.capabilities()})
}

func (s *Server) capabilities() Capabilities {
	c := Capabilities{Ports: s.node.Ports != nil, Exec: s.node.Exec != nil, Upload: s.node.UploadDir != ""}
	if s.node.VMM != nil {
		c.VMM = append([]string{"Driver"}, implemented(s.node.VMM, vmmCapabilities())...)
	}
	s.poolsMu.RLock()
	c.Pools = make(map[string][]string, len(s.pools))
	for name, p := range s.pools {
		c.Pools[name] = p.capabilities()
	}
	s.poolsMu.RUnlock()
	for d := range s.openers {
		c.PoolDrivers = append(c.PoolDrivers, d)
	}
	sort.Strings(c.PoolDrivers)
	for name := range s.extra {
		c.Extra = append(c.Extra, name)
	}
	sort.Strings(c.Extra)
	return c
}

// reporter is vmm.CapabilityReporter and storage.CapabilityReporter (the
// same method).
type reporter interface {
	HasCapability(reflect.Type) bool
}

// implemented returns the names of the interfaces in caps that v has,
// sorted: the ones it implements and, when v stands for another driver
// (an agent client served again), reports.
func implemented(v any, caps map[string]reflect.Type) []string {
	var out []string
	for name, t := range caps {
		if has(v, t) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func has(v any, t reflect.Type) bool {
	if !reflect.TypeOf(v).Implements(t) {
		return false
	}
	if r, ok := v.(reporter); ok {
		return r.HasCapability(t)
	}
	return true
}

// capabilityName returns the name of t in caps.
func capabilityName(caps map[string]reflect.Type, t reflect.Type) (string, bool) {
	for name, c := range caps {
		if c == t {
			return name, true
		}
	}
	return "", false
}
