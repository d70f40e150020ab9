//! The observability endpoints of the agent's API:
//!
//! * `GET /v1/flows?FILTERS`: flows as NDJSON, one `{"flow":{...}}` per
//!   line, with `{"lost_events":{...}}` lines where a slow reader skipped
//!   flows. Without `follow` the response ends after the stored flows that
//!   match; with `follow=true` it goes on with new ones. See
//!   [`crate::flow::FlowQuery`] for the filters.
//! * `GET /metrics`: Prometheus metrics (OpenMetrics text).
//! * `GET /`: the web UI (a service map and a live flow table).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::export::lost_events_line;
use super::{FlowFollower, Observer};
use crate::flow::{FlowQuery, StoredFlow, Timestamp};

/// A response body: whole, or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A response with a whole body.
pub fn response(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(full(body))
        .expect("a valid response")
}

pub fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(code, "text/plain; charset=utf-8", body)
}

/// The paths served here.
pub fn serves(path: &str) -> bool {
    matches!(path, "/v1/flows" | "/metrics" | "/" | "/ui/app.js" | "/ui/style.css")
}

/// Answers a GET for one of the paths [`serves`] says it serves.
pub fn respond(path: &str, query: &str, observer: &Arc<Observer>) -> Response<Body> {
    match path {
        "/v1/flows" => match FlowQuery::parse(query, Timestamp::now()) {
            Ok(query) => flows(observer.clone(), query),
            Err(err) => text(StatusCode::BAD_REQUEST, format!("bad flow filter: {err}\n")),
        },
        "/metrics" => response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            observer.render_metrics(),
        ),
        "/ui/app.js" => response(StatusCode::OK, "text/javascript; charset=utf-8", include_str!("ui/app.js")),
        "/ui/style.css" => response(StatusCode::OK, "text/css; charset=utf-8", include_str!("ui/style.css")),
        _ => response(StatusCode::OK, "text/html; charset=utf-8", include_str!("ui/index.html")),
    }
}

/// A body fed by a task, chunk by chunk; the task sees the client leave
/// when its sender closes.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Most flows in one chunk of the response.
const CHUNK_FLOWS: usize = 1024;

fn flows(observer: Arc<Observer>, query: FlowQuery) -> Response<Body> {
    let (sender, receiver) = mpsc::channel(8);
    tokio::spawn(stream_flows(observer, query, sender));
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
        .header(hyper::header::CACHE_CONTROL, "no-store")
        .body(ChannelBody(receiver).boxed())
        .expect("a valid response")
}

/// NDJSON for `flows`, after a lost-events line when `lost` > 0.
fn chunk<'a>(lost: u64, flows: impl IntoIterator<Item = &'a StoredFlow>) -> Bytes {
    let mut chunk = Vec::new();
    if lost > 0 {
        chunk.extend_from_slice(lost_events_line(lost).as_bytes());
        chunk.push(b'\n');
    }
    for stored in flows {
        stored.flow.write_json_line(&mut chunk);
        chunk.push(b'\n');
    }
    Bytes::from(chunk)
}

/// Sends the stored flows that match (the last `query.last` of them, if
/// given), then, when following, every new one that matches.
async fn stream_flows(observer: Arc<Observer>, query: FlowQuery, sender: mpsc::Sender<Bytes>) {
    let mut reader = observer.reader(None);
    let mut stored: VecDeque<Arc<StoredFlow>> = VecDeque::new();
    loop {
        let flows = reader.read(CHUNK_FLOWS);
        if flows.is_empty() {
            break;
        }
        for flow in flows.into_iter().filter(|f| query.filter.matches(&f.flow)) {
            stored.push_back(flow);
            if query.last.is_some_and(|last| stored.len() > last) {
                stored.pop_front();
            }
        }
    }
    // Flows overwritten while the stored ones were read are not reported
    // as lost: the request asked for what the store holds.
    reader.take_lost();
    for batch in stored.make_contiguous().chunks(CHUNK_FLOWS) {
        if sender.send(chunk(0, batch.iter().map(|f| &**f))).await.is_err() {
            return;
        }
    }
    if !query.follow {
        return;
    }
    let mut follower = FlowFollower::continuing(&observer, reader);
    loop {
        let (lost, flows) = tokio::select! {
            () = sender.closed() => return,
            next = follower.next() => next,
        };
        let matching = chunk(lost, flows.iter().map(|f| &**f).filter(|f| query.filter.matches(&f.flow)));
        if !matching.is_empty() && sender.send(matching).await.is_err() {
            return;
        }
    }
}
