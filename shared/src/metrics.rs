//! CloudWatch Embedded Metric Format: one JSON line per invocation that
//! CloudWatch turns into metrics, with no PutMetricData call on the hot path.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "StoredMessages";

/// The `tracing` target of the TRACE event beside each EMF line.
pub const TRACE_TARGET: &str = "stored_messages::metrics";

/// Prints one EMF line on stdout, where Lambda hands it to CloudWatch, and
/// repeats it as a TRACE event, off in Lambda, so that whoever watches the
/// process's events (the test kit's leak audit) sees every metric line too.
pub fn emit(line: &str) {
    println!("{line}");
    tracing::trace!(target: TRACE_TARGET, emf = line);
}

/// Now, in milliseconds since the Unix epoch: an EMF line's `Timestamp`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Renders one EMF line: `values` under `dimensions` (name, value pairs).
pub fn emf_line(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    values: &[(&str, &str, f64)],
) -> String {
    let mut root = Map::new();
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    for (name, _, value) in values {
        root.insert((*name).to_owned(), json!(value));
    }
    let dimension_names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let metrics: Vec<Value> = values
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let line = emf_line(
            1_700_000_000_000,
            &[("Function", "archive-message")],
            &[("ObjectsWritten", "Count", 3.0)],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ObjectsWritten"], 3.0);
        assert_eq!(v["Function"], "archive-message");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "StoredMessages"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
            json!({"Name": "ObjectsWritten", "Unit": "Count"})
        );
    }
}
