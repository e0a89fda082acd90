# Shortcuts; scripts/test is the whole suite (what CI runs).
.PHONY: test fuzz vulncheck

test:
	./scripts/test

# Every fuzz target for 60 s (FUZZTIME=120 for longer).
FUZZTIME ?= 60
fuzz:
	./scripts/fuzz $(FUZZTIME)

vulncheck:
	go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...
