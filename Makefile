# virtplane — see README.md. Every target runs as root on Debian 12.
SHELL := /bin/bash
GO ?= go
ENV := hack/env
# The Ceph driver and its smoke test need cgo and Debian's librados 16.2.
TEST_TAGS ?= ceph pacific
TEST_TIMEOUT ?= 25m
STATICCHECK_VERSION := v0.8.2
BIN := $(CURDIR)/bin

.PHONY: run test test-unit test-real test-terraform bench lint build vpt env env-down env-clean \
	env-libvirt env-guest env-domaintype env-lxd env-ssh env-postgres env-ceph env-lvm env-iscsi env-bgp env-net env-cgo env-terraform env-prometheus env-zabbix env-chromium env-demo env-ldap

## run: start the reference daemon on its embedded default (SQLite in ./var, local libvirtd or a simulated node, the demo image)
run:
	@demo=""; if $(ENV)/guest.sh >&2 && $(ENV)/demo.sh >&2; then demo=$$(. $${VIRTPLANE_TESTENV:-/var/tmp/virtplane-testenv}/demo.env && echo "$$IMAGE"); \
	else echo "no demo image (hack/env/demo.sh failed): the first image is an empty disk" >&2; fi; \
	$(GO) run ./daemon/cmd/virtplaned serve --data ./var $${demo:+--demo-image "$$demo"}

## test: set up every real component (idempotent), then run every test (the Terraform provider's module too)
test: env
	@rc=0; $(GO) test -tags '$(TEST_TAGS)' -count=1 -timeout $(TEST_TIMEOUT) ./... || rc=$$?; \
	$(MAKE) --no-print-directory test-terraform || rc=$$?; \
	$(ENV)/clean.sh; exit $$rc

## test-terraform: the Terraform provider's tests (its own module), acceptance tests with the real Terraform CLI of env-terraform
test-terraform: env-terraform
	cd terraform-provider-virtplane && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## vpt: build the operator CLI into bin/vpt
vpt:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/vpt ./daemon/cmd/vpt

## test-unit: fast inner loop; tests that need a real component are skipped (-short)
test-unit:
	CGO_ENABLED=0 $(GO) test -short -count=1 ./...

## bench: the headline benchmarks, each beside its reference (real-component ones need `make env`)
bench: env
	$(GO) test -tags '$(TEST_TAGS)' -run '^$$' -bench . -benchmem -benchtime=$${BENCHTIME:-1s} -timeout 60m ./...
	@$(ENV)/clean.sh

## lint: gofmt, go vet (with and without the ceph tag), staticcheck; env-cgo installs the C
## headers the ceph-tagged vet compiles against, so lint works on a fresh machine
lint: $(BIN)/staticcheck env-cgo
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	CGO_ENABLED=0 $(GO) vet ./...
	$(GO) vet -tags '$(TEST_TAGS)' ./...
	CGO_ENABLED=0 $(BIN)/staticcheck ./...
	cd terraform-provider-virtplane && $(GO) vet ./... && CGO_ENABLED=0 $(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## build: the module builds without cgo
build:
	CGO_ENABLED=0 $(GO) build ./...

## env: install and start every real component the tests use (idempotent)
env: env-libvirt env-guest env-domaintype env-lxd env-ssh env-postgres env-ceph env-lvm env-iscsi env-bgp env-net env-cgo env-terraform env-prometheus env-zabbix env-chromium env-demo env-ldap

env-libvirt env-guest env-domaintype env-lxd env-ssh env-postgres env-ceph env-lvm env-iscsi env-bgp env-net env-cgo env-terraform env-prometheus env-zabbix env-chromium env-demo env-ldap: env-%:
	@$(ENV)/$*.sh

# The demo image is made of the test guest's kernel and initramfs.
env-demo: env-guest

# The domain type is decided by booting the test guest on the libvirtd.
env-domaintype: env-libvirt env-guest

## env-down: stop the daemons `make env` started
env-down:
	@$(ENV)/down.sh

## env-clean: remove namespaces, domains and containers a crashed test left (names vpt-*)
env-clean:
	@$(ENV)/clean.sh
