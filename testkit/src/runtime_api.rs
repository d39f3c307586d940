//! A local Lambda runtime API: hands invocations to a function process the
//! way Lambda does (`next` long-poll, then `response` or `error`), and notes
//! when the process first asked for work: the end of its cold start.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use crate::serve::{respond, serve, Call};

const PREFIX: &str = "/2018-06-01/runtime";

/// What a function answered to one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(Bytes),
    Error(Bytes),
}

struct Pending {
    id: String,
    event: Bytes,
    done: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    first_next: Mutex<Option<Instant>>,
    asked: Notify,
    init_error: Mutex<Option<Bytes>>,
    ids: AtomicU64,
}

/// One runtime API per function process.
#[derive(Clone)]
pub struct RuntimeApi {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let addr = serve(move |call| answer(shared.clone(), call)).await?;
        Ok(Self { addr, state })
    }

    /// When the process first asked for an invocation, waiting until it does.
    pub async fn first_next(&self) -> Instant {
        loop {
            let asked = self.state.asked.notified();
            if let Some(at) = *lock(&self.state.first_next) {
                return at;
            }
            asked.await;
        }
    }

    /// The function's init error, if it reported one.
    pub fn init_error(&self) -> Option<Bytes> {
        lock(&self.state.init_error).clone()
    }

    /// Invokes the function with `event` and waits for its answer.
    pub async fn invoke(&self, event: Bytes, limit: Duration) -> Result<Answer, String> {
        let (done, answer) = oneshot::channel();
        let id = format!(
            "bench-{:08}",
            self.state.ids.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.state.queue).push_back(Pending { id, event, done });
        self.state.queued.notify_one();
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the runtime API dropped the invocation".into()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn answer(state: Arc<State>, call: Call) -> hyper::Response<http_body_util::Full<Bytes>> {
    let Some(rest) = call.path.strip_prefix(PREFIX) else {
        return respond(404, &[], "");
    };
    if rest == "/invocation/next" && call.method == hyper::Method::GET {
        lock(&state.first_next).get_or_insert_with(Instant::now);
        state.asked.notify_waiters();
        let pending = loop {
            let queued = state.queued.notified();
            if let Some(pending) = lock(&state.queue).pop_front() {
                break pending;
            }
            queued.await;
        };
        lock(&state.waiting).insert(pending.id.clone(), pending.done);
        let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
        return respond(
            200,
            &[
                ("lambda-runtime-aws-request-id", pending.id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                ),
                ("content-type", "application/json".to_owned()),
            ],
            pending.event,
        );
    }
    if rest == "/init/error" {
        *lock(&state.init_error) = Some(call.body);
        return respond(202, &[], "");
    }
    if let Some(tail) = rest.strip_prefix("/invocation/") {
        let (id, kind) = tail.split_once('/').unwrap_or((tail, ""));
        let answer = match kind {
            "response" => Answer::Response(call.body),
            "error" => Answer::Error(call.body),
            _ => return respond(404, &[], ""),
        };
        if let Some(done) = lock(&state.waiting).remove(id) {
            let _ = done.send(answer);
        }
        return respond(202, &[], "");
    }
    respond(404, &[], "")
}
