package firewall

import (
	"strconv"
	"strings"
)

// ParsePortRange parses a port range as users write it: "25/tcp",
// "6000-6010/udp". The protocol is required: a blocked port without one
// would have to guess.
func ParsePortRange(s string) (PortRange, error) {
	ports, proto, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return PortRange{}, invalid("port range %q: want PORT/tcp, PORT/udp or FIRST-LAST/tcp|udp", s)
	}
	first, last, isRange := strings.Cut(ports, "-")
	a, err := parsePort(first)
	if err != nil {
		return PortRange{}, invalid("port range %q: %v", s, err)
	}
	r := PortRange{Protocol: proto, First: a}
	if isRange {
		b, err := parsePort(last)
		if err != nil {
			return PortRange{}, invalid("port range %q: %v", s, err)
		}
		if b < a {
			return PortRange{}, invalid("port range %q ends before it starts", s)
		}
		if b != a {
			r.Last = b
		}
	}
	return r, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, errPort(s)
	}
	return uint16(n), nil
}

type errPort string

func (e errPort) Error() string { return "port " + strconv.Quote(string(e)) + " is not 1-65535" }

// String is the range as ParsePortRange reads it.
func (r PortRange) String() string {
	s := strconv.Itoa(int(r.First))
	if r.Last != 0 && r.Last != r.First {
		s += "-" + strconv.Itoa(int(r.Last))
	}
	return s + "/" + r.Protocol
}
