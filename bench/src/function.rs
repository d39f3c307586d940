//! A function under test: one process, started cold, fed invocations through
//! its own runtime API, stopped when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::setup::{function_env, S3Server};
use crate::sts::StsStub;
use crate::Error;
use stored_messages_testkit::procstat::{self, ProcStats};
use stored_messages_testkit::runtime_api::{Answer, RuntimeApi};

/// What runs: one of our release binaries, or the Python comparator.
pub enum Subject {
    Binary(PathBuf),
    Python { python: PathBuf, script: PathBuf },
}

impl Subject {
    pub fn label(&self) -> &'static str {
        match self {
            Subject::Binary(_) => "rust",
            Subject::Python { .. } => "boto3",
        }
    }
}

pub struct Function {
    child: tokio::process::Child,
    api: RuntimeApi,
    pid: u32,
    /// Process start to its first `next` request.
    pub cold_start: Duration,
}

/// An invocation never takes this long here; past it the bench stops.
const INVOCATION_LIMIT: Duration = Duration::from_secs(300);

impl Function {
    pub async fn launch(
        subject: &Subject,
        s3: &S3Server,
        sts: &StsStub,
        name: &str,
    ) -> Result<Self, Error> {
        Self::launch_with(subject, s3, sts, name, &[]).await
    }

    /// [`Self::launch`] with `extra` set in the function's environment.
    pub async fn launch_with(
        subject: &Subject,
        s3: &S3Server,
        sts: &StsStub,
        name: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self, Error> {
        let api = RuntimeApi::start().await?;
        let mut command = match subject {
            Subject::Binary(path) => tokio::process::Command::new(path),
            Subject::Python { python, script } => {
                let mut command = tokio::process::Command::new(python);
                command.arg(script);
                command
            }
        };
        command
            .env_clear()
            .envs(function_env(&api.addr.to_string(), s3, sts, name))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("{name}: {e}"))?;
        let pid = child.id().ok_or("the function exited at once")?;
        let ready = tokio::select! {
            at = api.first_next() => at,
            status = child.wait() => {
                let detail = api.init_error().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                return Err(format!("{name} exited during init ({status:?}) {detail}").into());
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                return Err(format!("{name} did not ask for work within 30 s").into());
            }
        };
        Ok(Self {
            child,
            api,
            pid,
            cold_start: ready.saturating_duration_since(started),
        })
    }

    /// Invokes with an SQS event and insists every record was acknowledged:
    /// a bench that retried records would measure the wrong thing.
    pub async fn invoke_batch(&self, event: Bytes, records: usize) -> Result<(), Error> {
        let body = match self.api.invoke(event, INVOCATION_LIMIT).await? {
            Answer::Response(body) => body,
            Answer::Error(body) => {
                return Err(
                    format!("the function failed: {}", String::from_utf8_lossy(&body)).into(),
                )
            }
        };
        let response: serde_json::Value = serde_json::from_slice(&body)?;
        let failures = response["batchItemFailures"]
            .as_array()
            .map_or(usize::MAX, Vec::len);
        if failures != 0 {
            return Err(format!("{failures} of {records} records were listed for retry").into());
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<ProcStats, Error> {
        Ok(procstat::read(self.pid)?)
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
