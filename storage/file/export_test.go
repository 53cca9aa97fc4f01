package file

import "io"

// ParseQcow2Header exposes the header parser to the fuzz target.
func ParseQcow2Header(r io.ReaderAt) (qcow2Header, error) { return parseQcow2Header(r) }
