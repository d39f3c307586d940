//! stored-messages: archive every sent message into the customer's own
//! storage, through an identity the customer controls.
//!
//! The modules are the nouns of the domain; the Lambda functions in
//! `functions/` only translate events into calls to [`archive`],
//! [`health`] and [`api`]. Those flows decide over two narrow interfaces,
//! [`store::ControlStore`] (our control data) and
//! [`connections::Delivery`] (the customer's side, whatever the
//! destination kind), so their decisions have fast tests without AWS.

/// `TryFrom<String>`, `Into<String>`, `Display` and `as_str` for a parsed
/// string newtype whose `parse` is its only constructor.
macro_rules! string_newtype {
    ($name:ident, $err:ident) => {
        impl TryFrom<String> for $name {
            type Error = $err;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

pub mod api;
pub mod archive;
pub mod arn;
pub mod athena;
pub mod backfill;
mod cache;
pub mod checks;
pub mod config;
pub mod connections;
pub mod credentials;
pub mod deadline;
pub mod destination;
pub mod failure;
pub mod health;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod records;
pub mod registry;
pub mod s3;
pub mod secrets;
pub mod setup;
pub mod store;
pub mod write;
