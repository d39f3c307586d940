//! check-destinations: the scheduled credential health check of every
//! destination, and the replay of what was parked while one was broken.
//! Wiring only; see `handler`.

use lambda_runtime::{run, service_fn, Error};
use stored_messages::config::{own_account, Settings};

mod handler;
#[cfg(test)]
mod tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The SDK never logs below INFO here, whatever the level (see logging).
    stored_messages::logging::init();
    let settings = Settings::from_env()?;
    let sdk = settings.health_sdk_config().await;
    let account = own_account(&aws_sdk_sts::Client::new(&sdk)).await?;
    let checker = handler::checker(&settings, &sdk, account);
    run(service_fn(|event| handler::handle(&checker, event))).await
}
