//! Every integration test that needs at most one server process, in one test binary: each
//! binary under tests/ links the whole crate again, so one binary instead of one per file saves
//! most of the suite's link time and disk. One module per feature; the shared harness is
//! tests/common. The multi-process cluster tests are the other binary, tests/cluster.
//!
//! These tests share one process and run concurrently, so they keep no process-wide state of
//! their own: each server has its own data directory and port, each cluster its own database and
//! queue prefix, and names come from `common::unique`. The one shared registry is the metrics
//! recorder (one per process), so metric assertions here only ever expect a count to have grown.

#[path = "../common/mod.rs"]
mod common;

mod abuse_limits;
mod admin_listener;
mod api_audit;
mod api_auth;
mod api_entries;
mod api_groups;
mod api_messages;
mod api_reads;
mod auth_abuse;
mod authz_matrix;
mod conformance;
mod connection_limits;
mod drain;
mod http_hygiene;
mod input_props;
mod log_file;
mod log_hygiene;
mod persistence;
mod races;
mod realtime;
mod smoke;
mod socket_abuse;
mod store_mongo;
mod store_sqlite;
mod tokens;
mod web;
