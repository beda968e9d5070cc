# cairn's entry point for people and CI. `just` lists the recipes.
#
# Environments are passed as `env=<name>` anywhere after the recipe: `just deploy env=prod`.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Show the recipes.
default:
    @just --list

# Write the canonical document and rendered files of an environment to render/<env>.
render *args:
    @scripts/cairn render {{args}}

# Show what a deploy would change (`--format markdown`, `--detailed-exitcode` pass through).
preview *args:
    @scripts/cairn preview {{args}}

# Deploy an environment (dev: no confirmation; others ask, or need --yes).
deploy *args:
    @scripts/cairn deploy {{args}}

# Delete every resource of an environment.
destroy *args:
    @scripts/cairn destroy {{args}}

# Any other cairn command: `just cairn outputs env=dev --json`.
cairn command *args:
    @scripts/cairn {{command}} {{args}}

# Install the tools the recipes and tests need (just, cargo-insta, Consul, moto, the runner's test image, a registry).
tools:
    scripts/install-tools.sh
    scripts/install-consul.sh >/dev/null
    scripts/install-moto.sh >/dev/null
    scripts/runner-test-image.sh >/dev/null
    scripts/runner-registry.sh install

# Format and lint checks, as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Build everything and run every test, including the snapshot check.
test: tools
    cargo build --workspace --all-targets --locked
    cargo test --workspace --locked
    cargo insta test --workspace --test snapshots --check

# Review changed snapshots, one by one.
review: tools
    cargo insta review

# Run a benchmark area (engine, consul, aws, runner), printing `BENCH <name> <value>` lines.
bench area: tools
    #!/usr/bin/env bash
    set -euo pipefail
    if [[ "{{area}}" == runner ]]; then exec scripts/runner-bench.sh; fi
    cargo build --release --locked --workspace --bins
    exec "${CARGO_TARGET_DIR:-target}/release/bench-{{area}}"

# Fuzz the runner's API with schemathesis against its OpenAPI document.
fuzz-runner: tools
    scripts/runner-fuzz.sh
