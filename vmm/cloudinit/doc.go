// Package cloudinit writes and reads cloud-init NoCloud seed images: ISO 9660
// volumes labelled "cidata" with the files user-data, meta-data and
// (optionally) network-config, written in pure Go so that no genisoimage or
// xorriso is needed on the host. Names are recorded in a Joliet tree (which
// Linux prefers) and in a plain ISO 9660 tree with 8.3 names for readers
// without Joliet.
//
// Example:
//
//	f, _ := os.Create("/var/lib/virtplane/seed/web-1.iso")
//	err := cloudinit.WriteISO(f, cloudinit.Seed{
//		UserData: "#cloud-config\npassword: s3cret\n",
//		MetaData: "instance-id: web-1\nlocal-hostname: web-1\n",
//	})
package cloudinit
