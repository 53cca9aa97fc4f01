package hostnet

import "golang.org/x/sys/unix"

const (
	errEOPNOTSUPP = unix.EOPNOTSUPP
	errENOTSUP    = unix.ENOTSUP
	errENODEV     = unix.ENODEV
	errEEXIST     = unix.EEXIST
)
