//! The view's HTTP server (INTERFACE, "Watching forks"): the page at `/`, the merged tree at
//! `/api/tree?from=H`, one block at `/api/block/HASH` (404 when no node knows it), the
//! double spends at `/api/conflicts?from=H`, and the followers' events re-published as
//! server-sent events at `/api/events`. The page's files are compiled in: it works offline.

use super::follow::ViewEvent;
use super::model::Model;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast;

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");

/// The view's routes over `model`.
pub fn router(model: Arc<Model>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/page.js", get(script))
        .route("/page.css", get(style))
        .route("/api/tree", get(tree))
        .route("/api/block/{hash}", get(block))
        .route("/api/conflicts", get(conflicts))
        .route("/api/events", get(events))
        .with_state(model)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// The `from` parameter of a query string: `None` when absent, an error when not a height.
pub fn from_param(query: Option<&str>) -> Result<Option<u32>, String> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "from" {
            return value
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("from must be a block height, not {value:?}"));
        }
    }
    Ok(None)
}

async fn tree(State(model): State<Arc<Model>>, RawQuery(query): RawQuery) -> Response {
    match from_param(query.as_deref()) {
        Ok(from) => axum::Json(model.tree(from).await).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn conflicts(State(model): State<Arc<Model>>, RawQuery(query): RawQuery) -> Response {
    match from_param(query.as_deref()) {
        Ok(from) => axum::Json(model.conflicts(from).await).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn block(State(model): State<Arc<Model>>, Path(hash): Path<String>) -> Response {
    let not_found = |message: String| {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": message })),
        )
            .into_response()
    };
    // Malformed is unknown too (INTERFACE: unknown hash → 404), with a clearer message.
    let well_formed = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return not_found(format!("{hash:?} is not a block hash (64 hex digits)"));
    }
    let hash = hash.to_ascii_lowercase();
    match model.block(&hash).await {
        Some(detail) => axum::Json(detail).into_response(),
        None => not_found(format!("no node knows block {hash}")),
    }
}

fn sse_event(e: &ViewEvent) -> Event {
    Event::default()
        .event(e.name())
        .json_data(e)
        .expect("view events always serialise")
}

async fn events(
    State(model): State<Arc<Model>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = model.hub.events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((Ok(sse_event(&e)), rx)),
                // A slow page missed some events; it re-reads the tree on the next one.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_is_a_height_or_absent() {
        assert_eq!(from_param(None), Ok(None));
        assert_eq!(from_param(Some("x=1")), Ok(None));
        assert_eq!(from_param(Some("x=1&from=42")), Ok(Some(42)));
        assert!(
            from_param(Some("from=-3"))
                .unwrap_err()
                .contains("block height")
        );
    }
}
