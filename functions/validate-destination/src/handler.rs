//! API Gateway v2 event in, API Gateway v2 response out.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::header::{HeaderValue, ALLOW, CONTENT_TYPE, ETAG, IF_MATCH};
use std::convert::Infallible;

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use stored_messages::api::{Api, ApiError, ApiRequest, ApiResponse, MAX_BODY_BYTES};

/// Never fails (`Infallible`): every outcome, internal errors included, is
/// an HTTP answer of the contract (section 5).
pub async fn handle(
    api: &Api,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Infallible> {
    let request = event.payload;
    let context = &request.request_context;
    // The tenant comes from the authorizer only: a JWT claim, or a Lambda authorizer's context.
    let org_claim: Option<Value> = context.authorizer.as_ref().and_then(|a| {
        a.jwt
            .as_ref()
            .and_then(|jwt| jwt.claims.get("org_id").cloned().map(Value::String))
            .or_else(|| a.fields.get("org_id").cloned())
    });
    let raw_path = request.raw_path.as_deref().unwrap_or("/");
    // A named stage prefixes the raw path; the `$default` stage does not.
    let path = match context.stage.as_deref() {
        Some(stage) if stage != "$default" => raw_path
            .strip_prefix(&format!("/{stage}"))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(raw_path),
        _ => raw_path,
    };
    let body = match decode_body(&request) {
        Ok(body) => body,
        Err(err) => return Ok(to_gateway(err.into_response())),
    };
    let query = request
        .query_string_parameters
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let response = api
        .handle(ApiRequest {
            method: context.http.method.as_str(),
            path,
            query,
            body: &body,
            content_type: request
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            org_claim: org_claim.as_ref(),
            // An If-Match that is not text still makes the write conditional:
            // it matches no ETag, so the answer is 412, never an unconditional save.
            if_match: request
                .headers
                .get(IF_MATCH)
                .map(|v| v.to_str().unwrap_or_default()),
        })
        .await;
    Ok(to_gateway(response))
}

fn decode_body(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    let raw = request.body.as_deref().unwrap_or_default();
    // Refused before decoding or parsing: base64 is 4/3 of the bytes it holds.
    if raw.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
        return Err(ApiError::PayloadTooLarge);
    }
    if request.is_base64_encoded {
        aws_smithy_types::base64::decode(raw).map_err(|_| ApiError::InvalidJson)
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

fn to_gateway(response: ApiResponse) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(response.status);
    if let Some(body) = response.body {
        out.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        out.body = Some(Body::Text(body.to_string()));
    }
    if let Some(allow) = response.allow {
        out.headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    // A quoted hex digest: always a valid header value.
    if let Some(etag) = response.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        out.headers.insert(ETAG, etag);
    }
    out
}
