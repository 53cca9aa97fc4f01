package libvirt

import "errors"

func virtplaneIs(err, class error) bool { return err != nil && errors.Is(err, class) }
