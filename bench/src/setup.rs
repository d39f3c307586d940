//! The bench's world: a local S3 server (s3s-fs), the STS stand-in, our
//! control bucket with the org's External ID and the destinations, and the
//! customers' buckets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use stored_messages::arn::RoleArn;
use stored_messages::destination::*;
use stored_messages::ids::{Channel, OrgId, ProjectId};
use stored_messages::registry::Registry;
use stored_messages::s3::{BucketName, Encryption, FolderPath, Layout, S3Target};
use stored_messages::write::Compression;

use crate::sts::{StsStub, ACCESS_KEY, SECRET_KEY};
use crate::workload::ORG;

pub const CONTROL_BUCKET: &str = "bench-control";
pub const STAGING_BUCKET: &str = "bench-staging";
pub const CEILING_BUCKET: &str = "bench-ceiling";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Flushes the disk writes of earlier work (s3s-fs writes every object to a
/// file; a run stores ~450,000 of them, 3 GB) so that their writeback does
/// not land inside the next measurement.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The local S3 server; stopped when dropped, its objects removed.
pub struct S3Server {
    pub endpoint: String,
    pub root: PathBuf,
    child: tokio::process::Child,
}

impl S3Server {
    pub async fn start(binary: &Path, root: &Path) -> Result<Self, Error> {
        if root.exists() {
            std::fs::remove_dir_all(root)?;
        }
        std::fs::create_dir_all(root)?;
        settle();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        // Ready when it accepts a connection; bounded, so a broken binary fails fast.
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("s3s-fs did not start listening within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            root: root.to_path_buf(),
            child,
        })
    }

    /// Stops the server and deletes what it stored, so that the next run
    /// does not start by deleting it.
    pub async fn remove(mut self) -> std::io::Result<()> {
        self.child.kill().await?;
        std::fs::remove_dir_all(&self.root)
    }

    /// Our own client of the local server (seeding, ceiling).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let http = stored_messages::config::Settings::http_client();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "bench",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Objects stored in `bucket`, counted on disk.
    pub fn count(&self, bucket: &str, suffix: &str) -> usize {
        fn walk(dir: &Path, suffix: &str) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, suffix)
                    } else {
                        usize::from(path.to_string_lossy().ends_with(suffix))
                    }
                })
                .sum()
        }
        walk(&self.root.join(bucket), suffix)
    }
}

/// A customer role named with our prefix, in its own account.
pub fn role(account: u64, name: &str) -> String {
    format!("arn:aws:iam::{account:012}:role/stored-messages-{name}")
}

/// A destination record as the API would save it.
pub fn destination(project: &str, role_arn: &str, bucket: &str) -> Result<Destination, Error> {
    let role_arn = RoleArn::parse(role_arn).map_err(|e| e.to_string())?;
    Ok(Destination {
        id: DestinationId::generate()?,
        org_id: OrgId::parse(ORG).map_err(|e| e.to_string())?,
        project_id: ProjectId::parse(project).map_err(|e| e.to_string())?,
        account_id: role_arn.account().clone(),
        auth: Auth::Role {
            role_arn,
            role_session_name: SessionName::default(),
        },
        channels: Channel::ALL.to_vec(),
        // Both kinds: the events section writes to the same destinations.
        record_kinds: stored_messages::ids::RecordKind::ALL.to_vec(),
        event_types: None,
        created_at: chrono::Utc::now(),
        updated_at: None,
        status: Status::Active,
        health: Health::default(),
        target: Target::S3(S3Target {
            region: Region::parse("us-east-1").map_err(|e| e.to_string())?,
            bucket: BucketName::parse(bucket).map_err(|e| e.to_string())?,
            folder_path: Some(FolderPath::parse("archive").map_err(|e| e.to_string())?),
            layout: Layout::ByRecipient,
            compression: Compression::Gzip,
            encryption: Encryption::Aes256,
            bucket_private_confirmed: true,
        }),
    })
}

/// Creates buckets and registers destinations, returning them.
pub async fn seed(
    s3: &aws_sdk_s3::Client,
    destinations: &[(String, String, String)],
) -> Result<Vec<Destination>, Error> {
    for bucket in [CONTROL_BUCKET, STAGING_BUCKET, CEILING_BUCKET] {
        create_bucket(s3, bucket).await?;
    }
    let registry = Registry::new(
        s3.clone(),
        CONTROL_BUCKET,
        stored_messages::arn::AccountId::parse(crate::sts::BENCH_ACCOUNT).ok_or("bench account")?,
    );
    registry
        .ensure_external_id(&OrgId::parse(ORG).map_err(|e| e.to_string())?)
        .await?;
    let mut made = Vec::new();
    for (project, role_arn, bucket) in destinations {
        create_bucket(s3, bucket).await?;
        let record = destination(project, role_arn, bucket)?;
        registry.create_destination(&record).await?;
        made.push(record);
    }
    Ok(made)
}

async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), Error> {
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!(
            "create bucket {bucket}: {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        )
        .into()),
    }
}

/// Stages `count` messages of `bytes` each for `message_ref` requests.
pub async fn stage(
    s3: &aws_sdk_s3::Client,
    count: usize,
    bytes: usize,
) -> Result<Vec<String>, Error> {
    let mut rng = crate::workload::Rng::new(99);
    let mut keys = Vec::with_capacity(count);
    for i in 0..count {
        let html = crate::workload::email_html(&mut rng, "Ada", bytes);
        let message = serde_json::json!({"subject": "Your statement", "html_body": html});
        // Under the org's own prefix: the only place a message_ref may name (CONTRACT 2).
        let key = format!("{}/staged/{i:04}.json", crate::workload::ORG);
        s3.put_object()
            .bucket(STAGING_BUCKET)
            .key(&key)
            .body(ByteStream::from(message.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| format!("stage: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        keys.push(key);
    }
    Ok(keys)
}

/// The environment a function process gets, as Lambda would set it, with
/// every AWS endpoint local.
pub fn function_env(
    runtime_api: &str,
    s3: &S3Server,
    sts: &StsStub,
    name: &str,
) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ("AWS_CONFIG_FILE", "/dev/null".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("CONTROL_BUCKET", CONTROL_BUCKET.to_owned()),
        ("STAGING_BUCKET", STAGING_BUCKET.to_owned()),
        ("ARCHIVE_MAX_IN_FLIGHT", "64".to_owned()),
        ("STORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE", "1".to_owned()),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.clone()),
        ("AWS_ENDPOINT_URL_STS", format!("http://{}", sts.addr)),
        // run-backfill needs a queue; no bench section makes it send (no
        // unit outlives its deadline), and a dead local port keeps any call
        // from leaving the machine.
        (
            "BACKFILL_QUEUE_URL",
            "http://127.0.0.1:9/123456789012/backfill".to_owned(),
        ),
        ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
