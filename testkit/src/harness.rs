//! The local AWS harness for integration tests (a dev-dependency only, never
//! in a Lambda build): starts the pinned moto server with our enforcement
//! extension (`tools/emulator/server.py`) on a free loopback port, provisions
//! our vendor identity and customer accounts, and stops it when dropped.
//!
//! Panics are deliberate here: this is test set-up, and a failed set-up
//! should stop the test with the reason.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use serde_json::{json, Value};

use stored_messages::arn::Partition;
use stored_messages::config::Settings;
use stored_messages::credentials::ExternalId;

/// Our own account in the emulator (moto's default).
pub const VENDOR_ACCOUNT: &str = "123456789012";
/// Our functions' execution role. The harness runs as a session of it, as
/// a Lambda does, so assuming a customer role is role chaining here too.
pub const VENDOR_ROLE: &str = "stored-messages-functions";
pub const CONTROL_BUCKET: &str = "sm-control";
pub const STAGING_BUCKET: &str = "sm-staging";
/// Where our functions run; customer buckets live elsewhere.
pub const HOME_REGION: &str = "us-east-1";
/// Our event bus for health transitions (`EVENT_BUS_NAME`); a rule sends
/// everything from `stored-messages` on it to [`HEALTH_QUEUE`], which is how
/// a test reads what was published.
pub const EVENT_BUS: &str = "stored-messages-health";
pub const HEALTH_QUEUE: &str = "stored-messages-health-events";
/// The queue of backfill units (`BACKFILL_QUEUE_URL`), run-backfill's trigger.
pub const BACKFILL_QUEUE: &str = "stored-messages-backfill";
/// `CREDENTIALS_SECRET_PREFIX` under emulation (the contract's default).
pub const SECRET_PREFIX: &str = "stored-messages/";

/// The repository root, for `.venv` and `tools/`.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running emulator.
pub struct Emulator {
    child: Child,
    // Held open: the server exits when this pipe closes, so it never outlives the test.
    _stdin: ChildStdin,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `Emulator::vendor` provisioned: our identity (a session of our
/// execution role) and settings.
pub struct Vendor {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// The role customers trust (`VENDOR_PRINCIPAL_ARN`).
    pub principal_arn: String,
    /// Our KMS key for access-key secrets (`CREDENTIALS_KMS_KEY_ID`).
    pub secrets_key_arn: String,
}

/// An IAM user's access key, as the customer would paste it.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl AccessKey {
    /// The `auth` of a destination request using this key.
    pub fn auth(&self) -> Value {
        json!({
            "mode": "access_key",
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        })
    }
}

/// One customer's role and bucket.
#[derive(Debug, Clone)]
pub struct Customer {
    pub account: String,
    pub region: String,
    pub bucket: String,
    pub role_name: String,
}

impl Customer {
    pub fn role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{}", self.account, self.role_name)
    }
}

/// How a customer set up their side, right or wrong.
#[derive(Debug, Clone)]
pub struct CustomerSpec<'a> {
    pub account: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub role_name: &'a str,
    /// `None`: a trust policy without the External ID condition.
    pub external_id: Option<&'a ExternalId>,
    /// The folder the role may write to; `None` for the whole bucket.
    pub folder: Option<&'a str>,
    /// Whether the role gets its PutObject policy at all.
    pub allow_put: bool,
}

impl Emulator {
    /// Starts the emulator and waits for its `READY <port>` line.
    ///
    /// Also starts the process's leak audit (see [`crate::leak_audit`]):
    /// every emulator test runs with its logs recorded.
    pub fn start() -> Self {
        crate::leak_audit::install();
        let root = repo_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make venv` (or `make test`) first",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tools/emulator/server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let stdin = child.stdin.take().expect("emulator stdin");
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the emulator's READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the emulator did not start: {line:?}"));
        Self {
            child,
            _stdin: stdin,
            port,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP/1.1 exchange on loopback; enough for the harness's own API.
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the emulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send to the emulator");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read from the emulator");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Runs boto3 calls as `account` with the emulator's auth off (set-up only).
    pub fn aws(&self, account: &str, region: &str, calls: Value) -> Value {
        let request = json!({ "account": account, "region": region, "calls": calls });
        let (status, body) = self.http("POST", "/_sm/aws", &request.to_string());
        assert_eq!(status, 200, "fixture calls failed: {body}");
        serde_json::from_str::<Value>(&body).expect("fixture JSON")["results"].take()
    }

    /// Every request the emulator saw, with headers and STS parameters.
    pub fn requests(&self) -> Vec<Value> {
        let (_, body) = self.http("GET", "/_sm/requests", "");
        serde_json::from_str(&body).expect("recorded requests JSON")
    }

    /// The recorded requests whose path starts with `prefix` (path-style:
    /// `/{bucket}/{key}`).
    pub fn requests_under(&self, prefix: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.http("DELETE", "/_sm/requests", "");
    }

    /// Replaces the fault-injection rules (see tools/emulator/server.py).
    pub fn set_faults(&self, faults: Value) {
        let (status, body) = self.http("POST", "/_sm/faults", &faults.to_string());
        assert_eq!(status, 200, "{body}");
    }

    /// Our identity: a session of our execution role, which may assume
    /// prefixed roles and use the control and staging buckets, and those
    /// buckets. A Lambda's credentials are such a session; being one here
    /// is what makes the emulator apply AWS's role-chaining limits to us.
    pub fn vendor(&self) -> Vendor {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ["arn:aws:iam::*:role/stored-messages*", "arn:aws:iam::*:role/*/stored-messages*"] },
                { "Effect": "Allow", "Action": "s3:*", "Resource": [
                    format!("arn:aws:s3:::{CONTROL_BUCKET}"), format!("arn:aws:s3:::{CONTROL_BUCKET}/*"),
                    format!("arn:aws:s3:::{STAGING_BUCKET}"), format!("arn:aws:s3:::{STAGING_BUCKET}/*"),
                ] },
                // As the SAM template scopes it: our bus only.
                { "Effect": "Allow", "Action": "events:PutEvents", "Resource": event_bus_arn() },
                // As the SAM template scopes it: the backfill queue only (the API
                // and run-backfill send units; run-backfill sets a back-off).
                { "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:ChangeMessageVisibility"], "Resource": backfill_queue_arn() },
                // As the SAM template scopes it: access-key secrets under our prefix only.
                { "Effect": "Allow", "Action": [
                    "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                    "secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret",
                ], "Resource": secrets_arn_pattern() },
            ],
        });
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }],
        });
        let principal_arn = format!("arn:aws:iam::{VENDOR_ACCOUNT}:role/{VENDOR_ROLE}");
        let results = self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([
                { "service": "iam", "op": "create_role", "args": { "RoleName": VENDOR_ROLE, "AssumeRolePolicyDocument": trust.to_string(), "MaxSessionDuration": 43200 } },
                { "service": "iam", "op": "put_role_policy", "args": { "RoleName": VENDOR_ROLE, "PolicyName": "stored-messages", "PolicyDocument": policy.to_string() } },
                // As Lambda does for its execution role (set-up: unenforced).
                { "service": "sts", "op": "assume_role", "args": { "RoleArn": principal_arn, "RoleSessionName": "stored-messages-functions", "DurationSeconds": 43200 } },
                { "service": "s3", "op": "create_bucket", "args": { "Bucket": CONTROL_BUCKET } },
                { "service": "s3", "op": "create_bucket", "args": { "Bucket": STAGING_BUCKET } },
                { "service": "events", "op": "create_event_bus", "args": { "Name": EVENT_BUS } },
                { "service": "sqs", "op": "create_queue", "args": { "QueueName": HEALTH_QUEUE } },
                { "service": "sqs", "op": "create_queue", "args": { "QueueName": BACKFILL_QUEUE } },
                { "service": "events", "op": "put_rule", "args": {
                    "Name": "health-to-queue", "EventBusName": EVENT_BUS,
                    "EventPattern": json!({ "source": ["stored-messages"] }).to_string(),
                } },
                { "service": "events", "op": "put_targets", "args": {
                    "Rule": "health-to-queue", "EventBusName": EVENT_BUS,
                    "Targets": [{ "Id": "queue", "Arn": format!("arn:aws:sqs:{HOME_REGION}:{VENDOR_ACCOUNT}:{HEALTH_QUEUE}") }],
                } },
            ]),
        );
        // Our key for access-key secrets, as the SAM template makes it
        // (CredentialsKey): the account administers it, and our role may use
        // it only through Secrets Manager, in both the key policy and its
        // own policy. The emulator makes Secrets Manager call KMS as us.
        let via_secrets_manager = json!({ "StringEquals": { "kms:ViaService": format!("secretsmanager.{HOME_REGION}.amazonaws.com") } });
        let key_policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Sid": "AccountAdministers", "Effect": "Allow",
                  "Principal": { "AWS": format!("arn:aws:iam::{VENDOR_ACCOUNT}:root") },
                  "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:EnableKey", "kms:DisableKey"],
                  "Resource": "*" },
                { "Sid": "FunctionsUseThroughSecretsManager", "Effect": "Allow",
                  "Principal": { "AWS": principal_arn },
                  "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
                  "Condition": via_secrets_manager },
            ],
        });
        let key = self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "kms", "op": "create_key", "args": {
                "Description": "stored-messages access-key destinations' secrets", "Policy": key_policy.to_string(),
            } }]),
        );
        let secrets_key_arn = key[0]["KeyMetadata"]["Arn"]
            .as_str()
            .expect("a key ARN")
            .to_owned();
        let key_use = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                            "Resource": secrets_key_arn, "Condition": via_secrets_manager }],
        });
        self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "iam", "op": "put_role_policy", "args": {
                "RoleName": VENDOR_ROLE, "PolicyName": "secrets-key", "PolicyDocument": key_use.to_string(),
            } }]),
        );
        let credentials = &results[2]["Credentials"];
        let field = |name: &str| {
            credentials[name]
                .as_str()
                .expect("session credentials")
                .to_owned()
        };
        for secret in [field("SecretAccessKey"), field("SessionToken")] {
            crate::leak_audit::record(crate::leak_audit::Kind::Secret, "credential", &secret);
        }
        Vendor {
            access_key_id: field("AccessKeyId"),
            secret_access_key: field("SecretAccessKey"),
            session_token: field("SessionToken"),
            principal_arn,
            secrets_key_arn,
        }
    }

    /// A customer account's bucket and role, set up as `spec` says.
    pub fn customer(&self, vendor: &Vendor, spec: &CustomerSpec<'_>) -> Customer {
        let trust = match spec.external_id {
            Some(external_id) => {
                stored_messages::credentials::trust_policy(&vendor.principal_arn, external_id)
            }
            None => json!({
                "Version": "2012-10-17",
                "Statement": [{ "Effect": "Allow", "Principal": { "AWS": vendor.principal_arn }, "Action": "sts:AssumeRole" }],
            }),
        };
        let mut bucket_args = json!({ "Bucket": spec.bucket });
        if spec.region != "us-east-1" {
            bucket_args["CreateBucketConfiguration"] = json!({ "LocationConstraint": spec.region });
        }
        self.aws(
            spec.account,
            spec.region,
            json!([
                { "service": "s3", "op": "create_bucket", "args": bucket_args },
                { "service": "iam", "op": "create_role", "args": { "RoleName": spec.role_name, "AssumeRolePolicyDocument": trust.to_string() } },
            ]),
        );
        let customer = Customer {
            account: spec.account.to_owned(),
            region: spec.region.to_owned(),
            bucket: spec.bucket.to_owned(),
            role_name: spec.role_name.to_owned(),
        };
        if spec.allow_put {
            self.allow_put(&customer, spec.folder);
        }
        customer
    }

    /// Grants the customer role its write policy (again), as the setup page
    /// renders it.
    pub fn allow_put(&self, customer: &Customer, folder: Option<&str>) {
        self.allow_put_with_key(customer, folder, None);
    }

    /// [`Emulator::allow_put`] with the setup page's KMS statement for `key`.
    pub fn allow_put_with_key(
        &self,
        customer: &Customer,
        folder: Option<&str>,
        key: Option<&stored_messages::arn::KmsKeyArn>,
    ) {
        let policy = stored_messages::s3::policy::permissions_policy(
            Partition::Aws,
            &customer.bucket,
            folder,
            key,
        );
        self.role_policy(customer, "stored-messages-write", &policy);
    }

    /// Puts an inline policy on the customer role.
    pub fn role_policy(&self, customer: &Customer, name: &str, policy: &Value) {
        self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "iam", "op": "put_role_policy", "args": {
                "RoleName": customer.role_name, "PolicyName": name, "PolicyDocument": policy.to_string(),
            } }]),
        );
    }

    /// A customer managed KMS key in the customer's account and region (with
    /// moto's default key policy, which delegates to IAM), and an alias for
    /// it when `alias` is given (`alias/NAME`). Returns the key ARN.
    pub fn kms_key(&self, customer: &Customer, alias: Option<&str>) -> String {
        let created = self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "kms", "op": "create_key", "args": { "Description": "archive key" } }]),
        );
        let arn = created[0]["KeyMetadata"]["Arn"]
            .as_str()
            .expect("a key ARN")
            .to_owned();
        if let Some(alias) = alias {
            self.aws(
                &customer.account,
                &customer.region,
                json!([{ "service": "kms", "op": "create_alias", "args": { "AliasName": alias, "TargetKeyId": arn } }]),
            );
        }
        arn
    }

    /// Default encryption of the customer bucket: SSE-KMS with `key_arn`.
    pub fn bucket_default_kms(&self, customer: &Customer, key_arn: &str, bucket_key: bool) {
        self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "s3", "op": "put_bucket_encryption", "args": {
                "Bucket": customer.bucket,
                "ServerSideEncryptionConfiguration": { "Rules": [{
                    "ApplyServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn },
                    "BucketKeyEnabled": bucket_key,
                }] },
            } }]),
        );
    }

    /// Replaces the customer bucket's policy.
    pub fn bucket_policy(&self, customer: &Customer, policy: &Value) {
        self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "s3", "op": "put_bucket_policy", "args": {
                "Bucket": customer.bucket, "Policy": policy.to_string(),
            } }]),
        );
    }

    /// "Revoke active sessions" on a role: every session issued before now
    /// is denied from here on (see tools/emulator/server.py).
    pub fn revoke_sessions(&self, role_arn: &str) {
        let (status, body) = self.http(
            "POST",
            "/_sm/revoke-sessions",
            &json!({ "role_arn": role_arn }).to_string(),
        );
        assert_eq!(status, 200, "{body}");
    }

    /// The registry of our control bucket, as the functions build it.
    pub fn registry(
        &self,
        settings: &Settings,
        sdk: &SdkConfig,
    ) -> stored_messages::registry::Registry {
        stored_messages::registry::Registry::new(
            settings.s3_client(sdk),
            CONTROL_BUCKET,
            stored_messages::arn::AccountId::parse(VENDOR_ACCOUNT).expect("an account id"),
        )
    }

    /// A customer bucket written with an IAM user's access key instead of
    /// a role: the bucket, the user `user` with the setup page's
    /// permissions policy when `allow_put`, and an access key of that user.
    pub fn key_customer(
        &self,
        account: &str,
        region: &str,
        bucket: &str,
        user: &str,
        allow_put: bool,
    ) -> (Customer, AccessKey) {
        let mut bucket_args = json!({ "Bucket": bucket });
        if region != "us-east-1" {
            bucket_args["CreateBucketConfiguration"] = json!({ "LocationConstraint": region });
        }
        self.aws(
            account,
            region,
            json!([
                { "service": "s3", "op": "create_bucket", "args": bucket_args },
                { "service": "iam", "op": "create_user", "args": { "UserName": user } },
            ]),
        );
        let customer = Customer {
            account: account.to_owned(),
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            role_name: String::new(),
        };
        if allow_put {
            let policy =
                stored_messages::s3::policy::permissions_policy(Partition::Aws, bucket, None, None);
            self.aws(
                account,
                region,
                json!([{ "service": "iam", "op": "put_user_policy", "args": {
                    "UserName": user, "PolicyName": "stored-messages-write", "PolicyDocument": policy.to_string(),
                } }]),
            );
        }
        let key = self.access_key(&customer, user);
        (customer, key)
    }

    /// A new access key of IAM user `user` in `customer`'s account.
    pub fn access_key(&self, customer: &Customer, user: &str) -> AccessKey {
        let created = self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "iam", "op": "create_access_key", "args": { "UserName": user } }]),
        );
        let key = &created[0]["AccessKey"];
        let field = |name: &str| key[name].as_str().expect("an access key").to_owned();
        let secret = field("SecretAccessKey");
        let id = field("AccessKeyId");
        crate::leak_audit::record(crate::leak_audit::Kind::Secret, "credential", &secret);
        crate::leak_audit::record(crate::leak_audit::Kind::Secret, "access_key_id", &id);
        AccessKey {
            user: user.to_owned(),
            access_key_id: id,
            secret_access_key: secret,
        }
    }

    /// Deletes (`status` None) or sets the status of (`"Inactive"`) an access key.
    pub fn retire_access_key(&self, customer: &Customer, key: &AccessKey, status: Option<&str>) {
        let call = match status {
            None => json!({ "service": "iam", "op": "delete_access_key", "args": {
                "UserName": key.user, "AccessKeyId": key.access_key_id,
            } }),
            Some(status) => json!({ "service": "iam", "op": "update_access_key", "args": {
                "UserName": key.user, "AccessKeyId": key.access_key_id, "Status": status,
            } }),
        };
        self.aws(&customer.account, &customer.region, json!([call]));
    }

    /// An access key of `account`'s root user (see tools/emulator/server.py).
    pub fn root_access_key(&self, account: &str) -> AccessKey {
        let (status, body) = self.http(
            "POST",
            "/_sm/root-access-key",
            &json!({ "account": account }).to_string(),
        );
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).expect("a root key");
        let field = |name: &str| answer[name].as_str().expect("a root key").to_owned();
        let secret = field("secret_access_key");
        let id = field("access_key_id");
        crate::leak_audit::record(crate::leak_audit::Kind::Secret, "credential", &secret);
        crate::leak_audit::record(crate::leak_audit::Kind::Secret, "access_key_id", &id);
        AccessKey {
            user: "root".to_owned(),
            access_key_id: id,
            secret_access_key: secret,
        }
    }

    /// The secrets our account holds in Secrets Manager, by name (set-up
    /// view, unenforced), and one secret's current value when `read` names it.
    pub fn secret_names(&self) -> Vec<String> {
        let listed = self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "secretsmanager", "op": "list_secrets", "args": {} }]),
        );
        listed[0]["SecretList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["Name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Revokes the customer role's write policy.
    pub fn revoke_put(&self, customer: &Customer) {
        self.aws(
            &customer.account,
            &customer.region,
            json!([{ "service": "iam", "op": "delete_role_policy", "args": {
                "RoleName": customer.role_name, "PolicyName": "stored-messages-write",
            } }]),
        );
    }

    /// Every object in a customer bucket: key, headers and raw bytes.
    pub fn objects(&self, customer: &Customer, prefix: &str) -> Vec<StoredObject> {
        self.bucket_objects(
            &customer.account,
            &customer.region,
            &customer.bucket,
            prefix,
        )
    }

    /// Every key in a bucket under `prefix`, without reading the objects.
    pub fn keys(&self, account: &str, region: &str, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut args = json!({ "Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000 });
            if let Some(token) = &token {
                args["ContinuationToken"] = json!(token);
            }
            let page = self.aws(
                account,
                region,
                json!([{ "service": "s3", "op": "list_objects_v2", "args": args }]),
            );
            keys.extend(
                page[0]["Contents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["Key"].as_str().map(str::to_owned)),
            );
            token = page[0]["NextContinuationToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return keys;
            }
        }
    }

    pub fn bucket_objects(
        &self,
        account: &str,
        region: &str,
        bucket: &str,
        prefix: &str,
    ) -> Vec<StoredObject> {
        let keys = self.keys(account, region, bucket, prefix);
        self.objects_at(account, region, bucket, &keys)
    }

    /// The objects at exactly `keys` in a bucket (key, headers and raw
    /// bytes), in that order: a sample read back without reading the rest.
    pub fn objects_at(
        &self,
        account: &str,
        region: &str,
        bucket: &str,
        keys: &[String],
    ) -> Vec<StoredObject> {
        keys.chunks(200)
            .flat_map(|chunk| {
                let calls: Vec<Value> = chunk
                    .iter()
                    .map(|key| json!({ "service": "s3", "op": "get_object", "args": { "Bucket": bucket, "Key": key } }))
                    .collect();
                let got = self.aws(account, region, Value::Array(calls));
                chunk
                    .iter()
                    .zip(got.as_array().cloned().unwrap_or_default())
                    .map(|(key, object)| StoredObject {
                        key: key.clone(),
                        content_type: object["ContentType"].as_str().map(str::to_owned),
                        content_encoding: object["ContentEncoding"].as_str().map(str::to_owned),
                        body: object["Body"]
                            .as_str()
                            .and_then(|b| aws_smithy_types::base64::decode(b).ok())
                            .unwrap_or_default(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// An SDK configuration signed as our vendor identity, pointed here.
    pub async fn sdk_config(&self, vendor: &Vendor) -> SdkConfig {
        self.settings(vendor)
            .sdk_loader()
            .region(aws_config::Region::new(HOME_REGION))
            .credentials_provider(Credentials::new(
                &vendor.access_key_id,
                &vendor.secret_access_key,
                Some(vendor.session_token.clone()),
                None,
                "emulator",
            ))
            .load()
            .await
    }

    /// Settings as the functions would read them under emulation.
    pub fn settings(&self, vendor: &Vendor) -> Settings {
        Settings {
            control_bucket: CONTROL_BUCKET.to_owned(),
            role_name_prefix: "stored-messages".to_owned(),
            vendor_principal_arn: Some(vendor.principal_arn.clone()),
            staging_bucket: Some(
                stored_messages::s3::BucketName::parse(STAGING_BUCKET).expect("a bucket name"),
            ),
            session_duration: Duration::from_secs(3600),
            max_in_flight: 16,
            events_per_object: stored_messages::records::ObjectBounds::DEFAULT.max_lines,
            endpoint_override: Some(self.endpoint()),
            local_endpoints: true,
            health: stored_messages::health::HealthSettings::default(),
            event_bus_name: Some(EVENT_BUS.to_owned()),
            credentials_secret_prefix: SECRET_PREFIX.to_owned(),
            credentials_kms_key_id: Some(vendor.secrets_key_arn.clone()),
            backfill: stored_messages::backfill::BackfillSettings {
                queue_url: Some(self.backfill_queue_url()),
                chunk_lines: stored_messages::backfill::CHUNK_LINES,
                max_receives: 5,
            },
        }
    }

    /// `BACKFILL_QUEUE_URL` under emulation.
    pub fn backfill_queue_url(&self) -> String {
        format!("{}/{VENDOR_ACCOUNT}/{BACKFILL_QUEUE}", self.endpoint())
    }

    /// Up to 10 units waiting on the backfill queue, as the Lambda event
    /// source mapping hands them to run-backfill: SQS records of an
    /// `SqsEvent` (message id, receipt handle, body, and the
    /// `ApproximateReceiveCount` attribute), hidden for `hide_seconds`.
    pub fn receive_backfill_units(&self, hide_seconds: u32) -> Vec<Value> {
        let answer = self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "sqs", "op": "receive_message", "args": {
                "QueueUrl": self.backfill_queue_url(), "MaxNumberOfMessages": 10,
                "VisibilityTimeout": hide_seconds, "AttributeNames": ["ApproximateReceiveCount"],
            } }]),
        );
        answer[0]["Messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                json!({
                    "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": m["Attributes"], "eventSource": "aws:sqs", "awsRegion": HOME_REGION,
                    "eventSourceARN": backfill_queue_arn(),
                })
            })
            .collect()
    }

    /// Deletes a unit the function finished with (what the event source
    /// mapping does with every record not in `batchItemFailures`).
    pub fn delete_backfill_unit(&self, receipt_handle: &str) {
        self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "sqs", "op": "delete_message", "args": {
                "QueueUrl": self.backfill_queue_url(), "ReceiptHandle": receipt_handle,
            } }]),
        );
    }

    /// Makes a unit visible again now (an expired visibility timeout).
    pub fn release_backfill_unit(&self, receipt_handle: &str) {
        self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "sqs", "op": "change_message_visibility", "args": {
                "QueueUrl": self.backfill_queue_url(), "ReceiptHandle": receipt_handle, "VisibilityTimeout": 0,
            } }]),
        );
    }

    /// Writes `body` to the staging bucket at `key` (the sending
    /// platform's export), signed as our vendor identity.
    pub async fn stage(&self, vendor: &Vendor, key: &str, body: Vec<u8>) {
        let sdk = self.sdk_config(vendor).await;
        self.settings(vendor)
            .s3_client(&sdk)
            .put_object()
            .bucket(STAGING_BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("stage a manifest object");
    }

    /// The events published on [`EVENT_BUS`] since the last call, as
    /// EventBridge delivered them (the envelope, `detail` parsed), oldest
    /// first; read from [`HEALTH_QUEUE`] and deleted there.
    pub fn health_events(&self) -> Vec<Value> {
        let found = self.aws(
            VENDOR_ACCOUNT,
            HOME_REGION,
            json!([{ "service": "sqs", "op": "get_queue_url", "args": { "QueueName": HEALTH_QUEUE } }]),
        );
        let url = found[0]["QueueUrl"]
            .as_str()
            .expect("the health queue")
            .to_owned();
        let mut events = Vec::new();
        loop {
            let answer = self.aws(
                VENDOR_ACCOUNT,
                HOME_REGION,
                json!([{ "service": "sqs", "op": "receive_message", "args": {
                    "QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 30,
                } }]),
            );
            let messages = answer[0]["Messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let body = message["Body"].as_str().expect("a message body");
                events.push(serde_json::from_str::<Value>(body).expect("an EventBridge envelope"));
                self.aws(
                    VENDOR_ACCOUNT,
                    HOME_REGION,
                    json!([{ "service": "sqs", "op": "delete_message", "args": {
                        "QueueUrl": url, "ReceiptHandle": message["ReceiptHandle"],
                    } }]),
                );
            }
        }
        events.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
        events
    }
}

/// The backfill queue's ARN, as the SAM template grants it.
pub fn backfill_queue_arn() -> String {
    format!("arn:aws:sqs:{HOME_REGION}:{VENDOR_ACCOUNT}:{BACKFILL_QUEUE}")
}

/// The functions under `cargo lambda watch` (from `.venv`), configured
/// for the emulator as Lambda would be; stopped with its process group.
pub struct LambdaWatch {
    child: Child,
    port: u16,
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

impl LambdaWatch {
    /// Starts watch and waits until it accepts invocations; its log goes to
    /// `work/watch.log`, its environment to `work/watch.env`.
    pub fn start(emulator: &Emulator, vendor: &Vendor, work: &std::path::Path) -> Self {
        std::fs::create_dir_all(work).expect("the work directory");
        let env_file = work.join("watch.env");
        std::fs::write(
            &env_file,
            format!(
                "AWS_ENDPOINT_URL={}\nSTORED_MESSAGES_ALLOW_ENDPOINT_OVERRIDE=1\nCONTROL_BUCKET={CONTROL_BUCKET}\n\
                 STAGING_BUCKET={STAGING_BUCKET}\nVENDOR_PRINCIPAL_ARN={}\nAWS_ACCESS_KEY_ID={}\n\
                 AWS_SECRET_ACCESS_KEY='{}'\nAWS_SESSION_TOKEN='{}'\nAWS_REGION={HOME_REGION}\n\
                 AWS_EC2_METADATA_DISABLED=true\nRUST_LOG=info\nEVENT_BUS_NAME={EVENT_BUS}\n\
                 CREDENTIALS_SECRET_PREFIX={SECRET_PREFIX}\nCREDENTIALS_KMS_KEY_ID={}\n\
                 BACKFILL_QUEUE_URL={}\n",
                emulator.endpoint(),
                vendor.principal_arn,
                vendor.access_key_id,
                vendor.secret_access_key,
                vendor.session_token,
                vendor.secrets_key_arn,
                emulator.backfill_queue_url(),
            ),
        )
        .expect("write the watch env file");
        // Credentials are single-quoted: a session token holds '=', '/' and
        // '+', which cargo lambda's env-file parser refuses unquoted.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let log = std::fs::File::create(work.join("watch.log")).expect("watch.log");
        let mut command = Command::new(repo_root().join(".venv/bin/cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                // Tests and schemathesis write files; a reload would kill in-flight invocations.
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
                "--env-file",
            ])
            .arg(&env_file)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("watch.log")))
            .stderr(Stdio::from(log));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut watch = Self {
            child: command.spawn().expect("start cargo lambda watch"),
            port,
        };
        // Poll until it listens: watch starts its server before building anything.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!(
                    "cargo lambda watch exited ({status}); see {}",
                    work.join("watch.log").display()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cargo lambda watch did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        watch
    }

    /// The Lambda Invoke API base URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `cargo lambda invoke FUNCTION --data-file EVENT`, the response as JSON.
    pub fn invoke(&self, function: &str, event: &std::path::Path) -> Value {
        let output = Command::new(repo_root().join(".venv/bin/cargo-lambda"))
            .args([
                "lambda",
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &self.port.to_string(),
            ])
            .args(["--output-format", "json", "--data-file"])
            .arg(event)
            .current_dir(repo_root())
            .output()
            .expect("run cargo lambda invoke");
        assert!(
            output.status.success(),
            "invoke {function} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("a JSON response")
    }
}

/// The API Gateway stand-in (`tools/api_gateway.py`) in front of
/// validate-destination under a [`LambdaWatch`], on a loopback port, with
/// `org` in every request's authorizer claims; stopped when dropped.
pub struct Gateway {
    child: Child,
    pub port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts it with `extra` arguments (`--console DIR ...`) and waits for
    /// its `READY <port>` line.
    pub fn start<S: AsRef<std::ffi::OsStr>>(watch: &LambdaWatch, org: &str, extra: &[S]) -> Self {
        let root = repo_root();
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tools/api_gateway.py"))
            .args(["--lambda-endpoint", &watch.endpoint()])
            .args(["--function", "validate-destination", "--org", org])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the API Gateway stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the stand-in's stdout"))
            .read_line(&mut line)
            .expect("the stand-in's READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the stand-in did not start: {line:?}"));
        Self { child, port }
    }
}

/// `events/{fixture}` (an API Gateway event) for `org`, aimed at `path`
/// with `method` and `body`, written under `work` for `cargo lambda invoke`.
pub fn api_event(
    work: &std::path::Path,
    fixture: &str,
    org: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("events").join(fixture))
        .expect("an event fixture");
    let mut event: Value = serde_json::from_str(&text).expect("a JSON event");
    event["rawPath"] = Value::from(path);
    event["requestContext"]["http"]["path"] = Value::from(path);
    event["requestContext"]["http"]["method"] = Value::from(method);
    event["requestContext"]["authorizer"]["jwt"]["claims"]["org_id"] = Value::from(org);
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.remove("if-match");
    }
    if let Some(fields) = event.as_object_mut() {
        match body {
            Some(body) => fields.insert("body".to_owned(), Value::from(body.to_string())),
            None => fields.remove("body"),
        };
    }
    let file = work.join(format!("{org}-{}-{fixture}", method.to_lowercase()));
    std::fs::write(&file, event.to_string()).expect("write the event");
    file
}

/// What our identity may do in Secrets Manager: the secrets under
/// [`SECRET_PREFIX`] in our account, as the SAM template grants.
pub fn secrets_arn_pattern() -> String {
    format!("arn:aws:secretsmanager:*:{VENDOR_ACCOUNT}:secret:{SECRET_PREFIX}*")
}

/// The ARN of [`EVENT_BUS`].
pub fn event_bus_arn() -> String {
    format!("arn:aws:events:{HOME_REGION}:{VENDOR_ACCOUNT}:event-bus/{EVENT_BUS}")
}

/// A registry record for `customer`'s bucket, as the API would save it.
pub fn destination(
    customer: &Customer,
    org: &str,
    project: &str,
) -> stored_messages::destination::Destination {
    use stored_messages::destination::*;
    use stored_messages::s3::{BucketName, Encryption, Layout, S3Target};
    use stored_messages::write::Compression;
    let role_arn = stored_messages::arn::RoleArn::parse(&customer.role_arn()).expect("a role ARN");
    Destination {
        id: DestinationId::generate().expect("randomness"),
        org_id: stored_messages::ids::OrgId::parse(org).expect("an org id"),
        project_id: stored_messages::ids::ProjectId::parse(project).expect("a project id"),
        account_id: role_arn.account().clone(),
        auth: Auth::Role {
            role_arn,
            role_session_name: SessionName::default(),
        },
        channels: stored_messages::ids::Channel::ALL.to_vec(),
        record_kinds: stored_messages::destination::messages_only(),
        event_types: None,
        created_at: chrono::Utc::now(),
        updated_at: None,
        status: Status::Active,
        health: Health::default(),
        target: Target::S3(S3Target {
            region: Region::parse(&customer.region).expect("a region"),
            bucket: BucketName::parse(&customer.bucket).expect("a bucket"),
            folder_path: None,
            layout: Layout::ByRecipient,
            compression: Compression::Gzip,
            encryption: Encryption::BucketDefault,
            bucket_private_confirmed: true,
        }),
    }
}

/// The S3 target of a test destination, to change a field before saving it.
pub fn s3_mut(
    destination: &mut stored_messages::destination::Destination,
) -> &mut stored_messages::s3::S3Target {
    match &mut destination.target {
        stored_messages::destination::Target::S3(s3) => s3,
    }
}

/// A recorded request's header, by name in any case.
pub fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// An object read back from a bucket, body as stored (still gzipped).
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub body: Vec<u8>,
}

impl StoredObject {
    /// The body, gunzipped when stored compressed.
    pub fn decoded(&self) -> Vec<u8> {
        if self.content_encoding.as_deref() == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("gzip body");
            out
        } else {
            self.body.clone()
        }
    }

    /// The archived JSON document (a message).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.decoded()).expect("JSON body")
    }

    /// The documents of an NDJSON object (engagement events), a line each.
    pub fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.decoded())
            .expect("UTF-8 body")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}
