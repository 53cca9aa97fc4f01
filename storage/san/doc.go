// Package san puts volumes on a SAN LUN, in two ways:
//
//   - ISCSIPool: each volume is a whole LUN, handed to QEMU as an iSCSI
//     network disk (Attachment kind "iscsi", iscsi://portal/iqn/lun) and
//     reached by QEMU's libiscsi initiator. LUNs are made by a
//     LUNProvisioner, the array's management API; TGT drives Linux tgt.
//
//   - NewSharedLVM: one LUN seen by every node (iSCSI or FC, once it is a
//     block device on the node) carries a VG; volumes are LVs through
//     storage/lvm, activated exclusively on the node that runs the VM.
//
//     pool, err := san.NewISCSI(san.ISCSIConfig{Name: "san1", Portal: "10.0.0.5:3260",
//     Target: "iqn.2026-01.com.example:array1", Provisioner: arrayAPI})
//     v, err := pool.Create(ctx, storage.VolumeSpec{Name: "vm-42-data", Size: 100 << 30})
//     // v.Attachment.URL == "iscsi://10.0.0.5:3260/iqn.2026-01.com.example:array1/3"
//
// Testing note: the CI machine has tgt but no kernel iSCSI initiator and no
// device-mapper, so the LUN mode is tested end to end with tgt and
// qemu-img's libiscsi, while the LVM-on-LUN mode runs on a block device path
// (the loop device under the test VG, metadata-only lvm2) plus golden files of
// the commands that initialise a LUN.
package san
