//! The OpenAPI document as served: poem-openapi's output plus what it cannot express
//! (unsigned integers are `minimum: 0`; request objects refuse unknown fields, as serde
//! does; the lengths and ranges the core enforces), and the route table derived from it
//! (for metric labels and the `Allow` header of 405 answers).

use poem::http::Method;
use serde_json::Value;

/// The range of a sized integer format.
fn range(format: &str) -> Option<(Value, Value)> {
    Some(match format {
        "uint8" => (0.into(), u8::MAX.into()),
        "uint16" => (0.into(), u16::MAX.into()),
        "uint32" => (0.into(), u32::MAX.into()),
        "uint64" => (0.into(), u64::MAX.into()),
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "int64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// States the range of every sized integer schema (`uint32` is `0..=4294967295`): the
/// server parses into those Rust types, so anything outside is a 400.
pub fn harden(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            if let Some((min, max)) = map.get("format").and_then(Value::as_str).and_then(range) {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            for v in map.values_mut() {
                harden(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(harden),
        _ => {}
    }
}

/// States what the server enforces on requests: `additionalProperties: false` on every
/// object schema a request body reaches (every request type denies unknown fields), and
/// the limits of [`phoenix_api::strict::stated_limits`] on their properties. Call before
/// [`harden`], which only fills ranges not stated yet.
///
/// # Panics
/// When a stated limit names a schema or property the document does not have (a renamed
/// field): the OpenAPI snapshot test catches it.
pub fn state_request_rules(doc: &mut Value) {
    deny_unknown_fields(doc);
    state_limits(doc, phoenix_api::strict::stated_limits());
}

/// `additionalProperties: false` on every object schema (with properties) that a request
/// body reaches through `$ref`s.
fn deny_unknown_fields(doc: &mut Value) {
    let mut pending: Vec<String> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for item in paths.values().filter_map(Value::as_object) {
            for op in item.values() {
                if let Some(content) = op
                    .get("requestBody")
                    .and_then(|b| b.get("content"))
                    .and_then(Value::as_object)
                {
                    for media in content.values() {
                        collect_refs(&media["schema"], &mut pending);
                    }
                }
            }
        }
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) else {
            continue;
        };
        let mut nested = Vec::new();
        collect_refs(&Value::Object(schema.clone()), &mut nested);
        pending.extend(nested);
        if schema.contains_key("properties") && !schema.contains_key("additionalProperties") {
            schema.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
}

/// Merges each limit's keywords into its property's schema.
fn state_limits(doc: &mut Value, limits: Vec<phoenix_api::strict::StatedLimit>) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (schema, property, keywords) in limits {
        let target = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("stated limit on {schema}.{property}: no such property"));
        if let Value::Object(keywords) = keywords {
            target.extend(keywords);
        }
    }
}

/// Names of the component schemas `value` refers to.
fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Path patterns and their methods.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    routes: Vec<(Vec<String>, Vec<Method>)>,
}

impl RouteTable {
    /// From a document's `paths`, under `base` (where the API is nested).
    #[must_use]
    pub fn from_doc(doc: &Value, base: &str) -> Self {
        let mut routes = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in paths {
                let methods = item
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter_map(|k| k.to_uppercase().parse::<Method>().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                routes.push((segments(&format!("{base}{path}")), methods));
            }
        }
        Self { routes }
    }

    /// The methods allowed on `path`, if a route matches it.
    #[must_use]
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.routes
            .iter()
            .find(|(pattern, _)| {
                pattern.len() == parts.len()
                    && pattern
                        .iter()
                        .zip(&parts)
                        .all(|(p, s)| p.starts_with('{') || p == s)
            })
            .map(|(_, methods)| methods.clone())
    }
}

fn segments(pattern: &str) -> Vec<String> {
    pattern
        .trim_end_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_a_request_reaches_refuse_additional_properties() {
        let mut doc = serde_json::json!({
            "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Req"}}}}}}},
            "components": {"schemas": {
                "Req": {"type": "object", "properties": {
                    "inner": {"allOf": [{"$ref": "#/components/schemas/Inner"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "Inner": {"type": "object", "properties": {"n": {"type": "integer"}}},
                "Resp": {"type": "object", "properties": {"n": {"type": "integer"}}}
            }}
        });
        deny_unknown_fields(&mut doc);
        state_limits(
            &mut doc,
            vec![(
                "Inner",
                "n",
                serde_json::json!({"minimum": 1, "maximum": 9}),
            )],
        );
        harden(&mut doc);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Req"]["additionalProperties"], false);
        assert_eq!(schemas["Inner"]["additionalProperties"], false);
        assert_eq!(
            schemas["Req"]["properties"]["labels"]["additionalProperties"],
            serde_json::json!({"type": "string"}),
            "maps keep their value schema"
        );
        assert!(schemas["Resp"].get("additionalProperties").is_none());
        assert_eq!(schemas["Inner"]["properties"]["n"]["maximum"], 9);
    }

    #[test]
    fn unsigned_get_a_minimum_and_routes_match() {
        let mut doc = serde_json::json!({
            "paths": {"/api/v1/experiments/{id}": {"get": {}, "delete": {}}},
            "components": {"schemas": {"X": {"properties": {"n": {"type": "integer", "format": "uint64"}}}}}
        });
        harden(&mut doc);
        assert_eq!(
            doc["components"]["schemas"]["X"]["properties"]["n"]["minimum"],
            0
        );
        let table = RouteTable::from_doc(&doc, "");
        let allowed = table.allowed("/api/v1/experiments/abc").unwrap();
        assert_eq!(allowed, vec![Method::DELETE, Method::GET]);
        assert!(table.allowed("/api/v1/nope").is_none());
    }
}
