# Warren's build and test entry points. `make test` is what CI runs.

GO       ?= go
# Fuzz by execution count, not time: a time budget ends with a deadline that
# can interrupt a running input and fail the run on a busy machine.
FUZZTIME ?= 150000x
# Targets whose inputs are slow to run (a command line, an HTTP request)
# get fewer.
FUZZSLOW ?= 20000x
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test deps generate check-generate lint unit fuzz run bench bench-scrape soak bench-cluster bench-quorum

## test: everything CI checks — client deps, generated code, lint, race tests, fuzzers
test: deps check-generate lint unit fuzz

## deps: install the e2e clients and tools when missing (Debian's python3-pika,
## rabbitmqadmin from the rabbitmq-server package, and chromium for the console;
## amqplib and axe-core from package-lock.json)
deps:
	@/usr/bin/python3 -c 'import pika' 2>/dev/null || { \
		echo "installing python3-pika"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-pika; }
	@command -v rabbitmqadmin >/dev/null || { \
		echo "installing rabbitmq-server (for rabbitmqadmin)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends rabbitmq-server; }
	@command -v chromium >/dev/null || { \
		echo "installing chromium (for the console's browser test)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	@npm ci --no-audit --no-fund --loglevel=error

## generate: regenerate amqp/wire's methods from its spec table
generate:
	$(GO) generate ./...

## check-generate: fail when generated code is out of date
check-generate: generate
	@git diff --exit-code -- amqp/wire/methods_gen.go || { echo "methods_gen.go is stale: run make generate"; exit 1; }

## lint: gofmt, go vet, staticcheck, and the import arrows of docs/ARCHITECTURE.md
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@bad=$$($(GO) list -deps ./amqp ./vhost ./queue | grep -E '/warren/(persistence|queue/classic|queue/remote|quorum|cluster|broker)$$'); \
		[ -z "$$bad" ] || { echo "amqp, vhost or queue depends on a store, a queue kind or the cluster:"; echo "$$bad"; exit 1; }

## unit: all tests with the race detector (the e2e tests start the real binary,
## which they build themselves: go's test cache cannot see it change, hence -count=1)
unit:
	$(GO) test -race -timeout 14m -count=1 ./...

## fuzz: each fuzz target for FUZZTIME (FUZZSLOW for the slow ones)
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./amqp/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMethod$$' -fuzztime $(FUZZTIME) ./amqp/wire
	$(GO) test -run '^$$' -fuzz '^FuzzTableRoundTrip$$' -fuzztime $(FUZZTIME) ./amqp/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeMessage$$' -fuzztime $(FUZZTIME) ./queue
	$(GO) test -run '^$$' -fuzz '^FuzzRaftWALSegment$$' -fuzztime $(FUZZTIME) ./persistence
	$(GO) test -run '^$$' -fuzz '^FuzzMachine$$' -fuzztime $(FUZZTIME) ./quorum
	$(GO) test -run '^$$' -fuzz '^FuzzTopicMatch$$' -fuzztime $(FUZZTIME) ./exchange
	$(GO) test -run '^$$' -fuzz '^FuzzParseWeight$$' -fuzztime $(FUZZTIME) ./exchange
	$(GO) test -run '^$$' -fuzz '^FuzzParseArgs$$' -fuzztime $(FUZZSLOW) ./cmd/warrenctl
	$(GO) test -run '^$$' -fuzz '^FuzzAPI$$' -fuzztime $(FUZZSLOW) ./mgmt
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./cluster
	$(GO) test -run '^$$' -fuzz '^FuzzServerHandshake$$' -fuzztime $(FUZZTIME) ./cluster
	$(GO) test -run '^$$' -fuzz '^FuzzGroupRPC$$' -fuzztime $(FUZZTIME) ./cluster
	$(GO) test -run '^$$' -fuzz '^FuzzCalls$$' -fuzztime $(FUZZSLOW) ./queue/remote

## run: start a broker on 127.0.0.1:5672 with ./warren-data
run:
	$(GO) run ./cmd/warren

## bench: Warren vs RabbitMQ (when installed) on this machine; see bench/bench.sh
bench: ; bench/bench.sh

## bench-scrape: what scraping /metrics and the API costs a broker under load; see bench/scrape-cost.sh
bench-scrape: ; bench/scrape-cost.sh

## bench-cluster: what clustering costs: declare latency, idle CPU and goroutines, forwarded publishes; see bench/cluster.sh
bench-cluster: ; bench/cluster.sh

## bench-quorum: quorum queues: 1p1c throughput and latency alone and on three nodes, the idle cost of 1,000 queues; see bench/quorum.sh
bench-quorum: ; bench/quorum.sh

## soak: a steady persistent load for 4 minutes, the broker's memory and disk every 5 s; see bench/soak.sh
soak: ; bench/soak.sh
