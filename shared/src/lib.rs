//! stored-messages: archive every sent message into the customer's own S3
//! bucket, through a role the customer controls.
//!
//! The modules are the nouns of the domain; the Lambda functions in
//! `functions/` only translate events into calls to [`archive`] and friends.

pub mod api;
pub mod archive;
pub mod arn;
mod cache;
pub mod checks;
pub mod config;
pub mod credentials;
pub mod deadline;
pub mod destination;
pub mod failure;
pub mod health;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod request;
pub mod setup;
pub mod writer;
