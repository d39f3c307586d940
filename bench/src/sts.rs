//! An STS stand-in answering AssumeRole with the local S3 server's keys,
//! counting calls per role: the figure the bench checks. It also answers
//! GetCallerIdentity, which every function asks once at cold start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use stored_messages_testkit::serve::{respond, serve};

/// The key pair the local S3 server accepts; every identity signs with it.
pub const ACCESS_KEY: &str = "AKIABENCHBENCHBENCH0";
pub const SECRET_KEY: &str = "benchbenchbenchbenchbenchbenchbenchbench";
/// Our account as the stand-in reports it.
pub const BENCH_ACCOUNT: &str = "123456789012";

#[derive(Clone)]
pub struct StsStub {
    pub addr: SocketAddr,
    calls: Arc<Mutex<HashMap<String, u64>>>,
}

impl StsStub {
    pub async fn start() -> std::io::Result<Self> {
        let calls: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let counted = calls.clone();
        let addr = serve(move |call| {
            let form = String::from_utf8_lossy(&call.body).into_owned();
            let field = |name: &str| {
                form.split('&')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                    .map(|v| v.replace("%3A", ":").replace("%2F", "/"))
            };
            let answer = match (field("Action").as_deref(), field("RoleArn"), field("ExternalId")) {
                (Some("GetCallerIdentity"), _, _) => respond(
                    200,
                    &[("content-type", "text/xml".to_owned())],
                    format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                         <Arn>arn:aws:sts::{BENCH_ACCOUNT}:assumed-role/bench/bench</Arn><UserId>AROABENCH:bench</UserId>\
                         <Account>{BENCH_ACCOUNT}</Account></GetCallerIdentityResult>\
                         <ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                    ),
                ),
                (Some("AssumeRole"), Some(role), Some(_)) => {
                    *counted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(role.clone())
                        .or_default() += 1;
                    respond(200, &[("content-type", "text/xml".to_owned())], assume_role_xml(&role))
                }
                _ => respond(
                    400,
                    &[("content-type", "text/xml".to_owned())],
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>AssumeRole with ExternalId only</Message></Error></ErrorResponse>",
                ),
            };
            async move { answer }
        })
        .await?;
        Ok(Self { addr, calls })
    }

    pub fn calls(&self) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

fn assume_role_xml(role: &str) -> String {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let session = role.rsplit('/').next().unwrap_or("role");
    format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{ACCESS_KEY}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey>\
         <SessionToken>bench-session-token</SessionToken><Expiration>{expires}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROABENCH:{session}</AssumedRoleId>\
         <Arn>{role}</Arn></AssumedRoleUser></AssumeRoleResult>\
         <ResponseMetadata><RequestId>bench</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )
}
