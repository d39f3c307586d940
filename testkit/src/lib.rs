//! The stored-messages test kit: the local AWS harness (`tools/emulator`
//! started, provisioned and stopped from Rust) and the leak audit of a whole
//! test run. A dev-dependency of the functions' emulator tests and the home of
//! `make demo`, `make fuzz-api` and `make leak-audit`; never linked into a
//! Lambda build, so `cargo test -p stored-messages --lib` needs nothing but
//! Rust.

mod harness;
pub mod leak_audit;

pub use harness::*;
