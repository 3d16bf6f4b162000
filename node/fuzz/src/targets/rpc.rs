//! JSON-RPC request parsing, through the same pure functions the server runs before any
//! method does: the body ([`cairn_node::rpc::parse_body`]), each request's envelope
//! ([`cairn_node::rpc::parse_request`]) and the method's parameters
//! ([`cairn_node::rpc::registry::parse_call`]). Every refusal must carry one of the
//! contract's error codes.

use cairn_node::rpc::{self, Body, RpcError, codes, registry};

/// The codes parsing may answer with (INTERFACE's table); anything else is a bug.
const PARSE_CODES: &[i64] = &[
    codes::PARSE_ERROR,
    codes::INVALID_REQUEST,
    codes::METHOD_NOT_FOUND,
    codes::INVALID_PARAMS,
    codes::DESERIALIZATION_ERROR,
    codes::INVALID_PARAMETER,
    codes::INVALID_ADDRESS_OR_KEY,
];

/// Parses `data` as an RPC request body and every request and parameter list in it.
pub fn rpc_request(data: &[u8]) {
    let requests = match rpc::parse_body(data) {
        Err(e) => {
            assert_code(&e);
            return;
        }
        Ok(Body::Single(request)) => vec![request],
        Ok(Body::Batch(batch)) => {
            assert!(!batch.is_empty(), "an empty batch must be refused");
            batch
        }
    };
    for request in requests {
        let parsed = match rpc::parse_request(request) {
            Err(e) => {
                assert_eq!(e.code, codes::INVALID_REQUEST, "{e:?}");
                continue;
            }
            Ok(parsed) => parsed,
        };
        match parsed.call {
            Err(e) => assert_code(&e),
            Ok((method, params)) => {
                if let Err(e) = registry::parse_call(&method, params) {
                    assert_code(&e);
                }
            }
        }
    }
}

fn assert_code(e: &RpcError) {
    assert!(
        PARSE_CODES.contains(&e.code),
        "parsing answered with code {} ({})",
        e.code,
        e.message
    );
    assert!(!e.message.is_empty(), "an error without a message");
    let _ = e.to_json();
}
