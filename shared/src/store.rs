//! Our control data as the archive and health flows see it: the narrow
//! interface their retry / park / quarantine / transition decisions stand
//! on. [`crate::registry::Registry`] implements it over the control bucket;
//! `memory::MemoryStore` (tests only) over a map, so those decisions have
//! unit tests that need no AWS and no emulator.

use std::future::Future;

use bytes::Bytes;

use crate::credentials::ExternalId;
use crate::destination::Destination;
use crate::ids::{OrgId, ProjectId};
use crate::records::message::StagedRef;
use crate::registry::{ParkedObject, RegistryError};
use crate::write::Encoded;

/// A parked object's contents: the bytes and headers it would have been
/// written with, and the key prefix (the destination's folder, `""` for
/// none) its key was made under. A `folder_path` changed since then moves
/// the replay under the new folder, the one the session policy now allows;
/// `None` for objects parked before the prefix was recorded, replayed at
/// their key as it is.
#[derive(Debug, Clone)]
pub struct Parked {
    pub object: Encoded,
    pub made_under: Option<String>,
}

#[cfg(test)]
pub mod memory;

/// Reads and writes what we keep about destinations and their objects.
/// Every method may fail with [`RegistryError::Unavailable`]; the flows
/// treat that as "retry later", never as an answer.
pub trait ControlStore: Send + Sync {
    /// Every destination of one project (CONTRACT section 2's routing).
    fn project_destinations(
        &self,
        org: &OrgId,
        project: &ProjectId,
    ) -> impl Future<Output = Result<Vec<Destination>, RegistryError>> + Send;

    /// Every destination of every org: the health check's work list.
    fn all_destinations(
        &self,
    ) -> impl Future<Output = Result<Vec<Destination>, RegistryError>> + Send;

    /// The org's External ID, or None when it never had one.
    fn external_id(
        &self,
        org: &OrgId,
    ) -> impl Future<Output = Result<Option<ExternalId>, RegistryError>> + Send;

    /// A staged body (`message_ref`, already confined to its org), or None
    /// when the object does not exist.
    fn read_staged(
        &self,
        staged: &StagedRef,
    ) -> impl Future<Output = Result<Option<Bytes>, RegistryError>> + Send;

    /// Keeps the raw body of a malformed record (CONTRACT section 2).
    fn quarantine(
        &self,
        key: &str,
        raw_body: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// Holds an object for a broken destination: the exact body, headers
    /// and key it would have had, so a replay writes what the customer
    /// would have got.
    fn park(
        &self,
        destination: &Destination,
        object_key: &str,
        object: &Encoded,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// The objects parked for a destination, in key order.
    fn parked(
        &self,
        destination: &Destination,
    ) -> impl Future<Output = Result<Vec<ParkedObject>, RegistryError>> + Send;

    /// A parked object as it was parked, or None once gone.
    fn read_parked(
        &self,
        parked: &ParkedObject,
    ) -> impl Future<Output = Result<Option<Parked>, RegistryError>> + Send;

    fn delete_parked(
        &self,
        parked: &ParkedObject,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;

    /// A destination as it is now and the version to replace it with, or
    /// None once deleted.
    fn destination_for_update(
        &self,
        current: &Destination,
    ) -> impl Future<Output = Result<Option<(Destination, String)>, RegistryError>> + Send;

    /// Replaces a destination only if nobody changed it since `version` was
    /// read: [`RegistryError::Conflict`] otherwise.
    fn replace_destination(
        &self,
        destination: &Destination,
        version: &str,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
}
