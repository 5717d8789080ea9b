//! Test support: deterministic image generators, a loopback HTTP server with fault injection, and
//! a throwaway PostgreSQL server.
//!
//! Used by the unit and integration tests and by `jobd-testserver`, the benchmark fixture.
//! Architecture Invariant: nothing here is used by the daemon itself, and nothing here binds
//! anything but the address a caller passes (tests use 127.0.0.1; the PostgreSQL server always
//! listens on 127.0.0.1).
//! Nothing here uses jobd (only the `jobd-bench` program does): jobd's unit tests are a build of
//! jobd of their own, to which a jobd type passed through here would be another crate's type.

pub mod images;
pub mod postgres;
pub mod server;

pub use images::SeedImage;
pub use server::{Fault, RangeRequest, Ranges, Reply, Stats, TestServer};
