# tls-setup: etcd's hack/tls-setup, rebuilt. `make` makes what is stale (by content) and never the CA by accident.
# See README.md for every target and variable.

CONFIG_DIR   ?= config
CERTS_DIR    ?= certs
ETCD_MEMBERS ?= etcd1 etcd2 etcd3
PROXIES      ?= proxy1
NODE         ?= node

# cfssl-shaped fronts, so rules pasted from hack/tls-setup or Calico's docs keep working:
#   $(CFSSL) gencert -ca certs/ca.pem -ca-key certs/ca-key.pem -config config/ca-config.json config/req-x.json | $(JSON) -bare certs/x
CFSSL = $(NODE) dist/cfssl.js
JSON  = $(NODE) dist/bare.js

TLS  = $(NODE) dist/tls.js
TREE = --config-dir '$(CONFIG_DIR)' --certs-dir '$(CERTS_DIR)' --members '$(ETCD_MEMBERS)' --proxies '$(PROXIES)'

# npm writes node_modules/.package-lock.json on every install: it stands for "dependencies installed".
DEPS    = node_modules/.package-lock.json
BUILT   = dist/.built
SOURCES = $(shell find scripts -name '*.ts') build.mjs tsconfig.json

# Under `make -n`, certificate recipes are shown only when the planner finds something stale; a real run always
# asks the planner (one Node process), which makes exactly what is stale.
DRYRUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
stale   = $(shell $(TLS) plan --names $(TREE) $(1) 2>/dev/null)
define when_stale
$(if $(DRYRUN),$(if $(strip $(call stale,$(2))),$(1)),$(1))
endef

.PHONY: all ca req rotate plan clean distclean build deps test bench FORCE
.DEFAULT_GOAL := all

# all = ca + req, in one process (the CA first when it is needed)
all: $(BUILT)
	$(call when_stale,$(TLS) build $(TREE))

ca: $(BUILT)
	$(call when_stale,$(TLS) build --ca-only $(TREE),--ca-only)

req: ca
	$(call when_stale,$(TLS) build $(TREE))

# One certificate (and the CA if it is missing): make certs/calico-node.pem
$(CERTS_DIR)/%.pem $(CERTS_DIR)/%.csr: $(BUILT) FORCE
	$(call when_stale,$(TLS) build $(TREE) --file '$@',--file '$@')

# hack/tls-setup's old behaviour: a new CA, new keys and new certificates for everything.
rotate: $(BUILT)
	@echo "rotate: making a NEW CA; every certificate is re-issued and everything that trusted the old CA must be updated"
	$(TLS) build --rotate $(TREE)

# What `make` would do, and why.
plan: $(BUILT)
	@$(TLS) plan $(TREE)

clean:
	rm -rf '$(CERTS_DIR)'

distclean: clean
	rm -rf dist node_modules

deps: $(DEPS)
build: $(BUILT)

$(DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILT): $(DEPS) $(SOURCES)
	$(NODE) build.mjs
	@touch $@

# The tests need cfssl, openssl and etcd; tests/tools.sh installs what is missing (apt-get as root).
test: $(BUILT)
	bash tests/tools.sh
	npx tsc --noEmit -p .
	npx jest --ci

# etcd: RBAC users and roles from the configs, and revocation (README "etcd RBAC in five commands").
ETCD = $(NODE) dist/etcd.js
.PHONY: rbac rbac-apply revoke

# certs/etcd-rbac.sh: creates the root user, one role per user with its prefix grants, the users; enables auth last.
rbac: $(BUILT)
	$(ETCD) rbac $(TREE)

# Runs certs/etcd-rbac.sh against ENDPOINTS as the root user (certs/root.pem).
rbac-apply: rbac
	@test -n '$(ENDPOINTS)' || { echo "rbac-apply: give the etcd endpoints: make rbac-apply ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379" >&2; exit 1; }
	@test -f '$(CERTS_DIR)/root.pem' || { echo "rbac-apply: $(CERTS_DIR)/root.pem does not exist; run make first" >&2; exit 1; }
	ETCDCTL_ENDPOINTS='$(ENDPOINTS)' ETCDCTL_CACERT='$(CERTS_DIR)/ca.pem' ETCDCTL_CERT='$(CERTS_DIR)/root.pem' ETCDCTL_KEY='$(CERTS_DIR)/root-key.pem' sh '$(CERTS_DIR)/etcd-rbac.sh'

# Revokes certs/NAME.pem and writes certs/crl.pem; without NAME, refreshes the CRL (new thisUpdate/nextUpdate).
revoke: $(BUILT)
	$(ETCD) revoke $(TREE) $(if $(NAME),'$(NAME)')

FORCE:
