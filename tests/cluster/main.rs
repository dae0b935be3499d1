//! The multi-process cluster tests, in one test binary: several real `conclave` processes in
//! cluster mode against the machine's Redis, RabbitMQ and MongoDB-compatible server (harness:
//! tests/common/cluster.rs). Kept apart from tests/integration so the in-process tests can be run
//! on their own, quickly, without those services.
//!
//! Each cluster has its own database and queue/channel prefix, so tests run concurrently; the one
//! test that restarts the shared RabbitMQ and Redis (`faults`) takes them exclusively
//! (`Options::restarts_services`).

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod across_processes;
mod bans;
mod clock_skew;
mod dependency_faults;
mod entries;
mod fanout;
mod faults;
mod limits_without_redis;
mod manage;
mod partitions;
mod sick_process;
mod throughput;
mod tls;
