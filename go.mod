module github.com/virtplane/virtplane

go 1.26
