//! In-memory [`ControlStore`] and [`Delivery`] for the decision tests of
//! the archive and health flows: the same interface the control bucket and
//! the customer's side offer, with every outcome scriptable, and every call
//! observable, so a test states a rule of CONTRACT 2, 6 or 7 and nothing
//! else.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use chrono::Utc;

use super::{ControlStore, Parked};
use crate::checks::{Check, LiveCheck, Purpose};
use crate::connections::{Delivery, Object};
use crate::credentials::ExternalId;
use crate::destination::{Destination, DestinationId};
use crate::failure::FailureCode;
use crate::ids::{OrgId, ProjectId};
use crate::notify::{Notifier, Transition};
use crate::records::message::StagedRef;
use crate::registry::{ParkedObject, RegistryError};
use crate::write::{Encoded, WriteError, Written};

/// A poisoned lock in a test only means another assertion already failed.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct State {
    /// Destination id → (record, version).
    destinations: BTreeMap<DestinationId, (Destination, u64)>,
    external_ids: HashMap<OrgId, ExternalId>,
    staged: HashMap<String, Bytes>,
    quarantined: BTreeMap<String, String>,
    /// Parked key → (body, content encoding).
    parked: BTreeMap<String, Parked>,
    /// Operations that fail with `Unavailable` (by method name).
    unavailable: Vec<&'static str>,
    /// Versions to bump behind the next `replace_destination` (a racing writer).
    races: u32,
}

/// The control bucket, as a map.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// A store holding `destinations` and an External ID for org `acme`.
    pub fn seeded(destinations: &[&Destination]) -> Self {
        let store = Self::default();
        store.put_external_id(
            &OrgId::parse("acme").unwrap(),
            ExternalId::generate().unwrap(),
        );
        for d in destinations {
            store.put_destination((*d).clone());
        }
        store
    }

    pub fn put_destination(&self, destination: Destination) {
        lock(&self.state)
            .destinations
            .insert(destination.id.clone(), (destination, 1));
    }

    pub fn destination(&self, id: &DestinationId) -> Option<Destination> {
        lock(&self.state)
            .destinations
            .get(id)
            .map(|(d, _)| d.clone())
    }

    pub fn put_external_id(&self, org: &OrgId, id: ExternalId) {
        lock(&self.state).external_ids.insert(org.clone(), id);
    }

    pub fn put_staged(&self, key: &str, body: &[u8]) {
        lock(&self.state)
            .staged
            .insert(key.to_owned(), Bytes::copy_from_slice(body));
    }

    /// Makes one operation (by its [`ControlStore`] method name) fail.
    pub fn make_unavailable(&self, method: &'static str) {
        lock(&self.state).unavailable.push(method);
    }

    /// The next `n` replacements find the record changed under them.
    pub fn race_next_replacements(&self, n: u32) {
        lock(&self.state).races = n;
    }

    pub fn quarantined(&self) -> Vec<(String, String)> {
        lock(&self.state).quarantined.clone().into_iter().collect()
    }

    pub fn parked_keys(&self) -> Vec<String> {
        lock(&self.state).parked.keys().cloned().collect()
    }

    pub fn parked_object(&self, key: &str) -> Option<Encoded> {
        lock(&self.state).parked.get(key).map(|p| p.object.clone())
    }

    fn check(&self, method: &'static str) -> Result<(), RegistryError> {
        if lock(&self.state).unavailable.contains(&method) {
            return Err(RegistryError::Unavailable(method.to_owned()));
        }
        Ok(())
    }
}

impl ControlStore for MemoryStore {
    async fn project_destinations(
        &self,
        org: &OrgId,
        project: &ProjectId,
    ) -> Result<Vec<Destination>, RegistryError> {
        self.check("project_destinations")?;
        Ok(lock(&self.state)
            .destinations
            .values()
            .filter(|(d, _)| &d.org_id == org && &d.project_id == project)
            .map(|(d, _)| d.clone())
            .collect())
    }

    async fn all_destinations(&self) -> Result<Vec<Destination>, RegistryError> {
        self.check("all_destinations")?;
        Ok(lock(&self.state)
            .destinations
            .values()
            .map(|(d, _)| d.clone())
            .collect())
    }

    async fn external_id(&self, org: &OrgId) -> Result<Option<ExternalId>, RegistryError> {
        self.check("external_id")?;
        Ok(lock(&self.state).external_ids.get(org).cloned())
    }

    async fn read_staged(&self, staged: &StagedRef) -> Result<Option<Bytes>, RegistryError> {
        self.check("read_staged")?;
        Ok(lock(&self.state).staged.get(staged.key()).cloned())
    }

    async fn quarantine(&self, key: &str, raw_body: &str) -> Result<(), RegistryError> {
        self.check("quarantine")?;
        lock(&self.state)
            .quarantined
            .insert(key.to_owned(), raw_body.to_owned());
        Ok(())
    }

    async fn park(
        &self,
        destination: &Destination,
        object_key: &str,
        object: &Encoded,
    ) -> Result<(), RegistryError> {
        self.check("park")?;
        let key = format!(
            "{}{object_key}",
            crate::registry::Registry::parked_prefix(destination)
        );
        let parked = Parked {
            object: object.clone(),
            made_under: Some(destination.target.key_prefix()),
        };
        lock(&self.state).parked.insert(key, parked);
        Ok(())
    }

    async fn parked(&self, destination: &Destination) -> Result<Vec<ParkedObject>, RegistryError> {
        self.check("parked")?;
        let prefix = crate::registry::Registry::parked_prefix(destination);
        Ok(lock(&self.state)
            .parked
            .keys()
            .filter_map(|key| {
                Some(ParkedObject {
                    object_key: key.strip_prefix(&prefix)?.to_owned(),
                    parked_key: key.clone(),
                    last_modified: Some(Utc::now()),
                })
            })
            .collect())
    }

    async fn read_parked(&self, parked: &ParkedObject) -> Result<Option<Parked>, RegistryError> {
        self.check("read_parked")?;
        Ok(lock(&self.state).parked.get(&parked.parked_key).cloned())
    }

    async fn delete_parked(&self, parked: &ParkedObject) -> Result<(), RegistryError> {
        self.check("delete_parked")?;
        lock(&self.state).parked.remove(&parked.parked_key);
        Ok(())
    }

    async fn destination_for_update(
        &self,
        current: &Destination,
    ) -> Result<Option<(Destination, String)>, RegistryError> {
        self.check("destination_for_update")?;
        Ok(lock(&self.state)
            .destinations
            .get(&current.id)
            .map(|(d, version)| (d.clone(), version.to_string())))
    }

    async fn replace_destination(
        &self,
        destination: &Destination,
        version: &str,
    ) -> Result<(), RegistryError> {
        self.check("replace_destination")?;
        let mut state = lock(&self.state);
        if state.races > 0 {
            state.races -= 1;
            if let Some((_, v)) = state.destinations.get_mut(&destination.id) {
                *v += 1;
            }
            return Err(RegistryError::Conflict);
        }
        match state.destinations.get_mut(&destination.id) {
            Some((stored, v)) if v.to_string() == version => {
                *stored = destination.clone();
                *v += 1;
                Ok(())
            }
            Some(_) => Err(RegistryError::Conflict),
            None => Err(RegistryError::NotFound),
        }
    }
}

/// How the customer's side answers, per destination.
#[derive(Debug, Clone, Default)]
pub enum Side {
    /// Every write lands (or is already there) and every check passes.
    #[default]
    Healthy,
    /// Every write and the probe fail with this error.
    Failing(WriteError),
    /// Writes never finish (a hung connection); checks neither.
    Hangs,
}

impl Side {
    /// A failure retrying will not fix: S3's `AccessDenied` on `PutObject`.
    pub fn denied() -> Self {
        Side::Failing(WriteError {
            code: FailureCode::PutObjectDenied,
            message: "S3 answered AccessDenied".to_owned(),
            retryable: false,
            bucket_region: None,
            denied_by: None,
        })
    }

    /// A failure retrying can fix: `503 SlowDown` after the SDK's retries.
    pub fn throttled() -> Self {
        Side::Failing(WriteError {
            code: FailureCode::PutObjectFailed,
            message: "S3 answered SlowDown".to_owned(),
            retryable: true,
            bucket_region: None,
            denied_by: None,
        })
    }
}

/// The customer's buckets, as a map; what each destination answers is set
/// per destination with [`MemoryDelivery::set`].
#[derive(Default)]
pub struct MemoryDelivery {
    sides: Mutex<HashMap<DestinationId, Side>>,
    /// Keys under a prefix that fail, whatever the destination's side.
    failing_prefixes: Mutex<Vec<(DestinationId, String, WriteError)>>,
    /// (destination, key) → the object as written.
    objects: Mutex<BTreeMap<(DestinationId, String), Encoded>>,
    writes: AtomicU64,
}

impl MemoryDelivery {
    pub fn set(&self, destination: &DestinationId, side: Side) {
        lock(&self.sides).insert(destination.clone(), side);
    }

    /// Writes to `destination` under `prefix` fail with `err` (one
    /// object of a batch failing); [`Self::heal`] lifts every such rule.
    pub fn fail_under(&self, destination: &DestinationId, prefix: &str, err: WriteError) {
        lock(&self.failing_prefixes).push((destination.clone(), prefix.to_owned(), err));
    }

    pub fn heal(&self) {
        lock(&self.failing_prefixes).clear();
    }

    fn side(&self, destination: &DestinationId, key: Option<&str>) -> Side {
        let failing = lock(&self.failing_prefixes)
            .iter()
            .find(|(d, prefix, _)| d == destination && key.is_some_and(|k| k.starts_with(prefix)))
            .map(|(_, _, err)| Side::Failing(err.clone()));
        failing.unwrap_or_else(|| {
            lock(&self.sides)
                .get(destination)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// An object written to a destination, as written.
    pub fn object(&self, destination: &DestinationId, key: &str) -> Option<Encoded> {
        lock(&self.objects)
            .get(&(destination.clone(), key.to_owned()))
            .cloned()
    }

    /// The keys written to a destination, in order.
    pub fn keys(&self, destination: &DestinationId) -> Vec<String> {
        lock(&self.objects)
            .keys()
            .filter(|(d, _)| d == destination)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Write attempts so far, landed or not.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl Delivery for MemoryDelivery {
    async fn write(
        &self,
        destination: &Destination,
        _external_id: &ExternalId,
        object: Object<'_>,
    ) -> Result<Written, WriteError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.side(&destination.id, Some(object.key)) {
            Side::Healthy => {
                let mut objects = lock(&self.objects);
                let key = (destination.id.clone(), object.key.to_owned());
                if objects.contains_key(&key) {
                    return Ok(Written::AlreadyPresent);
                }
                objects.insert(key, object.body.clone());
                Ok(Written::Created)
            }
            Side::Failing(err) => Err(err),
            Side::Hangs => std::future::pending().await,
        }
    }

    async fn live_checks(
        &self,
        destination: &Destination,
        _external_id: &ExternalId,
        _purpose: Purpose,
        which: &[LiveCheck],
    ) -> Vec<Check> {
        match self.side(&destination.id, None) {
            Side::Healthy => which
                .iter()
                .map(|c| Check::pass(c.name(), "passed"))
                .collect(),
            Side::Failing(err) => which
                .iter()
                .map(|c| match c {
                    LiveCheck::PutObject => {
                        Check::fail(c.name(), err.code.as_str(), err.message.clone(), "fix it")
                            .transient_if(err.retryable)
                    }
                    _ => Check::pass(c.name(), "passed"),
                })
                .collect(),
            Side::Hangs => std::future::pending().await,
        }
    }

    fn credential_fetches(&self) -> u64 {
        0
    }
}

/// The transitions published, in order.
#[derive(Default)]
pub struct MemoryNotifier {
    published: Mutex<Vec<Transition>>,
}

impl MemoryNotifier {
    pub fn published(&self) -> Vec<Transition> {
        lock(&self.published).clone()
    }
}

impl Notifier for MemoryNotifier {
    async fn publish(&self, transition: &Transition) -> bool {
        lock(&self.published).push(transition.clone());
        true
    }
}

/// A healthy S3 destination of org `acme` for `project`, taking `channels`,
/// laid out by date and uncompressed so tests can name its keys.
pub fn destination(project: &str, channels: &[crate::ids::Channel]) -> Destination {
    let role =
        crate::arn::RoleArn::parse("arn:aws:iam::111122223333:role/stored-messages-acme").unwrap();
    Destination {
        id: DestinationId::generate().unwrap(),
        org_id: OrgId::parse("acme").unwrap(),
        project_id: ProjectId::parse(project).unwrap(),
        account_id: role.account().clone(),
        auth: crate::destination::Auth::Role {
            role_arn: role,
            role_session_name: Default::default(),
        },
        channels: channels.to_vec(),
        record_kinds: crate::destination::messages_only(),
        event_types: None,
        created_at: Utc::now(),
        status: crate::destination::Status::Active,
        health: Default::default(),
        updated_at: None,
        target: crate::destination::Target::S3(crate::s3::S3Target {
            region: crate::destination::Region::parse("eu-west-1").unwrap(),
            bucket: crate::s3::BucketName::parse("acme-archive").unwrap(),
            folder_path: None,
            layout: crate::s3::Layout::ByDate,
            compression: crate::write::Compression::None,
            encryption: Default::default(),
            bucket_private_confirmed: true,
        }),
    }
}
