//! The messages and SQS events the bench sends: marketing email HTML as a
//! platform renders it (tables, inline styles, tracked links), sized per
//! batch shape, different in every message so compression is honest.

use bytes::Bytes;
use serde_json::json;

/// A batch shape of the issue: records per batch and SQS body size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub records: usize,
    pub body_bytes: usize,
}

pub const SHAPES: [Shape; 4] = [
    Shape {
        name: "10 x 8 KB",
        records: 10,
        body_bytes: 8 * 1024,
    },
    Shape {
        name: "10,000 x 512 B",
        records: 10_000,
        body_bytes: 512,
    },
    Shape {
        name: "700 x 8 KB",
        records: 700,
        body_bytes: 8 * 1024,
    },
    Shape {
        name: "90 x 64 KB",
        records: 90,
        body_bytes: 64 * 1024,
    },
];

pub const ORG: &str = "bench-org";

/// A small deterministic generator: the same run twice sends the same bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const NAMES: [&str; 8] = [
    "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
];
const PRODUCTS: [&str; 8] = [
    "Merino Crew Sweater",
    "Trail Running Shoe",
    "Insulated Water Bottle",
    "Canvas Weekender Bag",
    "Wireless Earbuds",
    "Cast Iron Skillet",
    "Linen Duvet Cover",
    "Ceramic Pour-Over Set",
];

/// An email's HTML of about `target` bytes.
pub fn email_html(rng: &mut Rng, name: &str, target: usize) -> String {
    if target < 2048 {
        return short_email_html(rng, name, target);
    }
    let campaign = rng.next() % 9_000_000 + 1_000_000;
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>New arrivals picked for you</title><style>body{{margin:0;background:#f4f4f4}}.btn{{background:#0b5fff;color:#fff;padding:12px 24px;border-radius:4px;text-decoration:none}}\
@media (max-width:620px){{.col{{display:block!important;width:100%!important}}}}</style></head>\
<body><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f4f4f4\"><tr><td align=\"center\">\
<table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#ffffff;font-family:Helvetica,Arial,sans-serif\">\
<tr><td style=\"padding:24px\"><img src=\"https://cdn.shop.example/brand/logo.png\" width=\"120\" alt=\"Shop\"></td></tr>\
<tr><td style=\"padding:0 24px\"><h1 style=\"font-size:22px;color:#222\">Hi {name}, new arrivals picked for you</h1>\
<p style=\"font-size:15px;line-height:22px;color:#444\">We found a few things we think you'll like, based on your recent visits.</p></td></tr>"
    );
    let footer = format!(
        "<tr><td style=\"padding:24px;font-size:12px;color:#888\">You are receiving this because you subscribed at shop.example. \
<a href=\"https://shop.example/unsubscribe?c={campaign}&amp;u={:x}\" style=\"color:#888\">Unsubscribe</a> · \
Shop Inc, 1 Main Street, Springfield</td></tr></table></td></tr></table>\
<img src=\"https://t.shop.example/open/{campaign}/{:x}.gif\" width=\"1\" height=\"1\" alt=\"\"></body></html>",
        rng.next(),
        rng.next()
    );
    while html.len() + footer.len() < target {
        let product = rng.pick(&PRODUCTS);
        let price = rng.next() % 20_000;
        let sku = rng.next() % 1_000_000;
        html.push_str(&format!(
            "<tr><td class=\"col\" style=\"padding:12px 24px;border-top:1px solid #eee\">\
<a href=\"https://shop.example/p/{sku}?utm_source=email&amp;utm_campaign={campaign}&amp;utm_content=grid&amp;t={:x}\">\
<img src=\"https://cdn.shop.example/p/{sku}/640.jpg\" width=\"260\" alt=\"{product}\" style=\"display:block;border:0\"></a>\
<p style=\"font-size:16px;color:#222;margin:8px 0\">{product}</p><p style=\"font-size:14px;color:#0b5fff;margin:0\">${}.{:02}</p>\
<a class=\"btn\" href=\"https://shop.example/cart/add/{sku}?c={campaign}\">Add to cart</a></td></tr>",
            rng.next(),
            price / 100,
            price % 100
        ));
    }
    html.push_str(&footer);
    html
}

/// A transactional email (shipping notice) for the small-message batches.
fn short_email_html(rng: &mut Rng, name: &str, target: usize) -> String {
    let order = rng.next() % 10_000_000;
    let mut html = format!(
        "<html><body style=\"font-family:Arial\"><p>Hi {name},</p><p>Order #{order} has shipped. \
<a href=\"https://shop.example/o/{order}?t={:x}\">Track it</a>.</p>",
        rng.next() % 0xffff_ffff
    );
    let closing = "</body></html>";
    let filler = "<p style=\"color:#888\">Shop Inc, 1 Main Street</p>";
    while html.len() + filler.len() + closing.len() <= target {
        html.push_str(filler);
    }
    html.push_str(closing);
    html
}

/// The fields every bench request shares (CONTRACT section 2).
fn envelope(project: &str, message_id: &str) -> serde_json::Value {
    json!({
        "version": 1,
        "org_id": ORG,
        "project_id": project,
        "message_id": message_id,
        "channel": "email",
        "sent_at": "2026-11-23T09:12:28.123Z",
    })
}

/// One archive request of about `body_bytes`.
pub fn archive_request(
    rng: &mut Rng,
    project: &str,
    message_id: &str,
    body_bytes: usize,
) -> String {
    let name = rng.pick(&NAMES);
    let mut request = envelope(project, message_id);
    request["campaign_id"] = json!("4401");
    request["recipient"] = json!({
        "email": format!("{}.{:x}@example.com", name.to_lowercase(), rng.next() % 100_000),
        "user_id": format!("u-{}", rng.next() % 1_000_000),
    });
    request["message"] = json!({
        "subject": format!("{name}, new arrivals picked for you"),
        "from_address": "news@shop.example",
        "html_body": "",
    });
    let overhead = request.to_string().len();
    // JSON escapes each quote of the HTML: aim below the target by that share.
    let html_target = body_bytes.saturating_sub(overhead) * 92 / 100;
    request["message"]["html_body"] = json!(email_html(rng, name, html_target));
    request.to_string()
}

/// A request whose message is staged in our bucket (`message_ref`).
pub fn referenced_request(project: &str, message_id: &str, bucket: &str, key: &str) -> String {
    let mut request = envelope(project, message_id);
    request["recipient"] = json!({"email": "ada@example.com"});
    request["message_ref"] = json!({"bucket": bucket, "key": key});
    request.to_string()
}

/// An SQS event as Lambda delivers it, one record per body.
pub fn sqs_event(tag: &str, bodies: &[String]) -> Bytes {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("{tag}-{i:08}-4a1f-9c2e-0b5f3e7d9a11"),
                "receiptHandle": format!("AQEB{tag}{i:08}Zk0xMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo="),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795907548123",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795907548130"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stored-messages-archive",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    Bytes::from(json!({ "Records": records }).to_string())
}

/// `count` bodies of one shape for one project, ids unique per `tag`.
pub fn bodies(
    rng: &mut Rng,
    tag: &str,
    project: &str,
    count: usize,
    body_bytes: usize,
) -> Vec<String> {
    (0..count)
        .map(|i| archive_request(rng, project, &format!("{tag}-{i:06}"), body_bytes))
        .collect()
}

/// Engagement event types with their share of a busy email-first platform's
/// stream (per 1,000 events): for each send a delivery, about a third
/// opened, a few percent clicked, bounced or delayed; SMS and push behind.
const EVENT_MIX: [(&str, &str, u64); 14] = [
    ("email", "send", 260),
    ("email", "delivery", 250),
    ("email", "open", 180),
    ("email", "click", 60),
    ("email", "bounce", 10),
    ("email", "delivery_delay", 5),
    ("email", "complaint", 2),
    ("email", "unsubscribe", 3),
    ("sms", "send", 70),
    ("sms", "delivery", 68),
    ("sms", "failure", 2),
    ("push", "send", 45),
    ("push", "delivery", 40),
    ("push", "open", 5),
];

/// `count` engagement events (CONTRACT section 2b) of the mix above for one
/// project, over two UTC hours, ids unique per `tag`.
pub fn engagement_events(rng: &mut Rng, tag: &str, project: &str, count: usize) -> Vec<String> {
    let total: u64 = EVENT_MIX.iter().map(|(_, _, n)| n).sum();
    (0..count)
        .map(|i| {
            let mut draw = rng.next() % total;
            let (channel, event_type, _) = EVENT_MIX
                .iter()
                .find(|(_, _, n)| {
                    let hit = draw < *n;
                    draw = draw.saturating_sub(*n);
                    hit
                })
                .copied()
                .unwrap_or(EVENT_MIX[0]);
            let name = rng.pick(&NAMES);
            let minute = rng.next() % 120;
            let mut event = json!({
                "version": 1, "kind": "event", "org_id": ORG, "project_id": project,
                "event_id": format!("{tag}-{i:06}"),
                "message_id": format!("{tag}-m{:06}", rng.next() % 1_000_000),
                "channel": channel, "event_type": event_type,
                "occurred_at": format!("2026-11-23T{:02}:{:02}:{:02}.{:03}Z", 9 + minute / 60, minute % 60, rng.next() % 60, rng.next() % 1000),
                "campaign_id": "4401",
                "recipient": {
                    "email": format!("{}.{:x}@example.com", name.to_lowercase(), rng.next() % 100_000),
                    "user_id": format!("u-{}", rng.next() % 1_000_000),
                },
            });
            event["data"] = match event_type {
                "open" | "click" => json!({
                    "url": format!("https://shop.example/p/{}?utm_campaign=4401", rng.next() % 10_000),
                    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15",
                    "ip": format!("203.0.113.{}", rng.next() % 256),
                }),
                "bounce" => json!({ "bounce_type": "Permanent", "diagnostic": "550 5.1.1 user unknown" }),
                "delivery" => json!({ "smtp_response": "250 2.0.0 OK", "processing_ms": rng.next() % 3000 }),
                _ => json!({}),
            };
            event.to_string()
        })
        .collect()
}
