//! The functions' log lines: what lambda_runtime's default subscriber prints
//! (JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, at `AWS_LAMBDA_LOG_LEVEL`),
//! except that the AWS SDK and its HTTP stack never log below `INFO`.
//!
//! Why: at `DEBUG` and `TRACE` the SDK's orchestrator and signer print
//! requests, headers and signing details. That would put a customer's
//! access key id, and whatever a request carries, in our logs the day
//! someone raises the level to chase a problem; the rule (CONTRACT section
//! 3: "never logged") cannot depend on nobody doing that. Our own crates
//! still log at the level asked for.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Target prefixes of the SDK and the HTTP, TLS and runtime crates under it.
const SDK_TARGETS: [&str; 5] = ["aws_", "hyper", "h2", "rustls", "tower"];

/// Whether a line of `target` at `level` is printed when `configured` is
/// asked for: SDK lines at `INFO` and above only.
pub fn allowed(target: &str, level: &tracing::Level, configured: LevelFilter) -> bool {
    let sdk = SDK_TARGETS.iter().any(|prefix| target.starts_with(prefix));
    *level <= configured && (!sdk || *level <= LevelFilter::INFO)
}

/// The level asked for: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG` when it is
/// a plain level, else `INFO` (per-target directives are not honoured).
fn configured(get: impl Fn(&str) -> Option<String>) -> LevelFilter {
    get("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| get("RUST_LOG"))
        .and_then(|level| level.trim().parse().ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Installs the subscriber; call once at cold start.
pub fn init() {
    let get = |name: &str| std::env::var(name).ok();
    let level = configured(get);
    let json = get("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = filter_fn(move |meta| allowed(meta.target(), meta.level(), level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let layer = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_sdk_never_logs_below_info_whatever_is_asked() {
        let trace = LevelFilter::TRACE;
        for sdk in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_sigv4::http_request",
            "hyper_util::client",
            "h2::codec",
            "rustls::client",
        ] {
            assert!(!allowed(sdk, &Level::TRACE, trace), "{sdk}");
            assert!(!allowed(sdk, &Level::DEBUG, trace), "{sdk}");
            assert!(allowed(sdk, &Level::INFO, trace), "{sdk}");
            assert!(allowed(sdk, &Level::WARN, LevelFilter::INFO), "{sdk}");
        }
        assert!(allowed("stored_messages::archive", &Level::TRACE, trace));
        assert!(!allowed(
            "stored_messages::archive",
            &Level::DEBUG,
            LevelFilter::INFO
        ));
        assert!(!allowed(
            "aws_smithy_runtime",
            &Level::INFO,
            LevelFilter::WARN
        ));
    }

    #[test]
    fn the_level_comes_from_lambda_then_rust_log() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(configured(env(&[])), LevelFilter::INFO);
        assert_eq!(
            configured(env(&[
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                ("RUST_LOG", "trace")
            ])),
            LevelFilter::DEBUG
        );
        assert_eq!(configured(env(&[("RUST_LOG", "warn")])), LevelFilter::WARN);
        assert_eq!(
            configured(env(&[("RUST_LOG", "info,aws_sigv4=trace")])),
            LevelFilter::INFO
        );
    }
}
