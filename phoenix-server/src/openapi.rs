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
    nullable_options(doc);
    state_limits(doc, phoenix_api::strict::stated_limits());
    state_failed_needs_error(doc);
    state_parameters(doc);
}

/// OpenAPI `links` from the operations that create a record to the operations that address
/// it by id (poem-openapi emits none), so that a stateful client such as Schemathesis
/// chains them: create an experiment, read it, start, stop, promote, roll back or delete
/// it; create a deployment, then pause, resume or roll it back; create a token and revoke
/// it; import a query source and delete it; enroll an agent and read it.
///
/// # Panics
/// When a named operation or response is missing (a renamed operation): the OpenAPI
/// snapshot test catches it.
pub fn link_resources(doc: &mut Value) {
    const LINKS: &[(&str, &str, &str, &[&str])] = &[
        (
            "create_experiment",
            "201",
            "/id",
            &[
                "get_experiment",
                "experiment_events",
                "experiment_kpis",
                "experiment_cost_analysis",
                "start_experiment",
                "stop_experiment",
                "promote_experiment",
                "rollback_experiment",
                "delete_experiment",
            ],
        ),
        (
            "create_deployment",
            "201",
            "/id",
            &[
                "get_deployment",
                "pause_deployment",
                "resume_deployment",
                "rollback_deployment",
            ],
        ),
        ("create_token", "201", "/token/id", &["revoke_token"]),
        (
            "import_query_source",
            "201",
            "/id",
            &["delete_query_source"],
        ),
        ("agent_enroll", "201", "/agent/id", &["get_agent"]),
    ];
    for (source, status, pointer, targets) in LINKS {
        let links: serde_json::Map<String, Value> = targets
            .iter()
            .map(|target| {
                (
                    (*target).to_owned(),
                    serde_json::json!({
                        "operationId": target,
                        "parameters": {"id": format!("$response.body#{pointer}")},
                    }),
                )
            })
            .collect();
        for target in *targets {
            operation_mut(doc, target)
                .unwrap_or_else(|| panic!("link target {target}: no such operation"));
        }
        let response = operation_mut(doc, source)
            .and_then(|op| op.pointer_mut(&format!("/responses/{status}")))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("links of {source}: no {status} response"));
        response.insert("links".to_owned(), Value::Object(links));
    }
}

/// The operation with `operationId` `id`.
fn operation_mut<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    doc.get_mut("paths")?
        .as_object_mut()?
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(id))
}

/// The names a running server accepts that come from its registries rather than from a
/// type: `template` of every pipeline reference, and `pricing_model` of experiment specs
/// and of the analysis operations. Stated as `enum`s so that the document says what this
/// server answers 422 for (an administrator's registered templates or pricing file are
/// part of the list).
///
/// # Panics
/// When the document lacks one of those schemas or parameters (a renamed field): the
/// OpenAPI snapshot test catches it.
pub fn state_registries(doc: &mut Value, templates: &[String], pricing_models: &[String]) {
    let templates = serde_json::json!({ "enum": templates });
    let models = serde_json::json!({ "enum": pricing_models });
    state_limits(
        doc,
        vec![
            ("PipelineRef", "template", templates),
            ("ExperimentSpec", "pricing_model", models.clone()),
        ],
    );
    for operation in ["cardinality", "cost_flow", "cost_history"] {
        merge_into_parameter(doc, operation, "pricing_model", &models);
    }
}

/// Query parameters the server parses further than their type: page cursors (a UUID, or
/// an event sequence number) and analysis dimensions (`label:` needs a key).
fn state_parameters(doc: &mut Value) {
    let uuid = serde_json::json!({"pattern": crate::api::UUID_CURSOR_PATTERN});
    for operation in [
        "list_agents",
        "list_experiments",
        "list_deployments",
        "list_tasks",
    ] {
        merge_into_parameter(doc, operation, "cursor", &uuid);
    }
    let seq = serde_json::json!({"pattern": crate::api::SEQ_CURSOR_PATTERN});
    merge_into_parameter(doc, "experiment_events", "cursor", &seq);
    let dimension =
        serde_json::json!({"items": {"type": "string", "pattern": r"^(?!\s*label:\s*$)"}});
    for operation in ["cardinality", "cost_flow"] {
        merge_into_parameter(doc, operation, "dimension", &dimension);
    }
}

/// Merges `keywords` into the schema of parameter `name` of operation `operation_id`.
fn merge_into_parameter(doc: &mut Value, operation_id: &str, name: &str, keywords: &Value) {
    let schema = operation_mut(doc, operation_id)
        .and_then(|op| op.get_mut("parameters"))
        .and_then(Value::as_array_mut)
        .and_then(|params| {
            params
                .iter_mut()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        })
        .and_then(|p| p.get_mut("schema"))
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("parameter {name} of {operation_id}: no such parameter"));
    if let Value::Object(keywords) = keywords {
        schema.extend(keywords.clone());
    }
}

/// `nullable: true` on every optional property (neither required nor defaulted) of an
/// object that refuses unknown fields: those are `Option`s, which serde reads from `null`
/// as from an absent field. Call after [`deny_unknown_fields`].
fn nullable_options(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut().filter_map(Value::as_object_mut) {
        if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
            continue;
        }
        let required: Vec<Value> = schema
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, property) in properties.iter_mut() {
            let Some(property) = property.as_object_mut() else {
                continue;
            };
            if !required.iter().any(|r| r == name) && !property.contains_key("default") {
                property.insert("nullable".to_owned(), Value::Bool(true));
            }
        }
    }
}

/// A task report with status `failed` must say why (`error`, a string): the one
/// cross-field rule of a request that JSON Schema can state.
fn state_failed_needs_error(doc: &mut Value) {
    if let Some(report) = doc
        .pointer_mut("/components/schemas/TaskStatusReport")
        .and_then(Value::as_object_mut)
    {
        report.insert(
            "anyOf".to_owned(),
            serde_json::json!([
                {"properties": {"status": {"enum": ["running", "succeeded"]}}},
                {"required": ["error"], "properties": {"error": {"type": "string"}}}
            ]),
        );
    }
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
    fn optional_request_fields_are_nullable_and_links_need_their_operations() {
        let mut doc = serde_json::json!({
            "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Req"}}}}}}},
            "components": {"schemas": {
                "Req": {"type": "object", "required": ["a"], "properties": {
                    "a": {"type": "string"},
                    "b": {"type": "string"},
                    "c": {"type": "string", "default": ""}}}
            }}
        });
        deny_unknown_fields(&mut doc);
        nullable_options(&mut doc);
        let props = &doc["components"]["schemas"]["Req"]["properties"];
        assert!(props["a"].get("nullable").is_none(), "required");
        assert_eq!(props["b"]["nullable"], true, "an Option");
        assert!(props["c"].get("nullable").is_none(), "defaulted");
        // A document without the operations the links name is refused loudly.
        let mut partial = serde_json::json!({"paths": {}});
        assert!(std::panic::catch_unwind(move || link_resources(&mut partial)).is_err());
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
