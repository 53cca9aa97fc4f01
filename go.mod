module github.com/virtplane/virtplane

go 1.26

require (
	github.com/ceph/go-ceph v0.40.0
	github.com/stretchr/testify v1.12.1
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
