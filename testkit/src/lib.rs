//! The stored-messages test kit: the local AWS harness (`tools/emulator`
//! started, provisioned and stopped from Rust), the leak audit of a whole
//! test run, and a local Lambda runtime API that runs a function binary as
//! Lambda does, measured from outside (`make bench`, and the backfill's
//! memory test). A dev-dependency of the functions' emulator tests and the home of
//! `make demo`, `make fuzz-api` and `make leak-audit`; never linked into a
//! Lambda build, so `cargo test -p stored-messages --lib` needs nothing but
//! Rust.

pub mod exports;
mod harness;
pub mod leak_audit;
pub mod procstat;
pub mod runtime_api;
pub mod serve;

pub use harness::*;
