//! `GET /events` on the RPC port: the node's changes as server-sent events, for the fork
//! view and anyone else who would otherwise poll (cookie auth as for JSON-RPC). Events are
//! `cairn_rpc::types::events`: `tip` on every move of the active tip, `block` when the node
//! first knows a block (header or body, from anywhere). A client that falls behind by more
//! than the node's event buffer misses events, not the connection: it should re-read
//! `getblocktree` after a `lagged` comment, as after a reconnect.

use super::RpcContext;
use crate::chain_task::NodeEvent;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cairn_rpc::types::events;
use futures::stream::{self, Stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The SSE data of an event worth sending, as (name, JSON).
fn render(event: &NodeEvent) -> Option<Event> {
    let (name, data) = match event {
        NodeEvent::TipChanged {
            tip,
            height,
            reorg_depth,
        } => (
            events::TIP,
            serde_json::to_string(&events::Tip {
                hash: tip.to_string(),
                height: *height,
                reorg_depth: *reorg_depth,
            }),
        ),
        NodeEvent::BlockKnown {
            hash,
            parent,
            height,
        } => (
            events::BLOCK,
            serde_json::to_string(&events::Block {
                hash: hash.to_string(),
                parent: parent.to_string(),
                height: *height,
            }),
        ),
        NodeEvent::BlockAccepted(_) | NodeEvent::TxAccepted { .. } => return None,
    };
    Some(
        Event::default()
            .event(name)
            .data(data.expect("event shapes always serialise")),
    )
}

fn stream_of(ctx: &RpcContext) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let receiver = ctx.chain.subscribe();
    let shutdown = ctx.shutdown.subscribe();
    stream::unfold(
        (receiver, shutdown),
        |(mut receiver, mut shutdown)| async move {
            loop {
                let next = tokio::select! {
                    next = receiver.recv() => next,
                    _ = shutdown.wait_for(|stop| *stop) => return None,
                };
                match next {
                    Ok(event) => {
                        if let Some(sse) = render(&event) {
                            return Some((Ok(sse), (receiver, shutdown)));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let note = Event::default().comment(format!("lagged {n}"));
                        return Some((Ok(note), (receiver, shutdown)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}

/// The handler of [`events::PATH`] (the credential was checked by [`super::limits::shed_load`],
/// which guards every route).
pub(super) async fn handle(State(ctx): State<Arc<RpcContext>>) -> Response {
    Sse::new(stream_of(&ctx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}
