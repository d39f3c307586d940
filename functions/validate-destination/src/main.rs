//! validate-destination: the onboarding API behind API Gateway (HTTP API,
//! payload 2.0). Wiring only; see `handler`.

use lambda_runtime::{run, service_fn, tracing, Error};
use stored_messages::api::Api;
use stored_messages::config::Settings;

mod handler;
#[cfg(test)]
mod tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let sdk = settings.sdk_config().await;
    let api = Api::new(&settings, &sdk);
    run(service_fn(|event| handler::handle(&api, event))).await
}
