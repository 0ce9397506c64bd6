//! The HTTP face of the verbs: request bodies decoded by content type, typed options parsed
//! from the query, the verb called, and the answer rendered as the client asked (object,
//! `Table`, `PartialObjectMetadata`), with `Warning` headers.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::options::{DeleteOptions, ListOptions, WatchOptions};
use super::status::{ApiError, ApiResult};
use super::verbs::ScaleWrite;
use super::{ApiServer, Req, Target, json_response, partial_metadata, table, watch};

/// How a reply is encoded, from the Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

fn encoding(req: &Req) -> ApiResult<Encoding> {
    let accept = req
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(Encoding::Json);
    }
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or_default().trim())
        .collect();
    if types
        .iter()
        .any(|t| matches!(*t, "application/json" | "*/*" | "application/*" | ""))
    {
        Ok(Encoding::Json)
    } else if types.contains(&sluice_k8s_protobuf::CONTENT_TYPE) {
        Ok(Encoding::Protobuf)
    } else {
        Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json, {}",
            sluice_k8s_protobuf::CONTENT_TYPE
        )))
    }
}

/// A reply in the encoding the client accepts: JSON, or protobuf for the kinds the encoder
/// knows (a client that accepts only protobuf gets 406 for the rest, as upstream answers an
/// unacceptable type).
fn reply(req: &Req, code: u16, v: &Value) -> ApiResult<Response> {
    match encoding(req)? {
        Encoding::Json => Ok(json_response(code, v)),
        Encoding::Protobuf => {
            let body = sluice_k8s_protobuf::encode(v).map_err(|e| {
                ApiError::not_acceptable(format!(
                    "the object cannot be encoded as {}: {e}",
                    sluice_k8s_protobuf::CONTENT_TYPE
                ))
            })?;
            let code = axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::OK);
            Ok(axum::response::IntoResponse::into_response((
                code,
                [("content-type", sluice_k8s_protobuf::CONTENT_TYPE)],
                body,
            )))
        }
    }
}
use crate::registry::{Resource, Subresource};

/// Media types a body may come in.
const ACCEPTED: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Decode a request body by its content type.
pub(super) fn body_value(req: &Req) -> ApiResult<Value> {
    let ct = req.content_type();
    let base = ct.split(';').next().unwrap_or_default().trim();
    let v: Value = match base {
        "application/json" | "" | "*/*" => serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        "application/yaml" | "text/yaml" | "application/apply-patch+yaml" => {
            serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("yaml parse error: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(&req.body)?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: {ACCEPTED} (got {other:?})"
            )));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

/// A patch body: JSON (or YAML for apply); JSON patches are arrays.
fn patch_value(req: &Req) -> ApiResult<Value> {
    if req
        .content_type()
        .starts_with("application/apply-patch+yaml")
    {
        return body_value(req);
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

fn not_allowed(m: &Method) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({m})"
    ))
}

pub(super) async fn serve(
    srv: &Arc<ApiServer>,
    req: &Req,
    target: Target,
    watching: bool,
) -> ApiResult<Response> {
    match target {
        Target::Collection { r, ns } => match req.method {
            Method::GET if watching => {
                let opts = WatchOptions::parse(&req.query, &r)?;
                watch::serve(srv, req, r, ns, opts).await
            }
            Method::GET => {
                let opts = ListOptions::parse(&req.query, &r)?;
                let page = srv.list(&r, ns.as_deref(), &opts).await?;
                render_list(req, &r, page)
            }
            Method::POST => {
                let body = body_value(req)?;
                let (v, warnings) = srv
                    .create(&r, ns.as_deref(), &body, &req.write_options()?)
                    .await?;
                Ok(with_warnings(reply(req, 201, &v)?, &warnings))
            }
            Method::DELETE => {
                let list = ListOptions::parse(&req.query, &r)?;
                let opts = DeleteOptions::parse(delete_body(req)?.as_ref(), &req.query)?;
                let page = srv
                    .delete_collection(&r, ns.as_deref(), &list, &opts)
                    .await?;
                render_list(req, &r, page)
            }
            ref m => Err(not_allowed(m)),
        },
        Target::Object { r, ns, name, sub } => {
            let ns = ns.as_deref();
            match (sub, &req.method) {
                (
                    None | Some(Subresource::Status | Subresource::EphemeralContainers),
                    &Method::GET,
                ) => {
                    let (v, _) = srv.get(&r, ns, &name).await?;
                    render_one(req, &r, &v)
                }
                (Some(Subresource::Scale), &Method::GET) => {
                    reply(req, 200, &srv.get_scale(&r, ns, &name).await?)
                }
                (Some(Subresource::Scale), &Method::PUT) => {
                    let write = ScaleWrite::Replace(body_value(req)?);
                    let v = srv
                        .write_scale(&r, ns, &name, &write, &req.write_options()?)
                        .await?;
                    reply(req, 200, &v)
                }
                (Some(Subresource::Scale), &Method::PATCH) => {
                    let opts = req.patch_options()?;
                    let write = ScaleWrite::Patch(opts.patch_type, patch_value(req)?);
                    let v = srv.write_scale(&r, ns, &name, &write, &opts.write).await?;
                    reply(req, 200, &v)
                }
                (Some(Subresource::Binding), &Method::POST) => {
                    let v = srv
                        .bind(&r, ns, &name, &body_value(req)?, req.query.dry_run())
                        .await?;
                    reply(req, 201, &v)
                }
                (Some(Subresource::Log), &Method::GET) => {
                    srv.pod_log(&r, ns, &name, &req.query).await
                }
                (Some(Subresource::Eviction), &Method::POST) => {
                    let v = srv.evict(&r, ns, &name, &body_value(req)?).await?;
                    reply(req, 201, &v)
                }
                (
                    None
                    | Some(
                        Subresource::Status
                        | Subresource::Finalize
                        | Subresource::EphemeralContainers,
                    ),
                    &Method::PUT,
                ) => {
                    let body = body_value(req)?;
                    let (v, warnings) = srv
                        .update(&r, ns, &name, sub, &body, &req.write_options()?)
                        .await?;
                    Ok(with_warnings(reply(req, 200, &v)?, &warnings))
                }
                (
                    None | Some(Subresource::Status | Subresource::EphemeralContainers),
                    &Method::PATCH,
                ) => {
                    let opts = req.patch_options()?;
                    let patch = patch_value(req)?;
                    let (v, warnings, created) =
                        srv.patch(&r, ns, &name, sub, &patch, &opts).await?;
                    let code = if created { 201 } else { 200 };
                    Ok(with_warnings(reply(req, code, &v)?, &warnings))
                }
                (None, &Method::DELETE) => {
                    let opts = DeleteOptions::parse(delete_body(req)?.as_ref(), &req.query)?;
                    let (code, v) = srv.delete(&r, ns, &name, &opts).await?;
                    reply(req, code, &v)
                }
                (_, m) => Err(not_allowed(m)),
            }
        }
        Target::Connect { .. } => Err(ApiError::internal(
            "connect subresources are served before the body is read",
        )),
    }
}

/// A DELETE's optional `DeleteOptions` body.
fn delete_body(req: &Req) -> ApiResult<Option<Value>> {
    if req.body.is_empty() {
        return Ok(None);
    }
    body_value(req)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {}", e.message)))
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(h) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

fn render_one(req: &Req, r: &Resource, v: &Value) -> ApiResult<Response> {
    if !req.wants_metadata_only() && !req.wants_table() {
        return reply(req, 200, v);
    }
    Ok(if req.wants_metadata_only() {
        json_response(200, &partial_metadata(v))
    } else if req.wants_table() {
        json_response(
            200,
            &table::table(r, std::slice::from_ref(v), true, req, None, None),
        )
    } else {
        json_response(200, v)
    })
}

fn render_list(req: &Req, r: &Resource, page: super::verbs::Page) -> ApiResult<Response> {
    if encoding(req)? == Encoding::Protobuf && !req.wants_table() && !req.wants_metadata_only() {
        return Err(ApiError::not_acceptable(format!(
            "lists are served as application/json only, not {}",
            sluice_k8s_protobuf::CONTENT_TYPE
        )));
    }
    if req.wants_table() {
        return Ok(json_response(
            200,
            &table::table(
                r,
                &page.items,
                true,
                req,
                Some(page.revision),
                page.continue_token,
            ),
        ));
    }
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = page.continue_token {
        metadata["continue"] = json!(c);
    }
    if req.wants_metadata_only() {
        let items: Vec<Value> = page.items.iter().map(partial_metadata).collect();
        return Ok(json_response(
            200,
            &json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items,
            }),
        ));
    }
    Ok(json_response(
        200,
        &json!({
            "kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": metadata, "items": page.items,
        }),
    ))
}
