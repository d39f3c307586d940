//! run-backfill: the backfill queue's trigger (CONTRACT section 5). Each
//! SQS message is one unit of a backfill job. Wiring only; see `handler`.

use lambda_runtime::{run, service_fn, Error};
use stored_messages::archive::Archiver;
use stored_messages::backfill::Backfiller;
use stored_messages::config::{own_account, ConfigError, Settings};
use stored_messages::registry::Registry;

mod handler;
#[cfg(test)]
mod tests;

// One thread, as archive-message: below 1,769 MB a Lambda has less than one vCPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The SDK never logs below INFO here, whatever the level (see logging).
    stored_messages::logging::init();
    let settings = Settings::from_env()?;
    let sdk = settings.sdk_config().await;
    let account = own_account(&aws_sdk_sts::Client::new(&sdk)).await?;
    let staging = settings
        .staging_bucket
        .clone()
        .ok_or(ConfigError::Missing("STAGING_BUCKET"))?;
    let queue = settings
        .backfill_queue(&sdk)
        .ok_or(ConfigError::Missing("BACKFILL_QUEUE_URL"))?;
    let backfiller = Backfiller::new(
        Archiver::from_settings(&settings, &sdk, account.clone()),
        Registry::new(settings.s3_client(&sdk), &settings.control_bucket, account),
        queue.clone(),
        staging,
        settings.backfill.chunk_bounds(),
    );
    let max_receives = settings.backfill.max_receives;
    run(service_fn(|event| {
        handler::handle(&backfiller, &queue, max_receives, event)
    }))
    .await
}
