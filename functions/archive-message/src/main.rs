//! archive-message: SQS trigger that archives each sent message into every
//! active destination of its project. Wiring only; see `handler`.

use lambda_runtime::{run, service_fn, Error};
use stored_messages::config::{own_account, Settings};

mod handler;
#[cfg(test)]
mod tests;

// One thread: below 1,769 MB a Lambda has less than one vCPU, and the
// multi-threaded scheduler's cross-thread wake-ups of hyper's connection
// tasks cost CPU we pay for without buying parallelism.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The SDK never logs below INFO here, whatever the level (see logging).
    stored_messages::logging::init();
    let settings = Settings::from_env()?;
    let sdk = settings.sdk_config().await;
    let account = own_account(&aws_sdk_sts::Client::new(&sdk)).await?;
    let archiver = stored_messages::archive::Archiver::from_settings(&settings, &sdk, account);
    run(service_fn(|event| handler::handle(&archiver, event))).await
}
