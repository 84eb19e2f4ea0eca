//! Greenfield's OpenAPI fragments as JSON Schema validators. BTCPay merges the fragments at
//! run time; we do the same, and translate the two OpenAPI 3.0 habits JSON Schema reads
//! differently: `nullable: true` (becomes "or null") and `additionalProperties: false`
//! inside an `allOf` member (OpenAPI means "no properties outside the union", JSON Schema
//! would reject the other members' properties).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Map, Value};

pub struct Schemas {
    components: Value,
    cache: std::sync::Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

fn fix(v: &mut Value, in_all_of: bool) {
    match v {
        Value::Object(map) => {
            if in_all_of && map.get("additionalProperties") == Some(&Value::Bool(false)) {
                map.remove("additionalProperties");
            }
            for (k, child) in map.iter_mut() {
                fix(child, k == "allOf");
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                let inner = Value::Object(std::mem::take(map));
                map.insert("anyOf".into(), json!([{"type": "null"}, inner]));
            } else {
                map.remove("nullable");
            }
        }
        Value::Array(items) => {
            for i in items {
                fix(i, in_all_of);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

fn collect_all_of_refs(v: &Value, in_all_of: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if in_all_of {
                if let Some(Value::String(r)) = map.get("$ref") {
                    if let Some(name) = r.strip_prefix("#/components/schemas/") {
                        out.push(name.to_string());
                    }
                }
            }
            for (k, child) in map {
                collect_all_of_refs(child, k == "allOf", out);
            }
        }
        Value::Array(items) => {
            for i in items {
                collect_all_of_refs(i, in_all_of, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

impl Schemas {
    pub fn load(dir: &Path) -> Schemas {
        let mut schemas = Map::new();
        for entry in std::fs::read_dir(dir).expect("schema dir") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let doc: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                if let Some(Value::Object(s)) = doc.pointer("/components/schemas") {
                    for (k, v) in s {
                        schemas.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        // A schema used as an `allOf` member by $ref is open too (see `fix`).
        let mut members = Vec::new();
        collect_all_of_refs(&Value::Object(schemas.clone()), false, &mut members);
        for name in members {
            if let Some(Value::Object(m)) = schemas.get_mut(&name) {
                if m.get("additionalProperties") == Some(&Value::Bool(false)) {
                    m.remove("additionalProperties");
                }
            }
        }
        let mut components = json!({ "schemas": schemas });
        fix(&mut components, false);
        Schemas {
            components,
            cache: Default::default(),
        }
    }

    fn validator(&self, name: &str, array: bool) -> std::sync::Arc<jsonschema::Validator> {
        let key = format!("{name}{}", if array { "[]" } else { "" });
        let mut cache = self.cache.lock().unwrap();
        cache
            .entry(key)
            .or_insert_with(|| {
                let target = json!({ "$ref": format!("#/components/schemas/{name}") });
                let mut root = if array {
                    json!({ "type": "array", "items": target })
                } else {
                    target
                };
                root["components"] = self.components.clone();
                std::sync::Arc::new(
                    jsonschema::validator_for(&root)
                        .unwrap_or_else(|e| panic!("schema {name}: {e}")),
                )
            })
            .clone()
    }

    /// The validation errors of `value` against schema `name` (or an array of it).
    pub fn errors(&self, name: &str, array: bool, value: &Value) -> Vec<String> {
        self.validator(name, array)
            .iter_errors(value)
            .map(|e| format!("{name}: {e} at {}", e.instance_path))
            .collect()
    }
}
