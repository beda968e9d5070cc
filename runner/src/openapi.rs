//! The OpenAPI 3.0 document, built from the same tables the code uses ([`TASK_FIELDS`],
//! [`RESPONSE_FIELDS`], the error codes), so the document cannot drift from the API.

use serde_json::{json, Map, Value};

use crate::api::{FieldType, API_VERSION, RESPONSE_FIELDS, TASK_FIELDS};
use crate::config::{TaskConfig, MIN_MEMORY_BYTES};

/// What `docker_image` accepts (ECMA-262): `[host[:port]/]path[:tag][@digest]`, where the host
/// has a `.` or a `:port` or is `localhost`, path components are lowercase with single
/// separators, and the whole is at most 255 characters.
pub const IMAGE_PATTERN: &str = concat!(
    r"^(?:(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)",
    r"(?::[0-9]{1,5})?/|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?:[0-9]{1,5}/)?",
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*",
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[0-9a-fA-F]{32,})?$",
);

/// Bounds and patterns of a request field, from the runner's configuration: what the parser
/// in [`crate::api`] checks, as far as JSON Schema can say it.
fn constraints(name: &str, limits: &TaskConfig) -> Value {
    let no_nul = r"^[^\x00]*$";
    match name {
        "docker_image" => json!({"maxLength": 255, "pattern": IMAGE_PATTERN}),
        "tag" => json!({"pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"}),
        "cmd" => json!({"items": {"type": "string", "pattern": no_nul}}),
        "workdir" => json!({"pattern": r"^/[^\x00]*$"}),
        "user" => json!({"pattern": r"^[A-Za-z0-9_.:-]+$"}),
        "stdin" => json!({"format": "byte"}),
        "timeoutMs" => json!({"minimum": 1, "maximum": limits.max_timeout_ms}),
        "memoryBytes" => json!({"minimum": MIN_MEMORY_BYTES, "maximum": limits.max_memory_bytes}),
        "cpus" => json!({"minimum": 0, "exclusiveMinimum": true, "maximum": limits.max_cpus}),
        "pidsLimit" => json!({"minimum": 1, "maximum": limits.max_pids_limit}),
        "outputLimitBytes" => json!({"minimum": 0, "maximum": limits.max_output_limit_bytes}),
        "network" => json!({"enum": limits.allowed_networks}),
        _ => json!({}),
    }
}

/// Every error `code` the API can return.
pub const ERROR_CODES: &[&str] = &[
    "invalid_request",
    "unsupported_content_type",
    "payload_too_large",
    "image_not_found",
    "image_pull_failed",
    "registry_auth_failed",
    "unauthorized",
    "rate_limited",
    "overloaded",
    "shutting_down",
    "docker_error",
    "not_found",
    "method_not_allowed",
    "internal",
];

fn field_schema(ty: FieldType) -> Value {
    match ty {
        FieldType::String => json!({"type": "string"}),
        FieldType::Integer => json!({"type": "integer", "format": "int64"}),
        FieldType::Number => json!({"type": "number"}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::StringArray => {
            json!({"type": "array", "items": {"type": "string"}, "minItems": 1})
        }
        FieldType::Env => json!({"oneOf": [
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
        ]}),
        FieldType::Creds => json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "email": {"type": "string"},
                "username": {"type": "string"},
                "password": {"type": "string", "format": "password"},
            },
        }),
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// The whole document, with the request bounds of this runner's configuration.
pub fn document(limits: &TaskConfig) -> Value {
    let mut request_properties = Map::new();
    for field in TASK_FIELDS {
        let mut schema = field_schema(field.ty);
        if let (Some(schema), Value::Object(extra)) = (schema.as_object_mut(), constraints(field.name, limits)) {
            for (key, value) in extra {
                match (schema.get_mut(&key), value) {
                    (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
                    (_, value) => {
                        schema.insert(key, value);
                    }
                }
            }
        }
        schema["description"] = json!(field.description);
        if field.name == "tag" {
            schema["deprecated"] = json!(true);
        }
        request_properties.insert(field.name.to_string(), schema);
    }
    let required: Vec<&str> = TASK_FIELDS.iter().filter(|f| f.required).map(|f| f.name).collect();
    let mut response_properties = Map::new();
    for (name, ty, description) in RESPONSE_FIELDS {
        let mut schema = json!({"type": ty, "description": description});
        if *name == "stdout" || *name == "stderr" {
            schema["format"] = json!("byte");
        }
        response_properties.insert(name.to_string(), schema);
    }
    let v = format!("/v{API_VERSION}");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cairn runner",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs one command in a fresh Docker container and returns its exit code, stdout and stderr (compatible with the ecs API v1.1).",
        },
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "TaskRequest": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": required,
                    "properties": request_properties,
                },
                "TaskResponse": {
                    "type": "object",
                    "required": RESPONSE_FIELDS.iter().map(|f| f.0).collect::<Vec<_>>(),
                    "properties": response_properties,
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": ERROR_CODES},
                            "message": {"type": "string"},
                            "field": {"type": "string", "description": "The request field at fault, when one is."},
                            "containerId": {"type": "string", "nullable": true},
                            "dockerError": {"type": "string"},
                            "operation": {"type": "string"},
                            "image": {"type": "string"},
                            "registry": {"type": "string"},
                            "credentials": {"type": "string", "enum": ["request", "configured", "ecr", "none"], "description": "Where the refused registry credentials came from."},
                        },
                    }},
                },
            },
        },
        "paths": {
            format!("{v}/tasks"): {"post": {
                "summary": "Run a command in a fresh container",
                "security": [{"basic": []}, {"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskRequest"}}}},
                "responses": {
                    "201": {"description": "The command ran (whatever its exit code).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskResponse"}}}},
                    "400": error_response("Invalid request, or one Docker refuses (an image reference it cannot parse, a command, working directory or user it cannot start with); `field` names the field when it is known."),
                    "401": error_response("Authentication required."),
                    "403": error_response("The image's registry refused the credentials (`registry_auth_failed`)."),
                    "404": error_response("Image not found."),
                    "413": error_response("Request body too large."),
                    "429": error_response("Rate limit exceeded; see Retry-After and RateLimit-* headers."),
                    "500": error_response("Docker failed; the body has the container id and Docker's error."),
                    "503": error_response("Too many tasks queued, or shutting down; see Retry-After."),
                },
            }},
            format!("{v}/_noop"): {"get": {
                "summary": "Does nothing: checks credentials and the path (authenticated and rate limited)",
                "security": [{"basic": []}, {"bearer": []}],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "401": error_response("Authentication required."),
                    "429": error_response("Rate limit exceeded; see Retry-After and RateLimit-* headers."),
                },
            }},
            format!("{v}/_version"): {"get": {"summary": "Version and build information", "responses": {"200": {"description": "OK"}}}},
            format!("{v}/_health"): {"get": {
                "summary": "Health per component; Docker is pinged unless quick=true",
                "parameters": [{"name": "quick", "in": "query", "required": false, "schema": {"type": "boolean"}}],
                "responses": {
                    "200": {"description": "green"},
                    "400": error_response("Invalid `quick`."),
                    "503": {"description": "red"},
                },
            }},
            format!("{v}/openapi.json"): {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}},
            "/healthz": {"get": {"summary": "Cheap liveness check for load balancers", "responses": {"200": {"description": "ok"}, "503": {"description": "shutting down"}}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics",
                "security": [{"basic": []}, {"bearer": []}],
                "responses": {
                    "200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": error_response("Authentication required."),
                },
            }},
            "/status": {"get": {
                "summary": "Status page for people: version, uptime, Docker engine, running tasks, recent failures",
                "security": [{"basic": []}, {"bearer": []}],
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                    "401": error_response("Authentication required."),
                },
            }},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TaskResponse;
    use crate::error::ApiError;

    #[test]
    fn response_schema_matches_the_serialized_response() {
        let sample = serde_json::to_value(TaskResponse {
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
            container_id: "x".into(),
            duration_ms: 1,
            stdout_truncated: false,
            stderr_truncated: false,
            timed_out: false,
            oom_killed: false,
        })
        .unwrap();
        let doc = document(&TaskConfig::default());
        let properties = doc["components"]["schemas"]["TaskResponse"]["properties"].as_object().unwrap();
        let mut documented: Vec<&String> = properties.keys().collect();
        let mut actual: Vec<&String> = sample.as_object().unwrap().keys().collect();
        documented.sort();
        actual.sort();
        assert_eq!(documented, actual);
    }

    #[test]
    fn error_codes_are_all_documented() {
        let errors = [
            ApiError::invalid("f", "m"),
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::Unauthorized,
            ApiError::ShuttingDown,
            ApiError::MethodNotAllowed,
            ApiError::Internal("x".into()),
        ];
        for error in errors {
            assert!(ERROR_CODES.contains(&error.code()), "{}", error.code());
        }
    }

    #[test]
    fn image_pattern_agrees_with_the_parser() {
        // The pattern is ECMA-262; these cases use nothing that differs in Rust's regex
        // dialect, but the crate has no regex engine: compare by hand-picked examples instead.
        for ok in ["busybox", "a/b:c", "localhost:5000/x", "reg.example.com/team/app-x_y:v1.2", "h:1/a"] {
            assert!(crate::images::ImageRef::parse(ok, None).is_ok(), "{ok}");
        }
        let doc = document(&TaskConfig::default());
        let image = &doc["components"]["schemas"]["TaskRequest"]["properties"]["docker_image"];
        assert_eq!(image["pattern"], IMAGE_PATTERN);
        assert_eq!(image["maxLength"], 255);
        let timeout = &doc["components"]["schemas"]["TaskRequest"]["properties"]["timeoutMs"];
        assert_eq!(timeout["maximum"], TaskConfig::default().max_timeout_ms);
        assert_eq!(doc["components"]["schemas"]["TaskRequest"]["properties"]["network"]["enum"], json!(["none"]));
        assert_eq!(doc["components"]["schemas"]["TaskRequest"]["properties"]["cmd"]["minItems"], 1);
    }

    #[test]
    fn request_schema_lists_every_accepted_field() {
        let doc = document(&TaskConfig::default());
        let properties = doc["components"]["schemas"]["TaskRequest"]["properties"].as_object().unwrap();
        assert_eq!(properties.len(), TASK_FIELDS.len());
        assert_eq!(doc["components"]["schemas"]["TaskRequest"]["required"], json!(["docker_image", "cmd"]));
    }
}
