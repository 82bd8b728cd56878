//! `StrictJson<T>`: a request body documented with `T`'s OpenAPI schema but parsed with
//! serde, exactly as `phoenix-client` writes it. poem-openapi's own JSON parser coerces
//! numbers into strings; serde does not, so a body the schema rejects is rejected: 400 for
//! malformed JSON or a wrong shape, 422 naming the field for a field the type does not
//! have (every request type denies unknown fields; `phoenix_api::strict`).

use phoenix_api::strict::BodyError;
use phoenix_core::validation::FieldError;
use poem::{IntoResponse, Request, RequestBody, Result};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body parsed by serde.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: Type> Payload for StrictJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .map(str::trim)
            .is_some_and(|m| m.eq_ignore_ascii_case("application/json") || m.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned> ParsePayload for StrictJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        let data = <Vec<u8> as poem::FromRequest<'_>>::from_request(request, body).await?;
        phoenix_api::strict::from_slice(&data)
            .map(Self)
            .map_err(|err| match err {
                BodyError::UnknownField { path } => {
                    let error = ApiError::validation(vec![FieldError::new(
                        path,
                        "unknown field (not part of this request type)",
                    )]);
                    poem::Error::from_response(error.into_response())
                }
                other => ParseRequestPayloadError {
                    reason: other.to_string(),
                }
                .into(),
            })
    }
}

impl<'a, T: Type + DeserializeOwned> ApiExtractor<'a> for StrictJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> Result<Self> {
        match request.content_type() {
            Some(content_type) if <Self as Payload>::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(ContentTypeError::NotSupported {
                content_type: content_type.to_owned(),
            }
            .into()),
            None => Err(ContentTypeError::ExpectContentType.into()),
        }
    }
}
