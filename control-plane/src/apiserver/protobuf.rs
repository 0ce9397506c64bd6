//! `application/vnd.kubernetes.protobuf` request bodies (what kubectl's typed clients send),
//! decoded by `sluice-k8s-protobuf` to the JSON a JSON body of the same object would be.

use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// Decode a protobuf body; a malformed one is a 400 as upstream's decoder answers.
pub(super) fn decode(body: &[u8]) -> ApiResult<Value> {
    sluice_k8s_protobuf::decode(body)
        .map(|d| d.object)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as protobuf: {e}"
            ))
        })
}
