//! Amazon Athena tables over a destination's archive, for `GET /v1/setup`:
//! one `CREATE EXTERNAL TABLE` per layout for the messages and one for the
//! events, so a customer queries their bucket in one paste.
//!
//! Every table uses partition projection (Athena User Guide, "Partition
//! projection with Amazon Athena"): Athena computes the partitions from
//! `storage.location.template` instead of a catalogue someone must keep
//! up to date, and reads only the prefixes the template names, so the
//! connection probes (`_stored-messages/`) and the other record kind never
//! reach a table. Rows are read with the OpenX JSON SerDe
//! (`org.openx.data.jsonserde.JsonSerDe`), one JSON document per line:
//! `message` and `data` are JSON objects of any shape, declared `string`,
//! which OpenX reads as their JSON text (queried with
//! `json_extract_scalar`); the Hive JSON SerDe refuses an object in a
//! string column (Trino's Hive-compatible reader: "value must be a scalar
//! json value"). Athena picks gzip by the `.gz` extension.

use serde_json::{json, Value};

use crate::ids::Channel;
use crate::records::event::standard_event_types;

/// The first day the date projections cover. Athena refuses a query that
/// would project more than a million partitions, so queries filter on
/// `date`; history older than this needs the range edited.
pub const DATE_RANGE_START: &str = "2020-01-01";

/// Table names the statements create (in the query's current database).
pub const MESSAGES_TABLE: &str = "stored_messages_messages";
pub const EVENTS_TABLE: &str = "stored_messages_events";

/// The columns of an archived message read from the object; the partition
/// columns (`channel`, `project`, and by date `date` and `hour`) come from
/// the key instead, so `channel` is not repeated here.
const MESSAGE_COLUMNS: &str = "  `version` int,
  `kind` string,
  `org_id` string,
  `project_id` string,
  `message_id` string,
  `sent_at` string,
  `campaign_id` string,
  `recipient` struct<`email`:string,`user_id`:string,`phone`:string,`push_token`:string>,
  `message` string,
  `archived_at` string";

/// The columns of an archived event line; `channel` and `event_type` come
/// from the key.
const EVENT_COLUMNS: &str = "  `version` int,
  `kind` string,
  `org_id` string,
  `project_id` string,
  `event_id` string,
  `message_id` string,
  `occurred_at` string,
  `campaign_id` string,
  `recipient` struct<`email`:string,`user_id`:string,`phone`:string,`push_token`:string>,
  `data` string,
  `archived_at` string";

/// The four statements, by layout: `{"by_date": {"messages", "events"},
/// "by_recipient": {"messages", "events"}}` (events ignore the layout, so
/// both layouts' events statements are the same). `bucket` and `folder`
/// are parsed values (no `'` in a bucket name; a folder's `'` is escaped
/// here as Hive's DDL reads string literals).
pub fn tables(bucket: &str, folder: Option<&str>) -> Value {
    let root = format!(
        "s3://{bucket}/{}",
        folder.map(|f| format!("{f}/")).unwrap_or_default()
    );
    let events = events_table(&root);
    json!({
        "by_date": { "messages": messages_by_date(&root), "events": events },
        "by_recipient": { "messages": messages_by_recipient(&root), "events": events },
    })
}

/// A Hive DDL string literal, which Athena's `CREATE TABLE` is: Hive
/// unescapes backslash sequences and reads `'a''b'` as two adjacent
/// literals (`ab`), so SQL's doubled quote would silently drop the quote
/// from a folder such as `it's`.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn channel_values() -> String {
    Channel::ALL.map(Channel::as_str).join(",")
}

/// `TBLPROPERTIES` lines for the given projections and template.
fn properties(projections: &[(&str, &[(&str, String)])], template: &str) -> String {
    let mut lines = vec![("projection.enabled".to_owned(), "true".to_owned())];
    for (column, settings) in projections {
        for (setting, value) in *settings {
            lines.push((format!("projection.{column}.{setting}"), value.clone()));
        }
    }
    lines.push(("storage.location.template".to_owned(), template.to_owned()));
    lines
        .iter()
        .map(|(k, v)| format!("  {}={}", sql_string(k), sql_string(v)))
        .collect::<Vec<_>>()
        .join(",\n")
}

fn statement(table: &str, columns: &str, partitions: &str, location: &str, props: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{columns}\n)\nPARTITIONED BY ({partitions})\nROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nLOCATION {}\nTBLPROPERTIES (\n{props}\n);",
        sql_string(location)
    )
}

fn date_projection() -> Vec<(&'static str, String)> {
    vec![
        ("type", "date".to_owned()),
        ("format", "yyyy-MM-dd".to_owned()),
        ("range", format!("{DATE_RANGE_START},NOW")),
        ("interval", "1".to_owned()),
        ("interval.unit", "DAYS".to_owned()),
    ]
}

fn hour_projection() -> Vec<(&'static str, String)> {
    vec![
        ("type", "integer".to_owned()),
        ("range", "0,23".to_owned()),
        ("digits", "2".to_owned()),
    ]
}

fn channel_projection() -> Vec<(&'static str, String)> {
    vec![("type", "enum".to_owned()), ("values", channel_values())]
}

/// A project id is any slug: `injected` makes a query name the project
/// (`WHERE project = '12345'`) instead of listing every project here.
fn project_projection() -> Vec<(&'static str, String)> {
    vec![("type", "injected".to_owned())]
}

/// `by_date`: `{P}channel={channel}/project={project_id}/date=/hour=/`.
fn messages_by_date(root: &str) -> String {
    let template =
        format!("{root}channel=${{channel}}/project=${{project}}/date=${{date}}/hour=${{hour}}/");
    let props = properties(
        &[
            ("channel", &channel_projection()),
            ("project", &project_projection()),
            ("date", &date_projection()),
            ("hour", &hour_projection()),
        ],
        &template,
    );
    statement(
        MESSAGES_TABLE,
        MESSAGE_COLUMNS,
        "`channel` string, `project` string, `date` string, `hour` int",
        root,
        &props,
    )
}

/// `by_recipient`: `{P}{channel}/{project_id}/{R}/{C}/`. The key has no
/// date, so the table is partitioned by channel and project only, and
/// Athena reads every recipient's and campaign's objects below them.
fn messages_by_recipient(root: &str) -> String {
    let template = format!("{root}${{channel}}/${{project}}/");
    let props = properties(
        &[
            ("channel", &channel_projection()),
            ("project", &project_projection()),
        ],
        &template,
    );
    statement(
        MESSAGES_TABLE,
        MESSAGE_COLUMNS,
        "`channel` string, `project` string",
        root,
        &props,
    )
}

/// `{P}events/channel=/project=/event_type=/date=/hour=/`. The standard
/// types of CONTRACT section 2b are listed; a platform's own types need
/// adding to `projection.event_type.values`.
fn events_table(root: &str) -> String {
    let location = format!("{root}events/");
    let template = format!(
        "{location}channel=${{channel}}/project=${{project}}/event_type=${{event_type}}/date=${{date}}/hour=${{hour}}/"
    );
    let event_types = vec![
        ("type", "enum".to_owned()),
        ("values", standard_event_types().join(",")),
    ];
    let props = properties(
        &[
            ("channel", &channel_projection()),
            ("project", &project_projection()),
            ("event_type", &event_types),
            ("date", &date_projection()),
            ("hour", &hour_projection()),
        ],
        &template,
    );
    statement(
        EVENTS_TABLE,
        EVENT_COLUMNS,
        "`channel` string, `project` string, `event_type` string, `date` string, `hour` int",
        &location,
        &props,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_destinations_folder_and_escape_it() {
        let t = tables("acme-archive", Some("it's/prod"));
        let by_date = t["by_date"]["messages"].as_str().unwrap();
        assert!(
            by_date.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS `stored_messages_messages`")
        );
        assert!(
            by_date.contains(r"LOCATION 's3://acme-archive/it\'s/prod/'"),
            "{by_date}"
        );
        assert!(by_date.contains(
            r"'storage.location.template'='s3://acme-archive/it\'s/prod/channel=${channel}/project=${project}/date=${date}/hour=${hour}/'"
        ));
        assert!(by_date.contains("'projection.hour.digits'='2'"));
        assert!(by_date
            .contains("'projection.channel.values'='email,sms,push,in_app,web_push,whatsapp'"));
        let events = t["by_recipient"]["events"].as_str().unwrap();
        assert_eq!(events, t["by_date"]["events"].as_str().unwrap());
        assert!(events.contains(r"LOCATION 's3://acme-archive/it\'s/prod/events/'"));
        assert!(events.contains("'projection.event_type.values'='send,delivery,reject,"));
        let plain = tables("b", None);
        assert!(plain["by_recipient"]["messages"]
            .as_str()
            .unwrap()
            .contains("'storage.location.template'='s3://b/${channel}/${project}/'"));
    }
}
