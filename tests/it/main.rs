//! runseal's integration tests, as one test binary: one module per area, one set of helpers
//! (`common`). One binary links the library once instead of once per area, and the areas share
//! one process: a test here must not change process-wide state (environment variables, umask,
//! rlimits, signal dispositions, the working directory); it sets those on the child it runs.
//!
//! The PostgreSQL areas (`migrate`, `pg_outage`, `replicas`) and the PostgreSQL halves of the
//! others are compiled in when `RUNSEAL_TEST_DATABASE_URL` is set at build time (`proto/compile.rs`).
//! Run one area with `cargo test --test it AREA::`, e.g. `cargo test --test it fault_run::`.

mod common;

mod agent;
mod backup;
mod browser_harness;
mod build;
mod cli_flow;
mod cli_polish;
mod clock;
mod conformance;
mod crash;
mod credentials;
mod dashboard;
mod dashboard_browser;
mod denied_names;
mod deploy;
mod fal_cli;
mod fal_wire;
mod fault_run;
mod hostile_clients;
mod hygiene;
mod lifecycle;
mod migrate;
mod pg_outage;
mod replicas;
mod rotation;
mod security;
mod server;
mod small_holes;
mod stale;
mod tamper;
mod upgrade_v0_2;
mod validation;
