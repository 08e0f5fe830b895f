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
# q: a value single-quoted for the shell, a ' inside written as '\'' (so no variable or file name reaches a shell unquoted)
q    = '$(subst ','\'',$(1))'
# MEMBER_CERTS=split|combined (default: etcd-cluster.json's "member_certs", else combined; README "Split member certificates")
# Keys in a PKCS#11 token (README "CA keys in an HSM (PKCS#11)"), each recorded in CERTS_DIR/.tls-setup/ by the first run
# that uses it: CA_KEY the key of the CA that signs the leaves (the root's in root mode, the intermediate's in
# intermediate mode), ROOT_KEY the root's in intermediate mode, NEXT_CA_KEY the new CA's at make ca-rotate-start;
# PKCS11_MODULE: the token's module. The PIN only from the environment (PKCS11_PIN or PKCS11_PIN_FILE): never on
# make's command line, where ps and the shell history would show it.
PKCS11_KEY = $(if $(CA_KEY),--ca-key $(call q,$(CA_KEY))) $(if $(ROOT_KEY),--root-key $(call q,$(ROOT_KEY))) $(if $(PKCS11_MODULE),--pkcs11-module $(call q,$(PKCS11_MODULE)))
ifeq ($(origin PKCS11_PIN),command line)
$(error PKCS11_PIN: not on make's command line (ps and the shell history show it); export PKCS11_PIN, or put the PIN in a file and set PKCS11_PIN_FILE)
endif
$(foreach v,CA_KEY ROOT_KEY NEXT_CA_KEY,$(if $(findstring pin-value=,$($(v))),$(error $(v): a PIN is never written in the URI (make would echo it); export PKCS11_PIN, or put the PIN in a file and set PKCS11_PIN_FILE)))
TREE = --config-dir $(call q,$(CONFIG_DIR)) --certs-dir $(call q,$(CERTS_DIR)) --members $(call q,$(ETCD_MEMBERS)) --proxies $(call q,$(PROXIES))$(if $(MEMBER_CERTS), --member-certs $(call q,$(MEMBER_CERTS))) $(PKCS11_KEY)

# npm writes node_modules/.package-lock.json on every install: it stands for "dependencies installed".
DEPS    = node_modules/.package-lock.json
BUILT   = dist/.built
SOURCES = $(shell find scripts -name '*.ts') scripts/start.cjs build.mjs tsconfig.json

# Under `make -n`, certificate recipes are shown only when the planner finds something stale; a real run always
# asks the planner (one Node process), which makes exactly what is stale.
DRYRUN := $(findstring n,$(firstword -$(MAKEFLAGS)))
stale   = $(shell $(TLS) plan --names $(TREE) $(1) 2>/dev/null || echo unknown)
define when_stale
$(if $(DRYRUN),$(if $(strip $(call stale,$(2))),$(1)),$(1))
endef

.PHONY: all ca req rotate rotate-intermediate plan prune clean distclean build deps test help FORCE
.DEFAULT_GOAL := all

# `make help` prints the lines starting with "#> " below, one per target (tests/core-help.test.ts checks that every
# .PHONY target has one).
#> Certificates (README "Make targets"):
#>   make / make all      make every stale certificate (the CA first if needed)

# all = ca + req, in one process (the CA first when it is needed)
all: $(BUILT)
	$(call when_stale,$(TLS) build $(TREE))

#>   make ca              the CA only, when missing or ca-csr.json changed
ca: $(BUILT)
	$(call when_stale,$(TLS) build --ca-only $(TREE),--ca-only)

#>   make req             the CA if needed, then every stale leaf certificate
req: ca
	$(call when_stale,$(TLS) build $(TREE))

# One certificate (and the CA if it is missing): make certs/calico-node.pem
#>   make certs/NAME.pem  one certificate (and the CA when it is missing)
$(CERTS_DIR)/%.pem $(CERTS_DIR)/%.csr: $(BUILT) FORCE
	$(call when_stale,$(TLS) build $(TREE) --file $(call q,$@),--file $(call q,$@))

#>   make rotate          a NEW CA, keys and certificates at once (an outage)
# hack/tls-setup's old behaviour: a new CA, new keys and new certificates for everything.
rotate: $(BUILT)
	@echo "rotate: making a NEW CA; every certificate is re-issued and everything that trusted the old CA must be updated"
	$(TLS) build --rotate $(TREE)

#>   make rotate-intermediate  new intermediate CA; every leaf re-issued
# Intermediate mode (config/intermediate-csr.json): a new intermediate key and certificate from the root, every leaf
# re-issued with its key kept; the trust file (certs/ca.pem) stays. The CRL is re-signed when there is one.
rotate-intermediate: $(BUILT)
	$(TLS) build --rotate-intermediate $(TREE)
	@if [ -f $(call q,$(CERTS_DIR)/crl.pem) ]; then $(NODE) dist/etcd.js crl $(TREE); fi

# The phased CA rotation without an outage (README "Rotating the CA"): start, rolling restart, reissue, finish,
# rolling restart. Each step prints what to restart; status reads the step from the files. NEXT_CA_KEY goes to every
# step: start records it, the others refuse it in one line rather than ignore it.
NEXT_KEY = $(if $(NEXT_CA_KEY),--next-ca-key $(call q,$(NEXT_CA_KEY)))
.PHONY: ca-rotate-start ca-rotate-reissue ca-rotate-finish ca-rotate-status
#>   make ca-rotate-start    new CA beside the old; ca.pem trusts both; NEXT_CA_KEY
ca-rotate-start: $(BUILT)
	@$(TLS) ca-rotate start $(TREE) $(NEXT_KEY)

#>   make ca-rotate-reissue  every leaf re-issued by the new CA; NEW_KEY=1, CA_KEY
ca-rotate-reissue: $(BUILT)
	@$(TLS) ca-rotate reissue $(TREE) $(NEXT_KEY) $(if $(filter-out 0 no false,$(NEW_KEY)),--new-key)
	@if [ -f $(call q,$(CERTS_DIR)/crl.pem) ]; then $(NODE) dist/etcd.js crl $(TREE); fi

#>   make ca-rotate-finish   old CA archived; ca.pem trusts the new CA only
ca-rotate-finish: $(BUILT)
	@$(TLS) ca-rotate finish $(TREE) $(NEXT_KEY)
	@if [ -f $(call q,$(CERTS_DIR)/crl.pem) ]; then $(NODE) dist/etcd.js crl $(TREE); fi

#>   make ca-rotate-status   which rotation step the tree is in, what remains
ca-rotate-status: $(BUILT)
	@$(TLS) ca-rotate status $(TREE)

#>   make plan            what make would make, and why; changes nothing
# What `make` would do, and why.
plan: $(BUILT)
	@$(TLS) plan $(TREE)

#>   make prune           remove the files of orphaned certificates (listed first)
# Removes the files of orphaned certificates (listed on every run; never removed automatically).
prune: $(BUILT)
	@$(TLS) prune $(TREE)

#>   make clean           remove the certs directory (the CA too)
clean:
	rm -rf $(call q,$(CERTS_DIR))

#>   make distclean       clean, plus dist/, node_modules/ and pkcs11/node_modules/
# (in a release, dist/ stays: it cannot be rebuilt there)
distclean: clean
	rm -rf $(if $(RELEASED),node_modules,dist node_modules) pkcs11/node_modules

#>   make deps            install the npm dependencies (npm ci)
deps: source-checkout $(DEPS)
#>   make build           build the scripts in dist/
build: $(BUILT)

# The PKCS#11 provider, only for a CA key in a token (CA_KEY=pkcs11:...; README "CA keys in an HSM (PKCS#11)"):
# node-webcrypto-p11, graphene-pk11 and the native addon pkcs11js, pinned by pkcs11/package-lock.json, installed into
# pkcs11/node_modules (npm ci there; the project's node_modules and the default make stay compiler-free). node-gyp
# compiles pkcs11js against the running Node's headers when they are installed beside it.
PKCS11_DEPS = pkcs11/node_modules/.package-lock.json
.PHONY: pkcs11-deps
#>   make pkcs11-deps     the PKCS#11 provider for CA_KEY=pkcs11:... (compiles)
pkcs11-deps: $(PKCS11_DEPS)
$(PKCS11_DEPS): pkcs11/package.json pkcs11/package-lock.json
	@for t in g++ make python3; do command -v $$t >/dev/null || { echo "pkcs11-deps: $$t is missing; pkcs11js is compiled with g++, make and python3 (apt-get install g++ make python3)" >&2; exit 1; }; done
	cd pkcs11 && d=$$($(NODE) -p 'require("path").resolve(process.execPath, "../..")') && if [ -z "$${npm_config_nodedir:-}" ] && [ -f "$$d/include/node/node.h" ]; then export npm_config_nodedir="$$d"; fi && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# A release (make release; README "Offline CA host") ships dist/ built and self-contained, marked by dist/.release,
# without sources: there nothing is installed or built, and what needs the sources says so in one line.
RELEASED := $(wildcard dist/.release)
.PHONY: release source-checkout
ifeq ($(RELEASED),)
source-checkout: ;

$(DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILT): $(DEPS) $(SOURCES)
	$(NODE) build.mjs
	@touch $@

# tls-setup-VERSION.tar.gz in RELEASE_DIR: the Makefile, CONFIG_DIR's configs (as config/), README, docs/, dist/ bundled
# with every package it loads. Needs node_modules (esbuild) here; the tarball needs only Node >= 20 and make.
RELEASE_DIR ?= .
#>   make release         a tarball for an offline CA host (RELEASE_DIR=.)
release: $(DEPS)
	@$(NODE) release.mjs --out-dir $(call q,$(RELEASE_DIR)) --config-dir $(call q,$(CONFIG_DIR))
else
release: source-checkout
source-checkout:
	@echo "make $(or $(filter test bench deps release,$(MAKECMDGOALS)),$@): needs the source checkout; $(shell cat dist/.release) is a release holding only what make and the runtime targets need" >&2; exit 1

$(BUILT):
	@echo "$(BUILT) is missing: this release is incomplete; unpack $(shell cat dist/.release).tar.gz again" >&2; exit 1
endif

#>   make test            type check and every test
#>   make help            this list
# The tests need cfssl, openssl and etcd; tests/tools.sh installs what is missing (apt-get as root).
test: source-checkout $(BUILT)
	bash tests/tools.sh
	npx tsc --noEmit -p .
	npx jest --ci

help:
	@sed -n 's/^#> //p' $(call q,$(firstword $(MAKEFILE_LIST)))

# lifecycle (day 2): expiry report, verification, renewal, inspection, Kubernetes Secrets. See README "Day 2".
#> Day 2 (README "Day 2"):
#>   make check-expiration  what ends within WARN_DAYS (30); FORMAT=json|prometheus
#>   make verify          check every certificate, key and the CRL
#>   make renew           re-issue what ends soon (or NAME=x); NEW_KEY=1
#>   make inspect NAME=x  one certificate, readably; FORMAT=json
#>   make secrets         a Kubernetes Secret per etcd user (root: NAME=root)
#   make check-expiration [WARN_DAYS=30] [CA_WARN_DAYS=365] [FORMAT=json|prometheus] [METRICS_FILE=x.prom]   make verify   make renew [WARN_DAYS=30] [NAME=x] [NEW_KEY=1] [RENEW_HOOK='cmd']
#   make inspect NAME=x [FORMAT=json]   make secrets [NAME=user] [SECRET_NAMESPACE=kube-system] [SECRET_NAME=name]
.PHONY: check-expiration verify renew inspect secrets
LIFECYCLE      = $(NODE) dist/lifecycle.js
lifecycle_opt  = $(if $($(1)),--$(2) $(call q,$($(1))))
# NAME is taken from make's command line only: some environments (WSL) export NAME as the host name. A NAME that
# came from the environment is never silently ignored: the targets that write (renew, secrets, revoke) stop and say
# how to pass it; inspect, which only reads, uses it and says so.
name_env       = $(filter environment%,$(origin NAME))
lifecycle_name = $(if $(name_env),,$(call lifecycle_opt,NAME,name))
# $(call refuse_env_name,TARGET,WHAT NAME= DOES): a recipe line that stops when NAME came from the environment
refuse_env_name = $(if $(name_env),@echo $(call q,$(1): NAME came from the environment (NAME=$(NAME)); pass it on make's command line: make $(1) NAME=$(NAME)$(if $(2),; $(2))) >&2; exit 1)

check-expiration: $(BUILT)
	@$(LIFECYCLE) check-expiration $(TREE) $(call lifecycle_opt,WARN_DAYS,warn-days) $(call lifecycle_opt,CA_WARN_DAYS,ca-warn-days) $(call lifecycle_opt,FORMAT,format) $(call lifecycle_opt,METRICS_FILE,metrics-file)

verify: $(BUILT)
	@$(LIFECYCLE) verify $(TREE)

# RENEW_HOOK is taken as written ($(value)): a $VAR in it reaches the shell, not make
renew: $(BUILT)
	$(call refuse_env_name,renew,NAME= renews by expiry)
	$(LIFECYCLE) renew $(TREE) $(call lifecycle_opt,WARN_DAYS,warn-days) $(lifecycle_name) $(if $(filter-out 0 no false,$(NEW_KEY)),--new-key) $(if $(value RENEW_HOOK),--hook $(call q,$(value RENEW_HOOK)))

inspect: $(BUILT)
	@$(if $(name_env),echo $(call q,inspect: NAME=$(NAME) from the environment) >&2;) $(LIFECYCLE) inspect $(TREE) $(call lifecycle_opt,NAME,name) $(call lifecycle_opt,FORMAT,format)

secrets: $(BUILT)
	$(call refuse_env_name,secrets,NAME= writes every user but root)
	$(LIFECYCLE) secrets $(TREE) $(lifecycle_name) $(call lifecycle_opt,SECRET_NAMESPACE,namespace) $(call lifecycle_opt,SECRET_NAME,secret-name)

# Watch mode and benchmark
#> Watch and speed:
#>   make watch           make what is stale, then again on every config change
#>   make bench           our make against hack/tls-setup's with real cfssl
.PHONY: watch bench
# Rebuilds on every config change (the same planner as make) until Ctrl-C.
watch: $(BUILT)
	$(NODE) dist/watch.js $(TREE)

# Ours against a hack/tls-setup-shaped Makefile with real cfssl (bench/Makefile.cfssl); writes bench/results.md.
bench: source-checkout $(BUILT)
	$(NODE) dist/bench.js

# etcd: RBAC users and roles from the configs, and revocation (README "etcd RBAC in five commands").
#> etcd (README "etcd RBAC in five commands", "Revocation"):
#>   make rbac            write certs/etcd-rbac.sh: users, roles, grants
#>   make rbac-apply ENDPOINTS=URL,...  run it against etcd as root
#>   make revoke NAME=x   revoke certs/x.pem and write certs/crl.pem
#>   make crl             write a fresh CRL (new thisUpdate/nextUpdate)
ETCD = $(NODE) dist/etcd.js
.PHONY: rbac rbac-apply revoke crl

# certs/etcd-rbac.sh: creates the root user, one role per user with its prefix grants, the users; enables auth last.
rbac: $(BUILT)
	$(ETCD) rbac $(TREE)

# Runs certs/etcd-rbac.sh against ENDPOINTS as the root user (certs/root.pem).
rbac-apply: rbac
	@test -n $(call q,$(ENDPOINTS)) || { echo "rbac-apply: give the etcd endpoints: make rbac-apply ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379" >&2; exit 1; }
	@test -f $(call q,$(CERTS_DIR)/root.pem) || { echo "rbac-apply: $(CERTS_DIR)/root.pem does not exist; run make first" >&2; exit 1; }
	ETCDCTL_ENDPOINTS=$(call q,$(ENDPOINTS)) ETCDCTL_CACERT=$(call q,$(CERTS_DIR)/ca.pem) ETCDCTL_CERT=$(call q,$(CERTS_DIR)/root.pem) ETCDCTL_KEY=$(call q,$(CERTS_DIR)/root-key.pem) sh $(call q,$(CERTS_DIR)/etcd-rbac.sh)

# Revokes certs/NAME.pem and writes certs/crl.pem. Destructive, so NAME must come from make's command line.
revoke: $(BUILT)
	$(call refuse_env_name,revoke)
	@$(if $(NAME),,echo "revoke: give the certificate to revoke: make revoke NAME=calicoctl (make crl only refreshes the CRL)" >&2; exit 1)
	$(ETCD) revoke $(TREE) $(call q,$(NAME))

# Writes a fresh certs/crl.pem (new thisUpdate/nextUpdate) listing what is revoked; refresh it at least weekly.
crl: $(BUILT)
	$(ETCD) crl $(TREE)

FORCE:
