package libvirt

// CountElements exposes countElements to the external tests.
var CountElements = countElements
